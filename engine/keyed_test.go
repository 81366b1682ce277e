package engine

import (
	"context"
	"strings"
	"testing"
	"time"
)

var kvSchema = MustSchema(Field{"key", KindString}, Field{"value", KindNumber})

func TestKeyedOpenNamesMissingField(t *testing.T) {
	tests := []struct {
		name string
		op   Operator
		want string
	}{
		{"reduceByKey key", ReduceByKey("k", "value", Sum), `key: unknown field: "k"`},
		{"window value", ReduceByKeyAndWindow("key", "v", Sum, 2*time.Second, time.Second), `value: unknown field: "v"`},
		{"inverse needs multiple", ReduceByKeyAndWindowInv("key", "value", Sum, Subtract, nil, 3*time.Second, 2*time.Second), "multiple of the slide"},
		{"join right value", Join(InnerJoin, "key", "nope"), `left value: unknown field: "nope"`},
		{"updateStateByKey nil fn", UpdateStateByKey(UpdateStateConfig{Key: "key", Value: "value"}), "Update function is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []*Schema{kvSchema}
			if _, ok := tc.op.(*joinOp); ok {
				in = append(in, kvSchema)
			}
			_, err := tc.op.Open(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReduceByKeySendsNullValuesToDeadLetter(t *testing.T) {
	b := NewBuilder("p")
	b.Sink("out", b.Source("in", kvSchema).Then("r", ReduceByKey("key", "value", Sum)))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	x, _ := NewExecutor(p, Options{DeadLetter: func(step string, r *Record, s *Schema, reason error) {
		dead = append(dead, step+": "+reason.Error())
	}})
	in := x.Input("in")
	in.AppendValues(0, String("a"), Int(1))
	in.AppendValues(0, String("a"), Null)
	in.AppendValues(0, String("a"), Int(2))
	res, err := x.RunEpochAt(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := res.Output(p, "out")
	if out.Len() != 1 || out.Recs[0].Vals[1].Num != 3 {
		t.Fatalf("got %d rows %v; want one row a=3", out.Len(), out.Recs)
	}
	if len(dead) != 1 || !strings.Contains(dead[0], `r: null value in reduced field "value"`) {
		t.Fatalf("got dead letters %q; want one for the null value", dead)
	}
}

func TestWindowedKeysAreRecycled(t *testing.T) {
	// Keys that left the window (naive form) must not stay interned forever.
	op := ReduceByKeyAndWindow("key", "value", Sum, 2*time.Second, time.Second).(windowedAgg)
	b := NewBuilder("p")
	b.Sink("out", b.Source("in", kvSchema).Then("w", op))
	p, _ := b.Build()
	x, _ := NewExecutor(p, Options{})
	for k := int64(1); k <= 10; k++ {
		x.Input("in").AppendValues(0, String(string(rune('a'+k))), Int(1))
		if _, err := x.RunEpochAt(context.Background(), k*1000); err != nil {
			t.Fatal(err)
		}
	}
	if got := op.d.live(); got != 2 {
		t.Fatalf("got %d interned keys; want 2 (the keys of the open window)", got)
	}
	if got := op.StateRows(); got != 2 {
		t.Fatalf("got %d state rows; want 2 panes", got)
	}
}
