package engine

import (
	"context"
	"testing"
)

// TestInnerJoinCountsUnmatched: the records an inner join drops are counted
// (so a user sees why readings vanish); a left join drops and counts none.
func TestInnerJoinCountsUnmatched(t *testing.T) {
	table := MustSchema(Field{"id", KindString}, Field{"site", KindString})
	rows := [][]Value{{String("s-1"), String("hall")}}
	for _, tc := range []struct {
		name                string
		op                  Operator
		wantOut, wantUnmatc uint64
	}{
		{"inner", StaticJoin("k", table, rows, "id"), 1, 2},
		{"left", StaticLeftJoin("k", table, rows, "id"), 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder("p")
			b.Sink("out", b.Source("in", aggTestSchema).Then("join", tc.op))
			p, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			x, _ := NewExecutor(p, Options{})
			for _, k := range []string{"s-1", "s-2", "s-3"} {
				x.Input("in").AppendValues(0, String(k), Number(1))
			}
			if _, err := x.RunEpochAt(context.Background(), 1000); err != nil {
				t.Fatal(err)
			}
			st, _ := x.StepStats("join")
			if st.Out != tc.wantOut || st.Unmatched != tc.wantUnmatc {
				t.Fatalf("out %d, unmatched %d; want %d and %d", st.Out, st.Unmatched, tc.wantOut, tc.wantUnmatc)
			}
			if src, _ := x.StepStats("in"); src.Out != 3 {
				t.Errorf("source records out %d; want 3", src.Out)
			}
		})
	}
}
