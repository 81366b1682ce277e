package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// idleStep is one epoch of an idle-rule test: its processing time (ms), the
// event times (ms) of the records of source "in" (and of "other", for
// two-source plans), and whether the executor is rebuilt from the store
// before it (a restart).
type idleStep struct {
	t       int64
	in      []int64
	other   []int64
	restart bool
}

// idlePlan is a 10 s tumbling count over source "in" (watermark 2 s behind,
// idle timeout idle), optionally unioned with a second source "other".
func idlePlan(t *testing.T, idle time.Duration, twoSources bool) *Plan {
	t.Helper()
	b := NewBuilder("idle")
	opts := []SourceOption{WithWatermark(2 * time.Second), WithIdleTimeout(idle)}
	s := b.Source("in", aggTestSchema, opts...)
	if twoSources {
		s = b.Apply("both", Union(), s, b.Source("other", aggTestSchema, opts...))
	}
	b.Sink("out", s.Then("win", WindowAggregate(WindowConfig{Aggs: []AggSpec{{Func: "count", As: "n"}}, Size: 10000})))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runIdle runs the steps and returns, per step, the window outputs and the
// watermark, formatted.
func runIdle(t *testing.T, store *MemStore, idle time.Duration, twoSources bool, steps []idleStep) []string {
	t.Helper()
	open := func() *Executor {
		x, err := NewExecutor(idlePlan(t, idle, twoSources), Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	x := open()
	var got []string
	pos := uint64(0)
	for _, st := range steps {
		if st.restart {
			x = open()
		}
		for _, ts := range st.in {
			x.Input("in").AppendValues(ts, String("a"), Number(1))
		}
		for _, ts := range st.other {
			x.Input("other").AppendValues(ts, String("b"), Number(1))
		}
		pos += uint64(len(st.in))
		x.SetPosition("in", pos)
		res, err := x.RunEpochAt(context.Background(), st.t)
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("t=%d wm=%d", st.t, res.Watermark)
		o := res.Outputs[0]
		for j := range o.Recs {
			line += " [" + formatRecord(o.Schema, &o.Recs[j]) + "]"
		}
		got = append(got, line)
	}
	return got
}

func TestIdleSourceClosesWindowAfterTimeout(t *testing.T) {
	steps := []idleStep{
		{t: 1000, in: []int64{1000, 2000, 3000}},
		{t: 2000}, {t: 6000}, {t: 9000},
		{t: 10000}, // idle 9 s: watermark 1000+9000 = 10000 closes [0,10000)
		{t: 11000},
	}
	want := []string{
		"t=1000 wm=1000",
		"t=2000 wm=1000", // idle 1 s < 5 s
		"t=6000 wm=6000", // idle 5 s: nothing to close, not committed
		"t=9000 wm=9000",
		"t=10000 wm=10000 [window_start=0 window_end=10000 n=3]",
		"t=11000 wm=11000",
	}
	store := NewMemStore()
	got := runIdle(t, store, 5*time.Second, false, steps)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if cp, _ := store.LastCheckpoint("idle", 0); cp.Epoch != 2 || cp.Watermark != 10000 {
		t.Errorf("checkpoint %+v; want epoch 2 (the input and the closing epoch) at watermark 10000", cp)
	}

	// Off: the window stays open for ever.
	got = runIdle(t, NewMemStore(), 0, false, append(steps, idleStep{t: 1e9}))
	for _, l := range got {
		if slices.Contains([]byte(l), '[') {
			t.Fatalf("idle timeout 0 emitted a window: %q", got)
		}
	}
}

func TestIdleRuleReplaysIdenticallyAfterRestarts(t *testing.T) {
	steps := []idleStep{
		{t: 1000, in: []int64{1000, 2000}},
		{t: 2000, in: []int64{12500}},
		{t: 3000}, {t: 8000}, {t: 9000},
		{t: 20000}, {t: 21000, in: []int64{15000, 30000}}, // 15000 is late (watermark 28500)
		{t: 22000}, {t: 27000}, {t: 35000},
	}
	want := runIdle(t, NewMemStore(), 5*time.Second, false, steps)
	restarted := slices.Clone(steps)
	for i := range restarted {
		restarted[i].restart = true
	}
	got := runIdle(t, NewMemStore(), 5*time.Second, false, restarted)
	if !slices.Equal(got, want) {
		t.Fatalf("with a restart before every epoch got\n%q\nwant\n%q", got, want)
	}
	if !slices.ContainsFunc(want, func(l string) bool { return l == "t=20000 wm=28500 [window_start=10000 window_end=20000 n=1]" }) {
		t.Fatalf("idle rule did not close [10000,20000) at t=20000: %q", want)
	}
}

func TestIdleClockCountsDowntime(t *testing.T) {
	// The rule depends on committed state and the epoch's time only: the
	// time a node was down counts as idle time, as it would in a run that
	// never stopped.
	steps := []idleStep{
		{t: 1000, in: []int64{1000}},
		{t: 100000, restart: true},
	}
	want := []string{
		"t=1000 wm=0",
		"t=100000 wm=99000 [window_start=0 window_end=10000 n=1]",
	}
	got := runIdle(t, NewMemStore(), 5*time.Second, false, steps)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestSourceWithoutInputLeavesWatermarkAfterTimeout(t *testing.T) {
	steps := []idleStep{
		{t: 1000, in: []int64{1000}},
		{t: 2000, in: []int64{14000}}, // "other" never had input: holds the watermark at 0
		{t: 5000, in: []int64{15000}}, // 4 s since the first epoch: still held
		{t: 6000, in: []int64{16000}}, // 5 s: "other" leaves the minimum
	}
	want := []string{
		"t=1000 wm=0",
		"t=2000 wm=0",
		"t=5000 wm=0",
		"t=6000 wm=14000 [window_start=0 window_end=10000 n=1]",
	}
	got := runIdle(t, NewMemStore(), 5*time.Second, true, steps)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}
