package conformance

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/edgedio/edged/engine"
)

var assignIn = engine.MustSchema(
	engine.Field{Name: "ts_ms", Kind: engine.KindTime},
	engine.Field{Name: "value", Kind: engine.KindNumber})

// runAssign runs a window_assign vector as a batch (no watermark) through the
// engine: per_record maps each record to its windows with engine.WindowStarts
// (a FlatMap); count_per_window is a complete-mode WindowAggregate counting rows.
func runAssign(t *testing.T, v *Vector) {
	w := v.Window
	if w == nil {
		t.Fatal("vector has no window")
	}
	b := engine.NewBuilder(v.Name)
	src := b.Source("in", assignIn)
	var out engine.Stream
	switch v.Form {
	case "per_record":
		s := engine.MustSchema(engine.Field{Name: "start", Kind: engine.KindTime},
			engine.Field{Name: "end", Kind: engine.KindTime},
			engine.Field{Name: "value", Kind: engine.KindNumber})
		var starts []int64
		out = src.Then("assign", engine.FlatMap(s, func(r *engine.Record, o *engine.Batch) {
			starts = engine.WindowStarts(starts[:0], r.Time, w.SizeMs, w.SlideMs, w.OffsetMs)
			for _, st := range starts {
				o.AppendValues(r.Time, engine.Time(st), engine.Time(st+w.SizeMs), r.Vals[1])
			}
		}))
	case "count_per_window":
		out = src.Then("count", engine.WindowAggregate(engine.WindowConfig{
			Size: w.SizeMs, Slide: w.SlideMs, Offset: w.OffsetMs, Mode: engine.OutputComplete,
			Aggs: []engine.AggSpec{{Func: "count", As: "count"}}}))
	default:
		t.Fatalf("unknown form %q", v.Form)
	}
	b.Sink("out", out)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	x, err := engine.NewExecutor(p, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := x.Input("in")
	for _, r := range v.Records {
		ts, _ := r[0].(float64)
		val, _ := r[1].(float64)
		in.AppendValues(int64(ts), engine.Time(int64(ts)), engine.Number(val))
	}
	res, err := x.RunEpochAt(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	ob := res.Output(p, "out")
	proj := projector{cols: []int{0, 1, 2}, timeDiv: 1}
	var got []string
	for i := range ob.Recs {
		got = append(got, proj.row(ob.Schema, &ob.Recs[i]))
	}
	var rows [][]any
	if err := json.Unmarshal(v.Expected, &rows); err != nil {
		t.Fatal(err)
	}
	if want := expectRows(rows); !sameMultiset(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
}
