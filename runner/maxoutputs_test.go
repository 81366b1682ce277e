package runner_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/runner"
)

// A watermark jump that closes more windows than MaxOutputs is emitted over
// several epochs: each reports more, takes no input (a record must not reach
// a window that closed before it), and marks the watermark through which its
// outputs are complete, not the one that closed the windows (a new owner
// would drop the windows still waiting). Once none waits, input is read
// again; the rows are those of a runner without the bound.
func TestMaxOutputsEpochsTakeNoInputUntilClosedWindowsAreOut(t *testing.T) {
	run := func(maxOut int) (outs []engine.Output, marks []runner.Mark, mores []bool, positions []uint64) {
		own := &markerOwner{fence: engine.NoWatermark, emit: true}
		l, s := newMemLog(), newMemStore()
		c := compile(t, windowed)
		r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
			Partitions: 1, Log: l, Store: s, Owner: own, Encode: decode.AppendJSON, MaxRecords: 100_000, MaxOutputs: maxOut})
		if err != nil {
			t.Fatal(err)
		}
		// 100 sensors over 3 s of event time, then a reading an hour later:
		// 300 window rows close at once.
		l.add("in", readings(100, 30, 10_000)...)
		l.add("in", `{"sensor":"s000","ts":3600000,"v":0}`)
		for e := 1; e <= 6; e++ {
			more, err := r.RunEpoch(context.Background(), int64(e)*1000)
			if err != nil {
				t.Fatal(err)
			}
			if e == 1 {
				// Input that arrives while windows wait.
				l.add("in", readings(100, 2, 3_600_000)...)
			}
			mores = append(mores, more)
			cp, err := s.LastCheckpoint("w", runner.PipelinePartition)
			if err != nil {
				t.Fatal(err)
			}
			positions = append(positions, cp.Input["in"])
		}
		return s.outputs, own.committed, mores, positions
	}
	freeOuts, _, _, _ := run(-1)
	outs, marks, mores, positions := run(150)
	if len(outs) != len(freeOuts) || len(outs) < 300 {
		t.Fatalf("%d outputs; want %d (at least 300), as without the bound", len(outs), len(freeOuts))
	}
	for i := range outs {
		if string(outs[i].Data) != string(freeOuts[i].Data) {
			t.Fatalf("output %d: got %s; want %s", i, outs[i].Data, freeOuts[i].Data)
		}
	}
	// Epoch 1 closes 3 windows of 100 rows and emits 2 (150 rows of budget:
	// whole windows); epoch 2 emits the third and takes no input; epoch 3
	// reads the input that came meanwhile.
	if fmt.Sprint(mores[:3]) != "[true false false]" {
		t.Errorf("more after epochs 1-3: %v; want [true false false]", mores[:3])
	}
	if positions[1] != positions[0] || positions[2] <= positions[1] {
		t.Errorf("input positions after epochs 1-3: %v; want epoch 2 to take none and epoch 3 the rest", positions[:3])
	}
	if len(marks) < 2 || marks[0].Watermark != 12_000 || marks[1].Watermark != 3_600_000 {
		t.Errorf("marks: %+v; want the first at 12000 (the end of the last window emitted), the second at the watermark 3600000", marks)
	}
}
