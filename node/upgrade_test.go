package node

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

// The fixture testdata/upgrade-0.1.tar.gz is a data directory written by
// edged 0.1 (commit c325e8d), SIGKILLed with input logged and not consumed:
//
//   - pipeline a-win (tumbling 10 s windows per sensor, file sink win.jsonl)
//     read the 20,000 lines of upgradeFileInput through --input, one epoch
//     of 1,000 lines a second;
//   - pipeline mq (filter temp > 10, file sink mq.jsonl) read the 6,000
//     messages of upgradeMQTTInput, published with QoS 1 to the embedded
//     broker (every one acknowledged, so durable in mq's own log);
//
// with data/edged.db, the sinks' files in out/ and the pipelines in pipes/.
// Made by: git archive c325e8d | tar -x -C /tmp/old; go build ./cmd/edged;
// edged run -c edged.yaml (mqtt.listen on a free port, epochs.maxRecords
// 1000) --input input.jsonl, mosquitto_pub -q 1 -l < mqtt.jsonl, kill -9
// after 2.7 s.

func upgradeFileInput(i int) string {
	return fmt.Sprintf(`{"sensor": "s-%02d", "ts": %d, "temp": %g}`, i%13, 1732450000000+int64(i)*100, float64((i*7)%50)*0.25)
}

func upgradeMQTTTemp(i int) float64 { return float64((i*11)%40) * 0.5 }

func extractFixture(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// runUntil runs a node on cfg until done reports true.
func runUntil(t *testing.T, cfg Config, input string, done func() error) {
	t.Helper()
	n, err := New(cfg, WithInputFile(input))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	eventually(t, 30*time.Second, done)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// countLines counts the complete lines of a file being written.
func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// outputRows reads a file sink's lines without their ids, as JSON texts
// with sorted keys, and the ids.
func outputRows(t *testing.T, path string) (rows, ids []string) {
	t.Helper()
	for _, m := range readLines(t, path) {
		ids = append(ids, fmt.Sprint(m["_id"]))
		delete(m, "_id")
		b, _ := json.Marshal(m) // sorted keys
		rows = append(rows, string(b))
	}
	return rows, ids
}

// TestUpgradeFromEdged01KeepsUnconsumedInput: a data directory of edged 0.1
// that was killed with logged, unconsumed input (from an input file and
// from acknowledged MQTT messages) continues under this version exactly
// once: every window and every filtered reading is in the sinks' files
// once, equal to an uninterrupted run's, and the old logs are gone.
func TestUpgradeFromEdged01KeepsUnconsumedInput(t *testing.T) {
	dir := t.TempDir()
	extractFixture(t, filepath.Join("testdata", "upgrade-0.1.tar.gz"), dir)
	var lines []string
	for i := range 20000 {
		lines = append(lines, upgradeFileInput(i))
	}
	input := filepath.Join(dir, "input.jsonl")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(data, out string) Config {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.PipelinesDir, cfg.OutputDir = data, filepath.Join(dir, "pipes"), out
		cfg.API.Listen, cfg.MQTT.Listen, cfg.Storage.Sync = "", "", "never"
		cfg.Epochs.Virtual = true
		cfg.Epochs.StateEvery = -1 // a consumed upgrade log goes once the state past it is committed
		return cfg
	}

	// The readings the mq pipeline must have passed on: all 6,000 were
	// acknowledged to the publisher by edged 0.1.
	var wantMQ []string
	for i := range 6000 {
		if upgradeMQTTTemp(i) > 10 {
			wantMQ = append(wantMQ, fmt.Sprintf("m-%02d/%d", i%7, 1732450000000+int64(i)*100))
		}
	}
	mqRows := func(path string) []string {
		var got []string
		for _, m := range readLines(t, path) {
			got = append(got, fmt.Sprintf("%v/%d", m["sensor"], int64(m["ts"].(float64))))
		}
		return got
	}
	// An uninterrupted run of a-win over the same input.
	ref := filepath.Join(t.TempDir(), "ref")
	runUntil(t, config(filepath.Join(ref, "data"), filepath.Join(ref, "out")), input, func() error {
		if got := countLines(filepath.Join(ref, "out", "win.jsonl")); got < 2587 {
			return fmt.Errorf("reference: %d windows", got)
		}
		return nil
	})
	wantWin, _ := outputRows(t, filepath.Join(ref, "out", "win.jsonl"))
	oldWin, _ := outputRows(t, filepath.Join(dir, "out", "win.jsonl"))
	oldMQ := mqRows(filepath.Join(dir, "out", "mq.jsonl"))
	if len(oldWin) == 0 || len(oldWin) >= len(wantWin) || len(oldMQ) == 0 || len(oldMQ) >= len(wantMQ) {
		t.Fatalf("fixture: edged 0.1 wrote %d of %d windows and %d of %d readings; want some of each", len(oldWin), len(wantWin), len(oldMQ), len(wantMQ))
	}

	runUntil(t, config(filepath.Join(dir, "data"), filepath.Join(dir, "out")), input, func() error {
		w, m := countLines(filepath.Join(dir, "out", "win.jsonl")), countLines(filepath.Join(dir, "out", "mq.jsonl"))
		if w < len(wantWin) || m < len(wantMQ) {
			return fmt.Errorf("%d of %d windows, %d of %d readings", w, len(wantWin), m, len(wantMQ))
		}
		return nil
	})
	gotWin, ids := outputRows(t, filepath.Join(dir, "out", "win.jsonl"))
	slices.Sort(gotWin)
	slices.Sort(wantWin)
	if !slices.Equal(gotWin, wantWin) {
		t.Errorf("a-win: %d windows differ from the uninterrupted run's %d", len(gotWin), len(wantWin))
	}
	if len(ids) != len(slices.Compact(slices.Sorted(slices.Values(ids)))) {
		t.Errorf("a-win: an output id repeats")
	}
	gotMQ := mqRows(filepath.Join(dir, "out", "mq.jsonl"))
	slices.Sort(gotMQ)
	slices.Sort(wantMQ)
	if !slices.Equal(gotMQ, wantMQ) {
		t.Errorf("mq: %d readings; want each of the %d once", len(gotMQ), len(wantMQ))
	}

	st0 := func() storage.Stats {
		db, err := storage.Open(filepath.Join(dir, "data", "edged.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if _, ok := st0().Log[UpgradeLog("mq", "readings")]; !ok {
		t.Errorf("no upgrade log for mq: its unconsumed input went elsewhere")
	}
	// The next start removes the consumed upgrade log.
	runUntil(t, config(filepath.Join(dir, "data"), filepath.Join(dir, "out")), input, func() error { return nil })
	if _, ok := st0().Log[UpgradeLog("mq", "readings")]; ok {
		t.Errorf("the consumed upgrade log is still there after a restart")
	}
	if got := countLines(filepath.Join(dir, "out", "mq.jsonl")); got != len(wantMQ) {
		t.Errorf("after a restart mq.jsonl has %d lines; want %d", got, len(wantMQ))
	}
	db, err := storage.Open(filepath.Join(dir, "data", "edged.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"a-win/readings", "mq/readings"} {
		if _, ok := st.Log[old]; ok {
			t.Errorf("the old log %q is still there", old)
		}
	}
	for _, p := range []string{"a-win", "mq"} {
		if cp, _ := db.LastCheckpoint(p, runner.PipelinePartition); cp.Input == nil {
			t.Errorf("pipeline %s has no record in the new layout", p)
		}
	}
}
