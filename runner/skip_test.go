package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/runner"
)

// A partition installed from a peer's state (node/handover.go) skips the
// entries of this node's log that the state already has: scattered
// offsets, as two logs hold one stream in other orders, and only for that
// partition (the others are fed them). The skips not yet passed are kept in
// the partition's commits, so a runner restarted between two of them
// still skips the later ones.
func TestInstalledPartitionSkipsTheEntriesItsStateHas(t *testing.T) {
	for _, parts := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d partitions", parts), func(t *testing.T) {
			l, s := newMemLog(), newMemStore()
			newRunner(t, windowed, parts, l, s, nil) // records its start at offset 1
			// Offsets 1-20: s000 at odd, s003 at even ones, in [10s, 11s).
			for i := range 10 {
				l.add("in", fmt.Sprintf(`{"sensor":"s000","ts":%d,"v":1}`, 10_000+i), fmt.Sprintf(`{"sensor":"s003","ts":%d,"v":1}`, 10_000+i))
			}
			p0, p3 := runner.PartitionOf("s000", parts), runner.PartitionOf("s003", parts)
			// The installed state of s000's partition has offsets 3, 5, 7
			// and 15 (s000's) and, when s003 shares it, 8.
			in := runner.SkipRanges("in", []uint64{3, 5, 7, 8, 15})
			want := map[string]float64{"s000": 6, "s003": 10}
			if p0 == p3 {
				want["s003"] = 9
			}
			cp := &engine.Commit{Pipeline: "w", Partition: p0, Epoch: 1, Watermark: engine.NoWatermark, Input: maps.Clone(in)}
			if err := s.CommitAll(context.Background(), []*engine.Commit{cp}); err != nil {
				t.Fatal(err)
			}
			r := newRunnerMax(t, parts, l, s, 6)  // reads 6 entries an epoch
			runAll(t, r, 1)                       // offsets 1-6
			r = newRunnerMax(t, parts, l, s, 100) // a restart
			l.add("in", `{"sensor":"s000","ts":99999999,"v":0}`, `{"sensor":"s003","ts":99999999,"v":0}`)
			if _, err := r.RunEpoch(context.Background(), 5000); err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, o := range s.outputs {
				var m map[string]any
				json.Unmarshal(o.Data, &m)
				if m["window_start"] == float64(10_000) {
					got[m["sensor"].(string)] += m["n"].(float64)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("readings counted per sensor: %v; want %v", got, want)
			}
		})
	}
}

func newRunnerMax(t *testing.T, parts int, l *memLog, s *memStore, max int) *runner.Runner {
	t.Helper()
	c := compile(t, windowed)
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: parts, Log: l, Store: s, Encode: decode.AppendJSON, MaxRecords: max})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
