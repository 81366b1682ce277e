package conformance

import (
	"fmt"
	"testing"
)

// TestExtraDStreamVectors runs the hand-written vectors of
// testdata/extra_dstream.json (cases the Spark file lacks) through the same
// runner.
func TestExtraDStreamVectors(t *testing.T) {
	f, err := Load("testdata/extra_dstream.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) { runDStream(t, &v) })
	}
}

// TestDStreamVectorsSurviveRestart runs every dstream vector twice: once in
// one executor, once rebuilding the plan and executor from the same store
// after every batch. The restored run must produce identical outputs (same
// records in the same order) and identical state snapshots.
func TestDStreamVectorsSurviveRestart(t *testing.T) {
	for _, path := range []string{vectorsPath(), "testdata/extra_dstream.json"} {
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range f.Vectors {
			if v.Kind != "dstream" {
				continue
			}
			t.Run(v.Name, func(t *testing.T) {
				a, err := newDStreamRun(&v, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, wantSnaps, err := a.run(0)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := newDStreamRun(&v, nil)
				got, gotSnaps, err := b.run(1)
				if err != nil {
					t.Fatal(err)
				}
				if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
					t.Fatalf("outputs with restarts: got %s; want %s", g, w)
				}
				if g, w := fmt.Sprint(gotSnaps), fmt.Sprint(wantSnaps); g != w {
					t.Fatalf("state with restarts: got %s; want %s", g, w)
				}
			})
		}
	}
}
