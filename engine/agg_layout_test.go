package engine

import (
	"context"
	"testing"
)

// TestWindowAggregatesSkipNulls checks the shared-count layout of a group's
// accumulators, for a plan of counts, sums, minimums and maximums and for one
// with cold parts (stddev, last): count(*) counts every row, while count,
// sum, min, max, avg and stddev of a field see only its non-null values,
// though they share one count.
func TestWindowAggregatesSkipNulls(t *testing.T) {
	for _, c := range []struct {
		name string
		aggs []AggSpec
		want map[string]float64
	}{
		{"hot only", []AggSpec{{Func: "count", As: "rows"}, {Func: "count", Field: "temp", As: "n"},
			{Func: "sum", Field: "temp", As: "sum"}, {Func: "min", Field: "temp", As: "min"},
			{Func: "max", Field: "temp", As: "max"}, {Func: "avg", Field: "temp", As: "avg"}},
			map[string]float64{"rows": 5, "n": 3, "sum": 9, "min": 1, "max": 5, "avg": 3}},
		{"cold parts", []AggSpec{{Func: "count", As: "rows"}, {Func: "count", Field: "temp", As: "n"},
			{Func: "min", Field: "temp", As: "min"}, {Func: "stddev", Field: "temp", As: "sd"},
			{Func: "avg", Field: "temp", As: "avg"}, {Func: "last", Field: "temp", As: "last"}},
			map[string]float64{"rows": 5, "n": 3, "min": 1, "sd": 2, "avg": 3, "last": 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngineRunner(t, WindowConfig{Keys: []string{"sensor"}, Aggs: c.aggs, Size: 1000}, 0)
			in := e.x.Input("in")
			for i, temp := range []Value{Number(1), Null, Number(3), Null, Number(5)} {
				r := in.Append()
				r.Time = int64(100 * i)
				r.Vals[0], r.Vals[1] = String("a"), temp
			}
			r := in.Append() // closes the window
			r.Time = 5000
			r.Vals[0], r.Vals[1] = String("b"), Number(0)
			res, err := e.x.RunEpochAt(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			out := res.Outputs[0]
			if out.Len() != 1 {
				t.Fatalf("%d rows, want 1", out.Len())
			}
			for name, want := range c.want {
				i, ok := out.Schema.Index(name)
				if !ok {
					t.Fatalf("no field %q", name)
				}
				if got := out.Recs[0].Vals[i]; got.Kind != KindNumber || got.Num != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// TestFieldAggregatesShareOneCount protects the size of a group's hot
// accumulators: count(*), sum, min, max and avg of one field are two counts
// and three values (40 bytes), with a second field adding its own count.
func TestFieldAggregatesShareOneCount(t *testing.T) {
	s := MustSchema(Field{"sensor", KindString}, Field{"temp", KindNumber}, Field{"hum", KindNumber})
	for _, c := range []struct {
		aggs []AggSpec
		hw   int
	}{
		{benchAggs, 5},
		{append(benchAggs[:len(benchAggs):len(benchAggs)], AggSpec{Func: "max", Field: "hum", As: "hmax"}), 7},
	} {
		p, err := resolveAggs(c.aggs, s)
		if err != nil {
			t.Fatal(err)
		}
		if p.hw != c.hw {
			t.Errorf("%d aggregates: %d words per group, want %d", len(c.aggs), p.hw, c.hw)
		}
	}
}
