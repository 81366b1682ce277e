package node

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const twoSourcePipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: twosrc}
spec:
  interval: 1s
  idleTimeout: 0s
  sources:
    - name: a
      http: {}
      eventTime: ts
      watermark: 2s
      fields: [{name: ts, type: time}]
    - name: b
      http: {}
      eventTime: ts
      watermark: 2s
      fields: [{name: ts, type: time}]
  steps:
    - {name: both, inputs: [a, b], union: {}}
    - name: per10s
      input: both
      window:
        type: tumbling
        size: 10s
        aggregates: [{n: count()}]
  sinks:
    - {name: out, input: per10s, type: file, path: windows.jsonl}
`

// TestTwoSourceWatermarksSurviveNodeRestarts runs a two-source event-time
// pipeline through the node (input log, runner, bbolt checkpoints) twice:
// without a restart, and with the node stopped and started again between
// every two epochs. Source a runs ahead of b, then b overtakes it, then a
// sends a record that is late only if a's own watermark was kept: the
// windows emitted, and so the late-data decisions, must be identical.
func TestTwoSourceWatermarksSurviveNodeRestarts(t *testing.T) {
	steps := []struct{ a, b []int }{
		{a: []int{5000, 12000}, b: []int{3000}},
		{a: []int{50000}, b: []int{10000}},
		{b: []int{11000}},
		{b: []int{60000}},
		{a: []int{25000, 51000}}, // 25 s is late: a stands at 48 s
		{a: []int{70000}, b: []int{72000}},
	}
	run := func(restart bool) []string {
		dir := t.TempDir()
		cfg := testConfig(t, dir, map[string]string{"twosrc": twoSourcePipeline})
		clock := newFakeClock(t0)
		tn := startNode(t, cfg, clock)
		push := func(src string, ts []int) {
			if len(ts) == 0 {
				return
			}
			var b strings.Builder
			for _, v := range ts {
				fmt.Fprintf(&b, "{\"ts\":%d}\n", v)
			}
			if code, body := post(t, tn.Handler(), "/api/v1/ingest/twosrc/"+src, "", b.String()); code != 200 {
				t.Fatalf("push: %d %s", code, body)
			}
		}
		for i, st := range steps {
			if restart && i > 0 {
				tn.stop(t)
				tn = startNode(t, cfg, clock)
			}
			push("a", st.a)
			push("b", st.b)
			tn.epoch(t, "twosrc")
		}
		tn.stop(t)
		var out []string
		for _, l := range readLines(t, filepath.Join(cfg.outputDir(), "windows.jsonl")) {
			out = append(out, fmt.Sprint(l["window_start"], "-", l["window_end"], ":", l["n"]))
		}
		return out
	}
	want := run(false)
	if !slices.Contains(want, "10000-20000:3") || slices.Contains(want, "20000-30000:1") {
		t.Fatalf("uninterrupted windows %q: the scenario no longer closes [10 s, 20 s) at a's watermark and drops 25 s as late", want)
	}
	if got := run(true); !slices.Equal(got, want) {
		t.Fatalf("with restarts between epochs got\n%q\nwant\n%q", got, want)
	}
}
