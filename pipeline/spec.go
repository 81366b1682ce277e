package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/source"
)

// APIVersion is the apiVersion every pipeline document carries.
const APIVersion = "edged/v1"

// DefaultIdleTimeout is the idle timeout of event-time sources when a
// pipeline sets none: ten seconds, long enough for sensors that publish every
// few seconds, short enough that the last window closes soon after the input
// stops.
const DefaultIdleTimeout = 10 * time.Second

// Spec is a parsed pipeline document.
type Spec struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Metadata   Metadata     `yaml:"metadata"`
	Spec       PipelineSpec `yaml:"spec"`

	file  string
	lines map[string]int // key path -> line
}

// Metadata names a pipeline.
type Metadata struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Version     string            `yaml:"version"`
	Labels      map[string]string `yaml:"labels"`
}

// PipelineSpec is the body of a pipeline.
type PipelineSpec struct {
	// Interval is the micro-batch (epoch) interval. Zero means 1s.
	Interval time.Duration `yaml:"interval"`
	// IdleTimeout is how long an event-time source may receive nothing before
	// it stops holding the watermark back: from then on its watermark
	// advances with processing time, so the windows of a quiet sensor or a
	// stopped simulator close. Nil means DefaultIdleTimeout; 0s turns it off.
	// A source's own idleTimeout overrides it.
	IdleTimeout *time.Duration `yaml:"idleTimeout"`
	Sources     []Source       `yaml:"sources"`
	Steps       []Step         `yaml:"steps"`
	Sinks       []Sink         `yaml:"sinks"`
}

// Source declares an input and how its payloads decode into records.
type Source struct {
	Name string `yaml:"name"`
	// Format is the payload format: json (default: an object, or an array of
	// objects), csv (rows after a header row, or in the order csv.columns
	// declares), senml (RFC 8428: fields named name, unit, value and sum take
	// each SenML record's resolved values, eventTime its time; relative times
	// count from when the message was received) or raw (the whole payload as
	// text in the field "payload", or the first string field).
	Format string `yaml:"format"`
	// CSV says how csv payloads lay out their columns. Nil: every payload
	// starts with a header row.
	CSV *CSVFormat `yaml:"csv"`
	// Fields is the record schema, in order.
	Fields []FieldSpec `yaml:"fields"`
	// EventTime names the field holding the event time. Empty: no event time.
	EventTime string `yaml:"eventTime"`
	// TimeFormat is unix_ms (default), unix_s or rfc3339.
	TimeFormat string `yaml:"timeFormat"`
	// Key names the fields that form the record key (partitioning).
	Key []string `yaml:"key"`
	// Watermark is the delay of the event-time watermark behind the largest event
	// time seen. Zero with EventTime set means a watermark equal to the max time.
	Watermark *time.Duration `yaml:"watermark"`
	// IdleTimeout overrides the pipeline's idleTimeout for this source.
	IdleTimeout *time.Duration `yaml:"idleTimeout"`
	// Strict makes a missing field a decode error (dead-lettered) instead of null.
	Strict bool `yaml:"strict"`
	// MQTT subscribes the source to topics (used by the daemon; batch mode reads
	// files instead).
	MQTT *MQTTSource `yaml:"mqtt"`
	// Bus reads a sensor wired to the gateway (I2C, SPI, 1-Wire, GPIO) every
	// bus.interval into JSON records (used by the daemon; batch mode reads
	// files of such records instead). Without fields, the schema is the
	// sensor's: time (the read time), the measured values and the constant
	// bus.fields.
	Bus *bus.Config `yaml:"bus"`
	// HTTP accepts JSON Lines pushed to POST /api/v1/ingest/PIPELINE/SOURCE
	// on the node's API (used by the daemon; batch mode reads files).
	HTTP *HTTPSource `yaml:"http"`
	// File follows a growing file (a log) line by line, through rotation,
	// with its position committed with the lines (used by the daemon).
	File *source.TailConfig `yaml:"file"`
	// Custom reads the source.Source that the program embedding edged
	// registered under this name (node.WithSource).
	Custom string `yaml:"custom"`
}

// HTTPSource is the `http:` block of a source that accepts HTTP push.
type HTTPSource struct {
	// MaxBodyBytes bounds one request's body; a larger one is refused
	// whole (413). Zero means DefaultHTTPMaxBody.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
}

// DefaultHTTPMaxBody is the body limit of an HTTP push: 4 MiB, tens of
// thousands of readings, well within a gateway's memory.
const DefaultHTTPMaxBody = 4 << 20

// MaxBody returns the body limit of the source's HTTP push.
func (h *HTTPSource) MaxBody() int64 {
	if h == nil || h.MaxBodyBytes <= 0 {
		return DefaultHTTPMaxBody
	}
	return h.MaxBodyBytes
}

// CSVFormat is the column layout of a csv source.
type CSVFormat struct {
	// Header says whether every payload (and a batch input file) starts with
	// a header row naming its columns. Nil means true.
	Header *bool `yaml:"header"`
	// Columns, with header: false, lists the columns of every row in order:
	// field names, or "-" for a column to ignore. Empty means the source's
	// fields in the order they are declared.
	Columns []string `yaml:"columns"`
}

// HasHeader reports whether rows follow a header row (the default).
func (c *CSVFormat) HasHeader() bool { return c == nil || c.Header == nil || *c.Header }

// MQTTSource is the MQTT subscription of a source. Topics are filters or
// templates: "sensors/{site}/{sensor}/temp" subscribes to
// "sensors/+/+/temp" and fills the fields site and sensor from the topic.
type MQTTSource struct {
	Topics []string `yaml:"topics"`
	QoS    int      `yaml:"qos"`
}

// FieldSpec is one field of a source schema.
type FieldSpec struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

// Step is one operator. Exactly one of the operator fields is set.
type Step struct {
	Name   string   `yaml:"name"`
	Input  string   `yaml:"input"`
	Inputs []string `yaml:"inputs"`

	Filter       string           `yaml:"filter"`
	Project      []NamedExpr      `yaml:"project"`
	Extend       []NamedExpr      `yaml:"extend"`
	FlatMap      [][]NamedExpr    `yaml:"flatMap"`
	KeyBy        []string         `yaml:"keyBy"`
	Require      []string         `yaml:"require"`
	Union        *struct{}        `yaml:"union"`
	Enrich       *EnrichSpec      `yaml:"enrich"`
	Dedup        *DedupSpec       `yaml:"dedup"`
	Window       *WindowSpec      `yaml:"window"`
	Aggregate    *AggregateSpec   `yaml:"aggregate"`
	Threshold    *ThresholdSpec   `yaml:"threshold"`
	RateOfChange *RateSpec        `yaml:"rateOfChange"`
	NOfM         *NOfMSpec        `yaml:"nOfM"`
	Reduce       *ReduceSpec      `yaml:"reduceByKey"`
	CountByValue *CountByValue    `yaml:"countByValue"`
	DStream      *DStreamWindow   `yaml:"dstreamWindow"`
	UpdateState  *UpdateStateSpec `yaml:"updateStateByKey"`
	History      *HistorySpec     `yaml:"history"`
	HistoryJoin  *HistoryJoinSpec `yaml:"historyJoin"`
	Anomaly      *AnomalySpec     `yaml:"anomaly"`
}

// NamedExpr is one output column: a single-key map {name: expression}.
type NamedExpr map[string]string

// EnrichSpec joins each record with a static table (inner or left join).
type EnrichSpec struct {
	// On is the record field matched against the table key.
	On string `yaml:"on"`
	// TableKey is the table column matched; default: the first column.
	TableKey string `yaml:"tableKey"`
	// Fields are the table columns, in order.
	Fields []FieldSpec `yaml:"fields"`
	// Rows are inline table rows, in Fields order.
	Rows [][]any `yaml:"rows"`
	// File is a CSV file (with a header) holding the table, relative to the spec.
	File string `yaml:"file"`
	// Left keeps records with no match, with null table fields.
	Left bool `yaml:"left"`
}

// DedupSpec drops repeated records.
type DedupSpec struct {
	Keys []string `yaml:"keys"`
	// WithinWatermark expires a key once its first event time + watermark delay
	// is behind the watermark.
	WithinWatermark bool `yaml:"withinWatermark"`
}

// WindowSpec is an event-time window aggregation.
type WindowSpec struct {
	// Type is tumbling, sliding, session or count.
	Type     string        `yaml:"type"`
	Size     time.Duration `yaml:"size"`
	Slide    time.Duration `yaml:"slide"`
	Gap      time.Duration `yaml:"gap"`
	Count    int           `yaml:"count"`
	Keys     []string      `yaml:"keys"`
	Lateness time.Duration `yaml:"lateness"`
	// Output is append (default), update or complete.
	Output     string      `yaml:"output"`
	Aggregates []NamedExpr `yaml:"aggregates"`
}

// AggregateSpec is a non-windowed keyed aggregation.
type AggregateSpec struct {
	Keys       []string    `yaml:"keys"`
	Output     string      `yaml:"output"`
	Aggregates []NamedExpr `yaml:"aggregates"`
}

// ThresholdSpec raises and clears an alarm with hysteresis.
type ThresholdSpec struct {
	Rule  string        `yaml:"rule"`
	Keys  []string      `yaml:"keys"`
	Value string        `yaml:"value"`
	Above *float64      `yaml:"above"`
	Below *float64      `yaml:"below"`
	Clear *float64      `yaml:"clear"`
	For   time.Duration `yaml:"for"`
}

// RateSpec fires when a value changes faster than MaxRate per Per.
type RateSpec struct {
	Rule      string        `yaml:"rule"`
	Keys      []string      `yaml:"keys"`
	Value     string        `yaml:"value"`
	MaxRate   float64       `yaml:"maxRate"`
	Per       time.Duration `yaml:"per"`
	Direction string        `yaml:"direction"`
	Window    time.Duration `yaml:"window"`
}

// NOfMSpec fires when N of the last M readings satisfy a condition.
type NOfMSpec struct {
	Rule  string   `yaml:"rule"`
	Keys  []string `yaml:"keys"`
	Value string   `yaml:"value"`
	N     int      `yaml:"n"`
	M     int      `yaml:"m"`
	// When is a boolean expression over the record.
	When  string   `yaml:"when"`
	Above *float64 `yaml:"above"`
	Below *float64 `yaml:"below"`
}

// ReduceSpec is Spark's reduceByKey over each micro-batch.
type ReduceSpec struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
	// Func is sum, min or max.
	Func string `yaml:"func"`
}

// CountByValue counts the occurrences of each value of a field per batch.
type CountByValue struct {
	Field string `yaml:"field"`
}

// DStreamWindow is a processing-time window in Spark Streaming's DStream form.
type DStreamWindow struct {
	// Op is window, countByWindow, reduceByWindow, reduceByKeyAndWindow,
	// countByValueAndWindow or groupByKeyAndWindow.
	Op      string        `yaml:"op"`
	Size    time.Duration `yaml:"size"`
	Slide   time.Duration `yaml:"slide"`
	Key     string        `yaml:"key"`
	Value   string        `yaml:"value"`
	Func    string        `yaml:"func"`
	Inverse string        `yaml:"inverse"`
	// Filter drops keys whose windowed value fails this expression (over key,
	// value); with Inverse, it keeps the state small.
	Filter string `yaml:"filter"`
}

// UpdateStateSpec keeps per-key state across batches (updateStateByKey).
type UpdateStateSpec struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
	// Func is sum or count.
	Func string `yaml:"func"`
	// ExpireAfter removes a key after this many batches without data (0: never).
	ExpireAfter int `yaml:"expireAfter"`
}

// Sink is a named output.
type Sink struct {
	Name  string `yaml:"name"`
	Input string `yaml:"input"`
	// Type is stdout (default), file, mqtt or uplink.
	Type string `yaml:"type"`
	// Path is the file of a file sink.
	Path string `yaml:"path"`
	// Topic is the topic template of an mqtt sink.
	Topic  string `yaml:"topic"`
	QoS    int    `yaml:"qos"`
	Retain bool   `yaml:"retain"`
	// Format is jsonl (default) or csv.
	Format string `yaml:"format"`
}

// HistorySpec writes the step's input into a history table and passes it
// on (see engine.WriteHistory).
type HistorySpec struct {
	// Table names the table, on this gateway, shared by all pipelines.
	Table string `yaml:"table"`
	// Keys are the key columns: fields of the input.
	Keys []string `yaml:"keys"`
	// Time is the field (of type time) holding a row's time; empty means
	// the record's event time (for a window's rows, name window_start).
	Time string `yaml:"time"`
	// Keep is the retention, e.g. 7d. Zero keeps rows until maxRows.
	Keep Span `yaml:"keep"`
	// MaxRows is the table's row budget; zero means 1,000,000.
	MaxRows int64 `yaml:"maxRows"`
}

// LookupSpec says which rows of a history table a record reads.
type LookupSpec struct {
	// Table names the table read.
	Table string `yaml:"table"`
	// Keys are the table's key columns, in its order, read from the
	// record's fields of the same names.
	Keys []string `yaml:"keys"`
	// Time is the record's time field; empty means its event time.
	Time string `yaml:"time"`
	// Align floors the record's time to a multiple of it (e.g. 1h to read
	// the hourly rows of raw readings).
	Align Span `yaml:"align"`
	// Offset and Periods read the rows at time-offset, time-2*offset, ...,
	// time-periods*offset (periods default 1): 24h for the same time
	// yesterday; 24h and 7 for the same time on the last 7 days; 1h and
	// 168 for the last 7 days of hourly rows.
	Offset  Span `yaml:"offset"`
	Periods int  `yaml:"periods"`
}

// HistoryJoinSpec joins records with rows of a history table (see
// engine.JoinHistory).
type HistoryJoinSpec struct {
	LookupSpec `yaml:",inline"`
	// Fields are the table columns read, with their types.
	Fields []FieldSpec `yaml:"fields"`
	// Prefix names the output columns (default hist_).
	Prefix string `yaml:"prefix"`
	// Left keeps records without a row, with null columns.
	Left bool `yaml:"left"`
}

// AnomalySpec is an online anomaly model per key (see engine.Anomaly).
type AnomalySpec struct {
	Rule     string        `yaml:"rule"`
	Keys     []string      `yaml:"keys"`
	Value    string        `yaml:"value"`
	Alpha    float64       `yaml:"alpha"`
	K        float64       `yaml:"k"`
	Warmup   int           `yaml:"warmup"`
	MinStd   float64       `yaml:"minStd"`
	Baseline *BaselineSpec `yaml:"baseline"`
}

// BaselineSpec is an anomaly step's seasonal baseline: the mean of a
// history table's column over the rows the lookup reads. Its keys default
// to the step's.
type BaselineSpec struct {
	LookupSpec `yaml:",inline"`
	// Field is the table column holding the baseline value.
	Field string `yaml:"field"`
}

// Span is a duration that also takes days and weeks: 90s, 30m, 12h, 7d, 2w.
type Span time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Span) UnmarshalYAML(n *yaml.Node) error {
	if msg := s.CheckYAML(n); msg != "" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	d, _ := ParseSpan(n.Value)
	*s = Span(d)
	return nil
}

// CheckYAML implements yamlcheck.Checker.
func (s *Span) CheckYAML(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return "must be a duration (use e.g. 30m, 12h, 7d), not a list or mapping"
	}
	if _, err := ParseSpan(n.Value); err != nil {
		return fmt.Sprintf("%q is not a duration; use e.g. 30m, 12h, 7d", n.Value)
	}
	return ""
}

// ParseSpan parses a Span: a Go duration, or a whole number of days (d) or
// weeks (w).
func ParseSpan(v string) (time.Duration, error) {
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, unit); ok {
			i, err := strconv.Atoi(n)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration", v)
			}
			return time.Duration(i) * d, nil
		}
	}
	if v == "0" {
		return 0, nil
	}
	return time.ParseDuration(v)
}

// D returns the span as a time.Duration.
func (s Span) D() time.Duration { return time.Duration(s) }
