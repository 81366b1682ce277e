package conformance

import (
	"encoding/json"
	"fmt"
	"os"
)

// File is a conformance vector file.
type File struct {
	FormatVersion int      `json:"format_version"`
	Description   string   `json:"description"`
	Vectors       []Vector `json:"vectors"`
}

// Vector is one conformance vector. Fields not used by a vector's kind are zero.
type Vector struct {
	Name       string `json:"name"`
	Source     string `json:"source"`
	SourceFile string `json:"source_file"`
	Category   string `json:"category"`
	Kind       string `json:"kind"` // dstream | event_time | window_assign
	Optional   bool   `json:"optional"`
	Compare    string `json:"compare"` // ordered | unordered | relaxed
	Notes      string `json:"notes"`

	// kind = dstream
	BatchDurationS         float64          `json:"batch_duration_s"`
	Inputs                 json.RawMessage  `json:"inputs"` // dstream: [stream][batch][element]; event_time: [{watermark_delay_s}]
	Branches               []Branch         `json:"branches"`
	Combine                *Combine         `json:"combine"`
	Pipeline               []Stage          `json:"pipeline"`
	NumBatches             int              `json:"num_batches"`
	ExpectedTimesS         []int64          `json:"expected_times_s"`
	Expected               json.RawMessage  `json:"expected"` // dstream: [[elem]]; window_assign: [row]
	ExpectedStateSnapshots [][]any          `json:"expected_state_snapshots"`
	RelaxedChecks          *RelaxedChecks   `json:"relaxed_checks"` // compare = relaxed only
	InitialStateUnused     *json.RawMessage `json:"-"`

	// kind = event_time
	RecordFields            []string `json:"record_fields"`
	EventTimeField          *string  `json:"event_time_field"`
	WatermarkDelayS         *float64 `json:"watermark_delay_s"`
	Query                   []Stage  `json:"query"`
	OutputMode              string   `json:"output_mode"`
	OutputFields            []string `json:"output_fields"`
	Steps                   []Step   `json:"steps"`
	MultipleWatermarkPolicy string   `json:"multiple_watermark_policy"`

	// kind = window_assign
	Window  *AssignWindow `json:"window"`
	Records [][]any       `json:"records"`
	Form    string        `json:"form"`
}

// RelaxedChecks are the checks of a vector with compare "relaxed", which
// has them instead of expected and expected_state_snapshots. A nil field was
// not asserted; every other one must hold.
type RelaxedChecks struct {
	// AllOutputsFlattenedSorted is every element emitted over all batches,
	// flattened into one list, compared after sorting both.
	AllOutputsFlattenedSorted *[]any `json:"all_outputs_flattened_sorted"`
	// SomeStateSnapshotEquals is a full state ([[key, state], ...]) that the
	// state after some batch equals, as a multiset.
	SomeStateSnapshotEquals *[]any `json:"some_state_snapshot_equals"`
	// LastStateSnapshotEquals is the full state after the last batch.
	LastStateSnapshotEquals *[]any `json:"last_state_snapshot_equals"`
}

// Branch is one input branch of a dstream vector.
type Branch struct {
	Input    int     `json:"input"`
	Pipeline []Stage `json:"pipeline"`
}

// Combine merges the branches of a dstream vector.
type Combine struct {
	Op string `json:"op"`
}

// Stage is one dstream pipeline stage ("op") or event-time query stage ("type").
// It carries the union of all stage parameters.
type Stage struct {
	Op        string   `json:"op"`
	Type      string   `json:"type"`
	Fn        string   `json:"fn"`
	Arg       *float64 `json:"arg"`
	WindowS   int64    `json:"window_s"`
	SlideS    int64    `json:"slide_s"`
	InverseFn string   `json:"inverse_fn"`
	FilterFn  string   `json:"filter_fn"`
	Static    [][]any  `json:"static"`
	// InitialState is [[key, state], ...].
	InitialState [][]any `json:"initial_state"`
	TimeoutS     int64   `json:"timeout_s"`

	Keys           []string           `json:"keys"`
	Agg            string             `json:"agg"`
	Field          string             `json:"field"`
	GapS           int64              `json:"gap_s"`
	GapByKeyS      map[string]float64 `json:"gap_by_key_s"`
	DefaultGapS    int64              `json:"default_gap_s"`
	TimeOfInputRow string             `json:"time_of_input_row"`
}

// Step is one step of an event_time vector.
type Step struct {
	// Add is [records] for single-input vectors, or {"<input>": [records]}.
	Add                     json.RawMessage `json:"add"`
	ExpectNew               [][]any         `json:"expect_new"`
	ExpectResult            [][]any         `json:"expect_result"`
	ExpectWatermarkAfterS   *float64        `json:"expect_watermark_after_s"`
	ExpectStateRows         *int            `json:"expect_state_rows"`
	ExpectDroppedLate       *int            `json:"expect_dropped_late"`
	ExpectDroppedDuplicates *int            `json:"expect_dropped_duplicates"`
}

// AssignWindow is the window of a window_assign vector.
type AssignWindow struct {
	SizeMs   int64 `json:"size_ms"`
	SlideMs  int64 `json:"slide_ms"`
	OffsetMs int64 `json:"offset_ms"`
}

// Load reads a vector file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.FormatVersion != 1 {
		return nil, fmt.Errorf("%s: format_version %d, want 1", path, f.FormatVersion)
	}
	return &f, nil
}
