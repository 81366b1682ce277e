package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

var numSchema = MustSchema(Field{"value", KindNumber})

func TestExecutorFilterMapKeepsOrder(t *testing.T) {
	b := NewBuilder("p")
	src := b.Source("in", numSchema)
	even := src.Then("even", Filter(func(r *Record) bool { return int64(r.Vals[0].Num)%2 == 0 }))
	str := even.Then("str", Map(MustSchema(Field{"value", KindString}), func(s, d *Record) {
		d.Vals[0] = String(s.Vals[0].String())
	}))
	b.Sink("out", str)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExecutor(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := x.Input("in")
	for i := 1; i <= 6; i++ {
		in.AppendValues(0, Int(int64(i)))
	}
	res, err := x.RunEpochAt(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := res.Output(p, "out")
	var got []string
	for _, r := range out.Recs {
		got = append(got, r.Vals[0].Str)
	}
	if want := []string{"2", "4", "6"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v; want %v", got, want)
	}
	if in.Len() != 0 {
		t.Fatalf("input batch not emptied after epoch: %d records", in.Len())
	}
}

func TestBuildReportsEveryError(t *testing.T) {
	b := NewBuilder("p")
	src := b.Source("in", numSchema)
	src.Then("u", Union())
	b.Apply("u", Union(), src) // duplicate name
	b.Apply("none", Filter(nil))
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build succeeded; want errors")
	}
	if !errors.Is(err, ErrInvalidPlan) {
		t.Fatalf("error %v does not match ErrInvalidPlan", err)
	}
	for _, want := range []string{`step "u": step name used twice`, `step "none": step has no input`, "no sink"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWatermarkAdvancesAndRunsNoDataPass(t *testing.T) {
	b := NewBuilder("p")
	src := b.Source("in", numSchema, WithWatermark(10*time.Second))
	var passes []Epoch
	probe := src.Then("probe", Map(numSchema, func(s, d *Record) { d.Vals[0] = s.Vals[0] }))
	spy := probe.Then("spy", spyOp{fn: func(ep *Epoch) { passes = append(passes, *ep) }})
	b.Sink("out", spy)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	x, _ := NewExecutor(p, Options{})
	x.Input("in").AppendValues(15000, Int(1))
	if _, err := x.RunEpochAt(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(passes) != 2 || passes[0].NoData || !passes[1].NoData {
		t.Fatalf("got %d passes %+v; want a data pass then a no-data pass", len(passes), passes)
	}
	if passes[1].LateBound != 0 || passes[1].Watermark != 5000 {
		t.Fatalf("no-data pass bounds late=%d wm=%d; want 0 and 5000", passes[1].LateBound, passes[1].Watermark)
	}
	passes = nil
	x.Input("in").AppendValues(12000, Int(1)) // does not advance the watermark
	x.RunEpochAt(context.Background(), 2)
	if len(passes) != 1 || !passes[0].Final || x.Watermark() != 5000 {
		t.Fatalf("got %d passes, watermark %d; want one final pass and watermark 5000", len(passes), x.Watermark())
	}
}

type spyOp struct{ fn func(*Epoch) }

func (s spyOp) Open(in []*Schema) (*Schema, error) { return in[0], nil }
func (s spyOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	s.fn(ep)
	return nil
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestDrainMovesWatermarkToEndOfTime(t *testing.T) {
	b := NewBuilder("p")
	src := b.Source("in", numSchema, WithWatermark(time.Second))
	var last Epoch
	spy := src.Then("spy", spyOp{fn: func(ep *Epoch) { last = *ep }})
	b.Sink("out", spy)
	p, _ := b.Build()
	x, _ := NewExecutor(p, Options{})
	x.Input("in").AppendValues(5000, Int(1))
	x.RunEpochAt(context.Background(), 1)
	if _, err := x.Drain(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if !last.NoData || last.Watermark != EndOfTime || last.LateBound != 4000 {
		t.Fatalf("last pass %+v; want a no-data pass with watermark EndOfTime and late bound 4000", last)
	}
}

// TestIdleEpochsAreNotCommitted protects the SD card of an idle gateway: an
// epoch with no input, no state change and no output writes nothing and does
// not use up an epoch number (so output ids stay dense).
func TestIdleEpochsAreNotCommitted(t *testing.T) {
	b := NewBuilder("p")
	kv := MustSchema(Field{"key", KindString}, Field{"value", KindNumber})
	b.Sink("out", b.Source("in", kv).Then("sum", ReduceByKey("key", "value", Sum)))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemStore()
	x, _ := NewExecutor(p, Options{Store: store})
	ctx := context.Background()
	x.Input("in").AppendValues(0, String("a"), Int(1))
	x.SetPosition("in", 1)
	if _, err := x.RunEpochAt(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 4; i++ {
		if _, err := x.RunEpochAt(ctx, int64(i)*1000); err != nil {
			t.Fatal(err)
		}
	}
	cp, _ := store.LastCheckpoint("p", 0)
	if cp.Epoch != 1 || x.Epoch() != 1 {
		t.Fatalf("after 3 idle epochs: checkpoint epoch %d, executor epoch %d; want 1 and 1", cp.Epoch, x.Epoch())
	}
	x.Input("in").AppendValues(0, String("a"), Int(2))
	x.SetPosition("in", 2)
	res, err := x.RunEpochAt(ctx, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := store.LastCheckpoint("p", 0); res.Epoch != 2 || cp.Epoch != 2 || cp.Input["in"] != 2 {
		t.Fatalf("busy epoch after idle ones: result epoch %d, checkpoint %+v; want epoch 2 at position 2", res.Epoch, cp)
	}
}
