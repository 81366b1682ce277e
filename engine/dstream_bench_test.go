package engine

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkReduceByKeyAndWindow feeds 10,000 keys per 1 s batch into a
// sliding window (slide 1 s) of 10 s and 60 s, naive and with an inverse. The
// cost per record must not grow with window/slide for the inverse form, and
// the naive form must stay O(panes x keys), never re-reading records.
func BenchmarkReduceByKeyAndWindow(b *testing.B) {
	const keys = 10000
	schema := MustSchema(Field{"key", KindNumber}, Field{"value", KindNumber})
	for _, inv := range []bool{false, true} {
		for _, win := range []time.Duration{10 * time.Second, 60 * time.Second} {
			name := fmt.Sprintf("naive/window=%s", win)
			if inv {
				name = fmt.Sprintf("inverse/window=%s", win)
			}
			b.Run(name, func(b *testing.B) {
				var op Operator
				if inv {
					op = ReduceByKeyAndWindowInv("key", "value", Sum, Subtract, nil, win, time.Second)
				} else {
					op = ReduceByKeyAndWindow("key", "value", Sum, win, time.Second)
				}
				bl := NewBuilder("bench")
				bl.Sink("out", bl.Source("in", schema).Then("w", op))
				p, err := bl.Build()
				if err != nil {
					b.Fatal(err)
				}
				x, err := NewExecutor(p, Options{})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				in := x.Input("in")
				batch := func(t int64) {
					for k := 0; k < keys; k++ {
						r := in.Append()
						r.Vals[0], r.Vals[1] = Int(int64(k)), Int(1)
					}
					if _, err := x.RunEpochAt(ctx, t*1000); err != nil {
						b.Fatal(err)
					}
				}
				// Warm up: fill the window so the steady state is measured.
				t := int64(1)
				for ; t <= int64(win/time.Second)+2; t++ {
					batch(t)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					batch(t)
					t++
				}
				b.ReportMetric(float64(b.N)*keys/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
