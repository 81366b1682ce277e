package runner_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/runner"
)

// With StandbyHold, a promoted standby emits the windows it closed while
// standing by (the dead owner may never have delivered them), with their
// values, ahead of its own outputs, and then nothing of them again.
func TestPromotedStandbyReleasesTheOutputsItHeld(t *testing.T) {
	emit := false
	own := promotable(&emit)
	l, s := newMemLog(), newMemStore()
	c := compile(t, windowed)
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: 2, Log: l, Store: s, Owner: own, Encode: decode.AppendJSON, MaxRecords: 1000,
		StandbyHold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Window [10s, 11s) of each of 4 sensors (5 readings) closes while
	// standing by; window [20s, 21s) (3 readings) stays open.
	l.add("in", readings(4, 5, 10_000)...)
	l.add("in", readings(4, 3, 20_000)...)
	runAll(t, r, 1)
	if len(s.outputs) != 0 {
		t.Fatalf("standby outputs: got %d; want 0", len(s.outputs))
	}
	emit = true // promoted
	l.add("in", `{"sensor":"s000","ts":99999999,"v":0}`, `{"sensor":"s001","ts":99999999,"v":0}`,
		`{"sensor":"s002","ts":99999999,"v":0}`, `{"sensor":"s003","ts":99999999,"v":0}`)
	if _, err := r.RunEpoch(context.Background(), 2000); err != nil {
		t.Fatal(err)
	}
	count := func() (n float64, terms map[uint64]int) {
		terms = map[uint64]int{}
		for _, o := range s.outputs {
			id, _ := engine.ParseOutputID(o.ID)
			terms[id.Term]++
			var m map[string]any
			json.Unmarshal(o.Data, &m)
			n += m["n"].(float64)
		}
		return n, terms
	}
	n, terms := count()
	if n != 32 {
		t.Errorf("readings in the promoted partitions' windows: got %v; want 32 (20 held + 12 open)", n)
	}
	if terms[3] != 4 || terms[4] != 4 {
		t.Errorf("outputs by term: %v; want 4 held (term 3) and 4 new (term 4)", terms)
	}
	// The held outputs are released once.
	l.add("in", `{"sensor":"s000","ts":199999999,"v":0}`)
	if _, err := r.RunEpoch(context.Background(), 3000); err != nil {
		t.Fatal(err)
	}
	if _, terms := count(); terms[3] != 4 {
		t.Errorf("after another epoch, outputs by term: %v; want the 4 held ones (term 3) once", terms)
	}
}
