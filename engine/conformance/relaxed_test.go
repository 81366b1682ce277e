package conformance

import (
	"strings"
	"testing"
)

// TestRelaxedVectors runs the hand-written relaxed vectors of
// testdata/relaxed_vectors.json (compare "relaxed" with relaxed_checks)
// through the same runner as the Spark file.
func TestRelaxedVectors(t *testing.T) {
	f, err := Load("testdata/relaxed_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		if v.Compare != "relaxed" || v.RelaxedChecks == nil {
			t.Errorf("%s: not a relaxed vector", v.Name)
		}
		t.Run(v.Name, func(t *testing.T) { runDStream(t, &v) })
	}
}

// TestRelaxedChecksCatchWrongResults runs r_mapWithState_timeout with each
// check made wrong in turn (and with malformed relaxed vectors): the check
// must fail and say which one.
func TestRelaxedChecksCatchWrongResults(t *testing.T) {
	f, err := Load("testdata/relaxed_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	base := f.Vectors[0]
	if base.Name != "r_mapWithState_timeout" {
		t.Fatalf("first vector is %s", base.Name)
	}
	list := func(x ...any) *[]any { return &x }
	tests := []struct {
		name string
		edit func(v *Vector)
		want string
	}{
		{"outputs", func(v *Vector) { v.RelaxedChecks.AllOutputsFlattenedSorted = list("b") }, "all outputs flattened and sorted"},
		{"outputs doubled", func(v *Vector) { v.RelaxedChecks.AllOutputsFlattenedSorted = list("b", "b", "c") }, "all outputs flattened and sorted"},
		{"some snapshot", func(v *Vector) {
			v.RelaxedChecks.SomeStateSnapshotEquals = list([]any{"a", 1.0}, []any{"b", 1.0}, []any{"d", 1.0})
		}, "no state snapshot equals"},
		{"last snapshot", func(v *Vector) { v.RelaxedChecks.LastStateSnapshotEquals = list() }, "state after the last batch"},
		{"output times", func(v *Vector) { v.ExpectedTimesS = []int64{1, 2} }, "is not an output time"},
		{"no checks", func(v *Vector) { v.RelaxedChecks = nil }, "needs a relaxed_checks object"},
		{"empty checks", func(v *Vector) { v.RelaxedChecks = &RelaxedChecks{} }, "asserts nothing"},
		{"expected too", func(v *Vector) { v.Expected = []byte(`[[]]`) }, "instead of expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := base
			rc := *base.RelaxedChecks
			v.RelaxedChecks = &rc
			tt.edit(&v)
			r, err := newDStreamRun(&v, nil)
			if err != nil {
				t.Fatal(err)
			}
			outs, snaps, err := r.run(0)
			if err != nil {
				t.Fatal(err)
			}
			err = checkDStream(&v, r.sinkSchema, outs, snaps, r.stateStep != "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
