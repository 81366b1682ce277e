package runner_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/runner"
)

// stepClock is a clock that moves only when told.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// withOwnHistory keeps its windows in a history table and joins each with
// the rows of the two windows before it, from that table.
const withOwnHistory = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: h}
spec:
  sources:
    - name: in
      fields:
        - {name: sensor, type: string}
        - {name: ts, type: time}
        - {name: v, type: number}
      eventTime: ts
      watermark: 0s
      key: [sensor]
  steps:
    - name: per-sensor
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - total: sum(v)
    - name: keep
      history: {table: totals, keys: [sensor], time: window_start, keep: 1d}
    - name: vs-before
      historyJoin:
        table: totals
        keys: [sensor]
        time: window_start
        offset: 1s
        periods: 2
        left: true
        fields: [{name: total, type: number}]
  sinks:
    - {name: out, input: vs-before, type: stdout}
`

// sparseReadings returns epoch e's input: a reading per sensor, event
// times moving 400 ms per epoch so that 1 s windows close along the way
// (two at once in epoch 11), and one undecodable entry (a dead letter)
// every third epoch.
func sparseReadings(e int) []string {
	var out []string
	ts := 10_000 + int64(e)*400
	if e >= 11 {
		ts += 1600 // epoch 11 closes two windows at once
	}
	for s := range 6 {
		out = append(out, fmt.Sprintf(`{"sensor":"s%03d","ts":%d,"v":%d}`, s, ts+int64(s), e*10+s))
	}
	if e%3 == 0 {
		out = append(out, "not json")
	}
	return out
}

// TestSparseStateCrashReplaysTheJournal protects exactly-once with state
// committed every StateEvery: a runner killed between two state
// checkpoints (after several epochs that committed only their outputs and
// position) restarts from the last state checkpoint, replays the journaled
// epochs from the log and then gives the same outputs, with the same ids,
// and the same dead letters, as a runner that committed its state every
// epoch and was never killed. Kills fall before the first state checkpoint,
// right after one, and between two; 1 and 4 partitions.
func TestSparseStateCrashReplaysTheJournal(t *testing.T) {
	const epochs = 14
	type result struct {
		outs []string
		dls  []string
	}
	run := func(t *testing.T, y string, parts int, every time.Duration, kills []int) result {
		t.Helper()
		l, s := newMemLog(), newMemStore()
		clk := &stepClock{now: time.Unix(1000, 0)}
		start := func() *runner.Runner {
			c := compile(t, y) // a restarted process compiles afresh (operators hold state)
			r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
				Partitions: parts, Log: l, Store: s, Clock: clk, Encode: decode.AppendJSON, MaxRecords: 1000, StateEvery: every})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r := start()
		for e := 1; e <= epochs; e++ {
			if slices.Contains(kills, e) {
				r = start() // the killed runner is dropped: nothing flushed
			}
			l.add("in", sparseReadings(e)...)
			if _, err := r.RunEpoch(context.Background(), int64(e)*1000); err != nil {
				t.Fatalf("epoch %d: %v", e, err)
			}
			clk.add(time.Second)
		}
		var res result
		for _, o := range s.outputs {
			res.outs = append(res.outs, o.ID+"="+string(o.Data))
		}
		// Partitions commit in the order they finish: compare by id.
		slices.Sort(res.outs)
		for _, d := range s.dls {
			res.dls = append(res.dls, fmt.Sprintf("%s@%d", d.Log, d.Offset))
		}
		return res
	}
	for _, y := range []string{windowed, withOwnHistory} {
		for _, parts := range []int{1, 4} {
			want := run(t, y, parts, 0, nil)
			if y == withOwnHistory && !slices.ContainsFunc(want.outs, func(o string) bool { return strings.Contains(o, `"hist_total":4`) }) {
				t.Fatalf("reference run: no window joined with an earlier one: %v", want.outs)
			}
			if len(want.outs) < 10 || len(want.dls) != 4 {
				t.Fatalf("%d partitions: reference run gave %d outputs and %d dead letters; want windows and 4", parts, len(want.outs), len(want.dls))
			}
			for _, kills := range [][]int{nil, {4}, {6}, {8, 9, 13}} {
				// State every 5 s (5 epochs), and in every epoch that
				// writes history rows.
				got := run(t, y, parts, 5*time.Second, kills)
				if !slices.Equal(got.outs, want.outs) {
					t.Errorf("%d partitions, killed before epochs %v: outputs\n got %v\nwant %v", parts, kills, got.outs, want.outs)
				}
				if fmt.Sprint(got.dls) != fmt.Sprint(want.dls) {
					t.Errorf("%d partitions, killed before epochs %v: dead letters %v; want %v", parts, kills, got.dls, want.dls)
				}
			}
		}
	}
}

// TestSparseStateCommitsStateEveryStateEvery protects the flash saving:
// epochs between state checkpoints write no partition state (the store's
// state is the last checkpoint's), the checkpoint comes after StateEvery,
// and until then the runner reports (Status.Replay) that the log must be
// kept from the checkpoint's position, also once restarted.
func TestSparseStateCommitsStateEveryStateEvery(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	clk := &stepClock{now: time.Unix(1000, 0)}
	c := compile(t, windowed)
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: 1, Log: l, Store: s, Clock: clk, Encode: decode.AppendJSON, MaxRecords: 1000, StateEvery: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		cp, err := s.LastCheckpoint("w", 0)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Epoch
	}
	for e := 1; e <= 5; e++ {
		l.add("in", sparseReadings(e)...)
		if _, err := r.RunEpoch(context.Background(), int64(e)*1000); err != nil {
			t.Fatal(err)
		}
		// The clock reaches 3 s past the start at epoch 4.
		want := uint64(0)
		if e >= 4 {
			want = 4
		}
		if got := stored(); got != want {
			t.Errorf("after epoch %d: the partition's stored checkpoint is at epoch %d; want %d", e, got, want)
		}
		clk.add(time.Second)
	}
	if st := r.Status(); st.Replay["in"] >= st.Position["in"] {
		t.Errorf("Status: replay from %d, position %d; want the replay to start at the state checkpoint, before", st.Replay["in"], st.Position["in"])
	}
	// A restart replays from the state checkpoint and keeps the journal.
	r2, err := runner.New(runner.Config{Compiled: compile(t, windowed), Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: 1, Log: l, Store: s, Clock: clk, Encode: decode.AppendJSON, MaxRecords: 1000, StateEvery: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := r.Status(), r2.Status(); a.Epoch != b.Epoch || !maps.Equal(a.Position, b.Position) || !maps.Equal(a.Replay, b.Replay) {
		t.Errorf("restarted: epoch %d, position %v, replay %v; want %d, %v, %v", b.Epoch, b.Position, b.Replay, a.Epoch, a.Position, a.Replay)
	}
}

// TestSparseStateGracefulStopLeavesNothingToReplay: a runner whose Run
// ends because its context did (SIGTERM, a pipeline stopped or replaced)
// commits the state it held for the next checkpoint, so the next start
// restores it and replays no epoch from the log; the outputs are not
// emitted again.
func TestSparseStateGracefulStopLeavesNothingToReplay(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	clk := &stepClock{now: time.Unix(1000, 0)}
	start := func() *runner.Runner {
		c := compile(t, windowed)
		r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
			Partitions: 2, Log: l, Store: s, Clock: clk, Encode: decode.AppendJSON, MaxRecords: 1000, StateEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := start()
	for e := 1; e <= 5; e++ {
		l.add("in", sparseReadings(e)...)
		if _, err := r.RunEpoch(context.Background(), int64(e)*1000); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Second)
	}
	if st := r.Status(); st.Replay["in"] >= st.Position["in"] {
		t.Fatalf("before the stop: replay from %d, position %d; want epochs held for the next checkpoint", st.Replay["in"], st.Position["in"])
	}
	outs := len(s.outputs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Replay["in"] != st.Position["in"] {
		t.Errorf("stopped: replay from %d, position %d; want nothing left to replay", st.Replay["in"], st.Position["in"])
	}
	r2 := start()
	if st := r2.Status(); st.Replay["in"] != st.Position["in"] || st.Position["in"] != r.Status().Position["in"] {
		t.Errorf("restarted: replay from %d, position %d; want both at the stopped runner's position %d", st.Replay["in"], st.Position["in"], r.Status().Position["in"])
	}
	if len(s.outputs) != outs {
		t.Errorf("the stop emitted %d outputs; want none", len(s.outputs)-outs)
	}
	// The restored state carries on: the next epochs emit what an
	// uninterrupted runner would.
	ref, rs := newMemLog(), newMemStore()
	rc := compile(t, windowed)
	rr, err := runner.New(runner.Config{Compiled: rc, Sources: []runner.Source{jsonSource(t, rc, "in")},
		Partitions: 2, Log: ref, Store: rs, Clock: &stepClock{now: time.Unix(1000, 0)}, Encode: decode.AppendJSON, MaxRecords: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= 14; e++ {
		ref.add("in", sparseReadings(e)...)
		if _, err := rr.RunEpoch(context.Background(), int64(e)*1000); err != nil {
			t.Fatal(err)
		}
		if e > 5 {
			l.add("in", sparseReadings(e)...)
			if _, err := r2.RunEpoch(context.Background(), int64(e)*1000); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func(st *memStore) []string {
		var out []string
		for _, o := range st.outputs {
			out = append(out, o.ID+"="+string(o.Data))
		}
		slices.Sort(out)
		return out
	}
	if got, want := ids(s), ids(rs); !slices.Equal(got, want) {
		t.Errorf("outputs across the graceful restart\n got %v\nwant %v", got, want)
	}
}
