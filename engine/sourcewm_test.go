package engine

import (
	"slices"
	"testing"
	"time"
)

// TestPerSourceWatermarksSurviveRestart: in a two-source event-time
// pipeline, a restart between epochs must restore each source's own
// watermark. Source "in" runs ahead (its watermark 48 s) while "other" lags
// (8 s), so the pipeline's watermark is 8 s; then "other" jumps ahead. The
// uninterrupted run's watermark becomes 48 s ("in" holds it), which closes
// [10 s, 20 s) and makes a record of "in" at 25 s late for [20 s, 30 s)...
// only if "in" is known to stand at 48 s. A run restarted from a checkpoint
// that kept only the global watermark would restart "in" at 8 s, hold the
// pipeline there, and count the late record instead. Every step's outputs
// and watermark must be identical with and without restarts, with the idle
// rule off and on.
func TestPerSourceWatermarksSurviveRestart(t *testing.T) {
	steps := []idleStep{
		{t: 1000, in: []int64{5000, 12000}, other: []int64{3000}},
		{t: 2000, in: []int64{50000}, other: []int64{10000}}, // in: 48 s, other: 8 s
		{t: 3000, other: []int64{11000}},                     // other: 9 s
		{t: 4000, other: []int64{60000}},                     // other: 58 s; global: 48 s
		{t: 5000, in: []int64{25000, 51000}},                 // 25 s is late for [20 s, 30 s)
		{t: 6000, in: []int64{70000}, other: []int64{72000}},
	}
	for _, idle := range []time.Duration{0, time.Hour} {
		want := runIdle(t, NewMemStore(), idle, true, steps)
		restarted := slices.Clone(steps)
		for i := 1; i < len(restarted); i++ {
			restarted[i].restart = true
		}
		got := runIdle(t, NewMemStore(), idle, true, restarted)
		if !slices.Equal(got, want) {
			t.Errorf("idle %v: with restarts got\n%q\nwant\n%q", idle, got, want)
		}
		// The scenario must reach the case it is about.
		if want[3] != "t=4000 wm=48000 [window_start=0 window_end=10000 n=2] [window_start=10000 window_end=20000 n=3]" {
			t.Errorf("idle %v: uninterrupted step 4 %q: the scenario no longer closes windows at 48 s", idle, want[3])
		}
	}
}
