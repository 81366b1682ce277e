package runner_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
)

func runFrom(t *testing.T, r interface {
	RunEpoch(context.Context, int64) (bool, error)
}, from, epochs int) {
	t.Helper()
	for e := from; e < from+epochs; e++ {
		if _, err := r.RunEpoch(context.Background(), int64(e+1)*1000); err != nil {
			t.Fatalf("epoch %d: %v", e+1, err)
		}
	}
}

// A pipeline whose state is split in 8 partitions, restarted with
// epochs.partitions 4, 1 or 16, keeps its 8 (the state of a key lives in
// PartitionOf(key, 8)): its outputs equal an uninterrupted run's.
func TestChangedPartitionCountKeepsTheStateLayout(t *testing.T) {
	first := readings(40, 12, 10_000)
	second := append(readings(40, 12, 11_200), `{"sensor":"s000","ts":99999999,"v":0}`)
	l0, s0 := newMemLog(), newMemStore()
	r0 := newRunner(t, windowed, 8, l0, s0, nil)
	l0.add("in", first...)
	runFrom(t, r0, 0, 2)
	l0.add("in", second...)
	runFrom(t, r0, 2, 2)
	want := rows(s0.outputs)
	if len(want) == 0 {
		t.Fatal("no windows")
	}
	for _, m := range []int{4, 1, 16} {
		l, s := newMemLog(), newMemStore()
		r := newRunner(t, windowed, 8, l, s, nil)
		l.add("in", first...)
		runFrom(t, r, 0, 2)
		r2 := newRunner(t, windowed, m, l, s, nil)
		if r2.Partitions() != 8 {
			t.Errorf("restarted with %d partitions: runs %d; want the 8 its state is in", m, r2.Partitions())
		}
		l.add("in", second...)
		runFrom(t, r2, 2, 2)
		if got := rows(s.outputs); !slices.Equal(got, want) {
			t.Errorf("restarted with %d partitions: %d windows differ from the uninterrupted run's %d", m, len(got), len(want))
		}
	}
}

// A new version that cannot be partitioned (a window over all sensors)
// while the state is split in 8 partitions is refused, naming what to do.
func TestUnpartitionableVersionIsRefusedWhileStateIsSplit(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	r := newRunner(t, windowed, 8, l, s, nil)
	l.add("in", readings(10, 3, 10_000)...)
	runFrom(t, r, 0, 1)
	global := strings.Replace(windowed, "keys: [sensor]", "keys: []", 1)
	c := compile(t, global)
	_, err := newRunnerErr(t, c, 8, l, s)
	if err == nil || !strings.Contains(err.Error(), "8 partitions") || !strings.Contains(err.Error(), "delete the pipeline and apply it again") {
		t.Fatalf("New with an unpartitionable version: %v; want a refusal naming the 8 partitions and what to do", err)
	}
}

func newRunnerErr(t *testing.T, c *pipeline.Compiled, partitions int, l *memLog, s *memStore) (*runner.Runner, error) {
	t.Helper()
	return runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: partitions, Log: l, Store: s, Encode: decode.AppendJSON, MaxRecords: 1000})
}
