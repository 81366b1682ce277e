package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
	// by is "term/epoch": held outputs keep their standby epoch (1) and
	// carry the new term, which emitted them.
	count := func() (n float64, by map[string]int) {
		by = map[string]int{}
		for _, o := range s.outputs {
			id, _ := engine.ParseOutputID(o.ID)
			by[fmt.Sprintf("%d/%d", id.Term, id.Epoch)]++
			var m map[string]any
			json.Unmarshal(o.Data, &m)
			n += m["n"].(float64)
		}
		return n, by
	}
	n, by := count()
	if n != 32 {
		t.Errorf("readings in the promoted partitions' windows: got %v; want 32 (20 held + 12 open)", n)
	}
	if by["4/1"] != 4 || by["4/2"] != 4 || len(by) != 2 {
		t.Errorf("outputs by term/epoch: %v; want 4 held (4/1) and 4 new (4/2), all under the new term", by)
	}
	// The held outputs are released once.
	l.add("in", `{"sensor":"s000","ts":199999999,"v":0}`)
	if _, err := r.RunEpoch(context.Background(), 3000); err != nil {
		t.Fatal(err)
	}
	if _, by := count(); by["4/1"] != 4 {
		t.Errorf("after another epoch, outputs by term/epoch: %v; want the 4 held ones (4/1) once", by)
	}
}

// markerOwner is a promotable Ownership that also implements
// runner.Marker: the previous owner's mark is fence, and what this node
// commits as owner is recorded.
type markerOwner struct {
	emit      bool
	fence     int64
	committed []runner.Mark
}

func (m *markerOwner) Claims(_ string, n int) []runner.Claim {
	term := uint64(3)
	if m.emit {
		term = 4
	}
	cs := make([]runner.Claim, n)
	for i := range cs {
		cs[i] = runner.Claim{Partition: i, Term: term, Emit: m.emit}
	}
	return cs
}

func (m *markerOwner) Committed(_ string, marks []runner.Mark) {
	m.committed = append(m.committed, marks...)
}

func (m *markerOwner) EmittedThrough(string, int) (int64, bool) { return m.fence, true }

// A new owner emits exactly what the previous owner did not commit: the
// windows it closed (as a standby, or as an owner still catching up) in
// epochs whose watermark did not pass the previous owner's mark are
// dropped, in an epoch that straddles the mark a window is dropped only if
// its end is at or before the mark, and everything after is emitted. The
// owner reports its committed watermarks.
func TestNewOwnerEmitsOnlyWhatThePreviousOwnerDidNotCommit(t *testing.T) {
	for _, promoteFirst := range []bool{false, true} {
		name := "promoted standby"
		if promoteFirst {
			name = "owner catching up"
		}
		t.Run(name, func(t *testing.T) {
			own := &markerOwner{fence: 14_500, emit: promoteFirst}
			l, s := newMemLog(), newMemStore()
			c := compile(t, windowed)
			r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
				Partitions: 1, Log: l, Store: s, Owner: own, Encode: decode.AppendJSON, MaxRecords: 1000,
				StandbyHold: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			epoch := func(k int, ts ...int64) {
				for _, x := range ts {
					l.add("in", readings(2, 1, x)...)
				}
				if _, err := r.RunEpoch(context.Background(), int64(k)*1000); err != nil {
					t.Fatal(err)
				}
			}
			epoch(1, 10_000, 10_100, 12_000) // closes [10s,11s): watermark 12s <= the mark
			epoch(2, 13_000)                 // closes [12s,13s): watermark 13s <= the mark
			epoch(3, 14_200, 16_000)         // closes [13s,14s) (end <= the mark) and [14s,15s) (after it)
			own.emit = true
			epoch(4, 17_000) // closes [16s,17s)
			var got []string
			for _, o := range s.outputs {
				var m map[string]any
				json.Unmarshal(o.Data, &m)
				got = append(got, fmt.Sprintf("%s@%v n=%v", m["sensor"], m["window_start"], m["n"]))
			}
			sort.Strings(got)
			want := []string{"s000@14000 n=1", "s000@16000 n=1", "s001@14000 n=1", "s001@16000 n=1"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("emitted windows:\n got %v\nwant %v", got, want)
			}
			if len(own.committed) == 0 || own.committed[len(own.committed)-1].Watermark != 17_000 || own.committed[len(own.committed)-1].Term != 4 {
				t.Errorf("marks reported: %+v; want the last at watermark 17000, term 4", own.committed)
			}
		})
	}
}
