package node

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/pipeline"
)

const recordedPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: rec}
spec:
  interval: 1s
  sources:
    - name: readings
      fields:
        - {name: sensor, type: string}
        - {name: ts, type: time}
        - {name: temp, type: number}
      eventTime: ts
      watermark: 2s
      key: [sensor]
  steps:
    - name: per-second
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - avg: avg(temp)
          - total: sum(temp)
  sinks:
    - {name: out, input: per-second, type: file, path: rec.jsonl}
`

// recording writes readings of 40 sensors every 100 ms for 40 s, in
// arrival order, each up to 1.5 s late (within the 2 s watermark).
func recording(t *testing.T, path string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var b bytes.Buffer
	for ms := int64(0); ms < 40_000; ms += 100 {
		for s := range 40 {
			ts := 1_700_000_000_000 + ms - rng.Int64N(1500)
			fmt.Fprintf(&b, `{"sensor":"s%02d","ts":%d,"temp":%.2f}`+"\n", s, ts, 15+rng.Float64()*10)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBatchOverARecordingGivesTheLiveRunsOutputs runs `edged run --input
// FILE` (virtual epochs of epochs.maxRecords lines) and edged batch over the
// same recording: in arrival order (the default) every window the live run
// emitted is in the batch output byte for byte (batch also drains the windows
// still open at the end); sorted by event time the sums add up in another
// order and many averages differ in the last bits, which is why arrival order
// is the default.
func TestBatchOverARecordingGivesTheLiveRunsOutputs(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "recording.jsonl")
	recording(t, in)
	cfg := testConfig(t, dir, map[string]string{"rec": recordedPipeline})
	cfg.Epochs.Virtual = true
	cfg.Epochs.MaxRecords = 4096
	tn := startNode(t, cfg, newFakeClock(t0), WithInputFile(in))
	p := tn.pipeByName("rec")
	eventually(t, 30*time.Second, func() error {
		if !tn.fileDone.Load() || p.r.Status().Position[LogFile] != tn.logNext(LogFile) {
			return fmt.Errorf("live run not done: at %d of %d", p.r.Status().Position[LogFile], tn.logNext(LogFile))
		}
		return nil
	})
	livePath := filepath.Join(cfg.outputDir(), "rec.jsonl")
	var live []string
	eventually(t, 10*time.Second, func() error {
		live = nil
		st, _ := tn.db.SpoolStats() // before reading: what it counts is in the file
		b, _ := os.ReadFile(livePath)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			// {"_id":"ID",REST -> {REST: the bytes batch prints.
			if _, rest, ok := strings.Cut(l, `",`); ok && strings.HasPrefix(l, `{"_id":"`) {
				live = append(live, "{"+rest)
			}
		}
		if len(live) < 1000 || st["rec/out"].Depth > 0 {
			return fmt.Errorf("%d live outputs delivered, %d to go", len(live), st["rec/out"].Depth)
		}
		return nil
	})
	batch := func(order string) map[string]bool {
		c, err := pipeline.LoadAndCompile(filepath.Join(cfg.PipelinesDir, "rec.yaml")) // operators hold state
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		if _, err := pipeline.RunBatch(context.Background(), c, pipeline.BatchOptions{Input: f, Output: &out, Order: order, EpochLines: 4096}); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			set[l] = true
		}
		return set
	}
	missing := func(set map[string]bool) (k int, first string) {
		for _, l := range live {
			if !set[l] {
				if k == 0 {
					first = l
				}
				k++
			}
		}
		return k, first
	}
	arrival := batch("")
	if k, first := missing(arrival); k > 0 {
		t.Fatalf("arrival order: %d of %d live windows differ from batch's, e.g. %s", k, len(live), first)
	}
	if len(arrival)-len(live) > 3*40 {
		t.Fatalf("batch emitted %d windows, the live run %d: more than the last seconds' windows drained at the end", len(arrival), len(live))
	}
	k, _ := missing(batch(pipeline.OrderEventTime))
	t.Logf("%d live windows, all in batch's arrival-order output; %d differ from the event-time-sorted output", len(live), k)
	if k == 0 {
		t.Fatal("event-time order reproduced every live window: the recording no longer shows why arrival order is the default")
	}
}
