package engine

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWindowStartsUsesFloorDivision(t *testing.T) {
	for _, c := range []struct {
		name                    string
		ts, size, slide, offset int64
		want                    []int64
	}{
		{"tumbling", 12, 10, 10, 0, []int64{10}},
		{"tumbling boundary is half open", 20, 10, 10, 0, []int64{20}},
		{"sliding", 12, 10, 5, 0, []int64{5, 10}},
		{"sliding millis", 410, 200, 40, 0, []int64{240, 280, 320, 360, 400}},
		{"negative timestamp", -3, 10, 5, 0, []int64{-10, -5}},
		{"offset before epoch", 2000, 10000, 10000, 5000, []int64{-5000}},
		{"negative offset", 1459107570000, 10000, 10000, -5000, []int64{1459107565000}},
		{"hopping gap", 7, 5, 10, 0, nil},
		{"slide 0 is tumbling", 7, 5, 0, 0, []int64{5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := WindowStarts(nil, c.ts, c.size, c.slide, c.offset)
			if !slices.Equal(got, c.want) {
				t.Fatalf("WindowStarts(%d, %d, %d, %d) got %v; want %v", c.ts, c.size, c.slide, c.offset, got, c.want)
			}
		})
	}
}

func TestParseAgg(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    AggSpec
		wantErr bool
	}{
		{"avg(temp)", AggSpec{Func: "avg", Field: "temp", As: "avg_temp"}, false},
		{"count()", AggSpec{Func: "count", As: "count"}, false},
		{"count(*) as n", AggSpec{Func: "count", As: "n"}, false},
		{"p95(temp)", AggSpec{Func: "percentile", Field: "temp", As: "percentile_temp", Q: 0.95}, false},
		{"percentile(temp, 0.5) AS med", AggSpec{Func: "percentile", Field: "temp", As: "med", Q: 0.5}, false},
		{"stddev_pop(x)", AggSpec{Func: "stddev_pop", Field: "x", As: "stddev_pop_x"}, false},
		{"median(x)", AggSpec{}, true},
		{"sum()", AggSpec{}, true},
		{"sum x", AggSpec{}, true},
		{"percentile(x, 2)", AggSpec{}, true},
	} {
		got, err := ParseAgg(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseAgg(%q) error %v; want error %v", c.in, err, c.wantErr)
			continue
		}
		if !c.wantErr && got != c.want {
			t.Errorf("ParseAgg(%q) got %+v; want %+v", c.in, got, c.want)
		}
	}
}

var aggTestSchema = MustSchema(Field{"k", KindString}, Field{"v", KindNumber})

// TestAggregatesMergeLikeOnePass checks every function on known values, and
// that merging two partials gives the one-pass result (panes and sessions
// depend on it).
func TestAggregatesMergeLikeOnePass(t *testing.T) {
	specs := []AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "v", As: "sum"},
		{Func: "min", Field: "v", As: "min"}, {Func: "max", Field: "v", As: "max"},
		{Func: "avg", Field: "v", As: "avg"}, {Func: "first", Field: "v", As: "first"},
		{Func: "last", Field: "v", As: "last"}, {Func: "stddev", Field: "v", As: "sd"},
		{Func: "stddev_pop", Field: "v", As: "sdp"}, {Func: "percentile", Field: "v", As: "p50", Q: 0.5}}
	p, err := resolveAggs(specs, aggTestSchema)
	if err != nil {
		t.Fatal(err)
	}
	vals := []float64{2, 4, 4, 4, 5, 5, 7, 9}
	want := []float64{8, 40, 2, 9, 5, 2, 9, math.Sqrt(32.0 / 7), 2, 4}
	rec := func(x float64) *Record { return &Record{Vals: []Value{String("a"), Number(x)}} }
	one := accStore{w: p.ncol()}
	s1 := one.newSlot(p)
	a, b := accStore{w: p.ncol()}, accStore{w: p.ncol()}
	sa, sb := a.newSlot(p), b.newSlot(p)
	for i, x := range vals {
		p.add(&one, s1, rec(x))
		if i < 3 {
			p.add(&a, sa, rec(x))
		} else {
			p.add(&b, sb, rec(x))
		}
	}
	p.merge(&a, sa, &b, sb)
	for i := range specs {
		g1 := p.result(i, &one, s1).Num
		g2 := p.result(i, &a, sa).Num
		tol := 1e-9
		if specs[i].Func == "percentile" {
			tol = 0.02 * want[i] // documented relative error bound
		}
		if math.Abs(g1-want[i]) > tol || math.Abs(g2-want[i]) > tol {
			t.Errorf("%s: one pass got %v, merged got %v; want %v", specs[i].As, g1, g2, want[i])
		}
	}
}

func TestPercentileSketchErrorBound(t *testing.T) {
	var s quantileSketch
	for i := 1; i <= 10000; i++ {
		s.add(float64(i))
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
		got, want := s.quantile(q), q*10000
		if math.Abs(got-want)/want > 0.021 {
			t.Errorf("quantile %v got %v; want %v within 2%%", q, got, want)
		}
	}
	if len(s.b) > sketchMaxBuckets {
		t.Fatalf("sketch has %d buckets; want <= %d", len(s.b), sketchMaxBuckets)
	}
}

// kv is a test input record: key, value and event time in seconds.
type kv struct {
	k  string
	v  float64
	ts int64
}

type planFn func(src Stream) Stream

func buildTest(t *testing.T, fn planFn, delay time.Duration) *Plan {
	t.Helper()
	b := NewBuilder("t")
	var opts []SourceOption
	if delay >= 0 {
		opts = append(opts, WithWatermark(delay))
	}
	b.Sink("out", fn(b.Source("in", aggTestSchema, opts...)))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func formatRecord(s *Schema, r *Record) string {
	var sb strings.Builder
	for i, v := range r.Vals {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s.Field(i).Name)
		sb.WriteByte('=')
		sb.WriteString(v.String())
	}
	return sb.String()
}

// runEpochs runs one epoch per input slice on x and returns each epoch's
// output, formatted.
func runEpochs(t *testing.T, x *Executor, epochs [][]kv) [][]string {
	t.Helper()
	var outs [][]string
	for i, recs := range epochs {
		in := x.Input("in")
		for _, r := range recs {
			in.AppendValues(r.ts*1000, String(r.k), Number(r.v))
		}
		res, err := x.RunEpochAt(context.Background(), int64(i+1)*1000)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		o := res.Outputs[0]
		for j := range o.Recs {
			lines = append(lines, formatRecord(o.Schema, &o.Recs[j]))
		}
		outs = append(outs, lines)
	}
	return outs
}

// checkRestart runs epochs on one executor, then again with a restart after
// every epoch (a fresh plan and executor on the same store), and requires
// identical outputs and state rows.
func checkRestart(t *testing.T, fn planFn, delay time.Duration, epochs [][]kv) [][]string {
	t.Helper()
	x, err := NewExecutor(buildTest(t, fn, delay), Options{Store: NewMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	want := runEpochs(t, x, epochs)
	wantStats := x.Stats()
	store := NewMemStore()
	var got [][]string
	var x2 *Executor
	for _, e := range epochs {
		x2, err = NewExecutor(buildTest(t, fn, delay), Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, runEpochs(t, x2, [][]kv{e})...)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("epoch %d after restart got %q; want %q", i+1, got[i], want[i])
		}
	}
	for i, s := range x2.Stats() {
		if s.StateRows != wantStats[i].StateRows {
			t.Errorf("step %s: state rows after restart got %d; want %d", s.Step, s.StateRows, wantStats[i].StateRows)
		}
	}
	return want
}

var restartEpochs = [][]kv{
	{{"a", 1, 10}, {"b", 2, 11}, {"a", 3, 12}, {"a", 4, 10}},
	{{"b", 5, 14}, {"a", 6, 16}, {"c", 7, 21}},
	{{"a", 8, 25}, {"a", 9, 13}, {"b", 1, 26}, {"b", 2, 26}},
	{{"c", 3, 40}, {"a", 4, 41}},
	{},
	{{"a", 5, 70}, {"b", 6, 71}, {"a", 5, 70}},
}

var allAggs = []AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "v", As: "sum"},
	{Func: "min", Field: "v", As: "min"}, {Func: "max", Field: "v", As: "max"},
	{Func: "avg", Field: "v", As: "avg"}, {Func: "first", Field: "v", As: "first"},
	{Func: "last", Field: "v", As: "last"}, {Func: "stddev", Field: "v", As: "sd"},
	{Func: "percentile", Field: "v", As: "p90", Q: 0.9}}

func TestStatefulOperatorsRestoreFromCheckpoint(t *testing.T) {
	win := func(cfg WindowConfig) planFn {
		return func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }
	}
	for _, c := range []struct {
		name  string
		fn    planFn
		delay time.Duration
	}{
		{"tumbling append", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 5000}), 5 * time.Second},
		{"tumbling update", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 5000, Mode: OutputUpdate}), 5 * time.Second},
		{"tumbling complete", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 5000, Mode: OutputComplete}), 5 * time.Second},
		{"sliding append", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 10000, Slide: 2000}), 3 * time.Second},
		{"sliding update lateness", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 10000, Slide: 5000,
			Mode: OutputUpdate, AllowedLateness: 2000}), 3 * time.Second},
		{"session append", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Gap: 3000}), 5 * time.Second},
		{"session update", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Gap: 3000, Mode: OutputUpdate}), 5 * time.Second},
		{"count window sliding", win(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Count: 3, CountSlide: 2}), -1},
		{"group by event time", func(s Stream) Stream {
			return s.Then("op", GroupByEventTime(GroupByEventTimeConfig{Keys: []string{"k"}, Aggs: allAggs}))
		}, 2 * time.Second},
		{"aggregate update", func(s Stream) Stream {
			return s.Then("op", Aggregate(AggregateConfig{Keys: []string{"k"}, Aggs: allAggs, Mode: OutputUpdate}))
		}, -1},
		{"dedup event time key", func(s Stream) Stream {
			return s.Then("op", DropDuplicates(DedupConfig{Keys: []string{"k", "v"}}))
		}, 5 * time.Second},
		{"dedup within watermark", func(s Stream) Stream {
			return s.Then("op", DropDuplicates(DedupConfig{Keys: []string{"k"}, WithinWatermark: true, Delay: 5000}))
		}, 5 * time.Second},
		{"dedup then window", func(s Stream) Stream {
			return s.Then("dedup", DropDuplicates(DedupConfig{Keys: []string{"k", "v"}})).
				Then("op", WindowAggregate(WindowConfig{Aggs: allAggs, Size: 10000, Slide: 5000}))
		}, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := checkRestart(t, c.fn, c.delay, restartEpochs)
			n := 0
			for _, o := range out {
				n += len(o)
			}
			if n == 0 {
				t.Fatalf("no output at all; the case protects nothing")
			}
		})
	}
}

func TestOpenNamesFieldAtFault(t *testing.T) {
	for _, c := range []struct {
		name string
		op   Operator
		want string
	}{
		{"window key", WindowAggregate(WindowConfig{Keys: []string{"nope"}, Aggs: allAggs, Size: 1}), `"nope"`},
		{"agg field", WindowAggregate(WindowConfig{Aggs: []AggSpec{{Func: "sum", Field: "zz"}}, Size: 1}), `"zz"`},
		{"agg type", WindowAggregate(WindowConfig{Aggs: []AggSpec{{Func: "sum", Field: "k"}}, Size: 1}), "sum(k)"},
		{"window size", WindowAggregate(WindowConfig{Aggs: allAggs}), "window size"},
		{"session key", WindowAggregate(WindowConfig{Keys: []string{"s"}, Aggs: allAggs, Gap: 1}), `"s"`},
		{"dedup key", DropDuplicates(DedupConfig{Keys: []string{"q"}}), `"q"`},
		{"aggregate append", Aggregate(AggregateConfig{Aggs: allAggs}), "append"},
		{"count slide", WindowAggregate(WindowConfig{Aggs: allAggs, Count: 2, CountSlide: 3}), "slide"},
	} {
		_, err := c.op.Open([]*Schema{aggTestSchema})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open error %v; want one naming %s", c.name, err, c.want)
		}
	}
}

// TestSlidingWindowMatchesRecombination checks the incremental slider
// against combining every window's panes from scratch, over data with ties,
// late rows and gaps.
func TestSlidingWindowMatchesRecombination(t *testing.T) {
	var epochs [][]kv
	x := uint64(7)
	ts := int64(100)
	for e := 0; e < 40; e++ {
		var recs []kv
		for i := 0; i < 30; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			recs = append(recs, kv{string(rune('a' + x%5)), float64(x % 7), ts - int64(x%4)})
			if x%11 == 0 {
				ts += 3
			}
		}
		if e == 20 {
			ts += 100 // a gap: windows are not consecutive
		}
		epochs = append(epochs, recs)
	}
	cfg := WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 12000, Slide: 3000}
	x1, _ := NewExecutor(buildTest(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, 2*time.Second), Options{})
	got := runEpochs(t, x1, epochs)
	// reference: the same windows from scratch, by disabling the slider
	op := &timeWinOp{cfg: cfg}
	ref := &refWinOp{op}
	x2, _ := NewExecutor(buildTest(t, func(s Stream) Stream { return s.Then("op", ref) }, 2*time.Second), Options{})
	want := runEpochs(t, x2, epochs)
	total := 0
	for i := range want {
		total += len(want[i])
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("epoch %d: slider got %q; want %q", i+1, got[i], want[i])
		}
	}
	if total < 20 {
		t.Fatalf("only %d windows emitted; the test protects little", total)
	}
}

// refWinOp runs timeWinOp with its slider invalidated before every pass, so
// every window is recombined from its panes.
type refWinOp struct{ *timeWinOp }

func (r *refWinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	r.sl.valid = false
	return r.timeWinOp.Process(ep, in, out)
}

func TestMalformedRecordGoesToDeadLetter(t *testing.T) {
	for _, c := range []struct {
		name string
		op   Operator
	}{
		{"tumbling", WindowAggregate(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Size: 1000, Mode: OutputComplete})},
		{"session", WindowAggregate(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Gap: 1000, Mode: OutputComplete})},
		{"count", WindowAggregate(WindowConfig{Keys: []string{"k"}, Aggs: allAggs, Count: 1})},
		{"aggregate", Aggregate(AggregateConfig{Keys: []string{"k"}, Aggs: allAggs, Mode: OutputComplete})},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reasons []string
			b := NewBuilder("t")
			b.Sink("out", b.Source("in", aggTestSchema).Then("op", c.op))
			p, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			x, _ := NewExecutor(p, Options{DeadLetter: func(step string, r *Record, s *Schema, reason error) {
				reasons = append(reasons, reason.Error())
			}})
			in := x.Input("in")
			in.AppendValues(1000, String("a"), String("not a number"))
			in.AppendValues(1000, String("a"), Number(2))
			res, err := x.RunEpochAt(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := x.StepStats("op")
			if len(reasons) != 1 || st.Invalid != 1 || !strings.Contains(reasons[0], `"v"`) {
				t.Fatalf("dead letters got %q (invalid=%d); want one naming field \"v\"", reasons, st.Invalid)
			}
			if res.Outputs[0].Len() != 1 || res.Outputs[0].Recs[0].Vals[len(res.Outputs[0].Recs[0].Vals)-len(allAggs)].Num != 1 {
				t.Fatalf("got %d rows; want one row counting only the valid record", res.Outputs[0].Len())
			}
		})
	}
}

func TestQueryStateShowsOpenWindows(t *testing.T) {
	cfg := WindowConfig{Keys: []string{"k"}, Aggs: []AggSpec{{Func: "count", As: "n"}}, Size: 10000, Slide: 5000}
	p := buildTest(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, 5*time.Second)
	x, _ := NewExecutor(p, Options{})
	runEpochs(t, x, [][]kv{{{"a", 1, 12}, {"b", 1, 13}, {"a", 1, 16}}})
	var got []string
	if err := x.Query("op", func(s *Schema, r *Record) bool {
		got = append(got, formatRecord(s, r))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"k=a window_start=5000 window_end=15000 n=1", "k=b window_start=5000 window_end=15000 n=1",
		"k=a window_start=10000 window_end=20000 n=2", "k=b window_start=10000 window_end=20000 n=1",
		"k=a window_start=15000 window_end=25000 n=1",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("query got %q; want %q", got, want)
	}
	var dd []string
	b := NewBuilder("d")
	b.Sink("out", b.Source("in", aggTestSchema).Then("op", DropDuplicates(DedupConfig{Keys: []string{"k"}})))
	p2, _ := b.Build()
	x2, _ := NewExecutor(p2, Options{})
	runEpochs(t, x2, [][]kv{{{"b", 1, 1}, {"a", 2, 2}, {"a", 3, 3}}})
	x2.Query("op", func(s *Schema, r *Record) bool { dd = append(dd, formatRecord(s, r)); return true })
	if want := []string{"key=a expires=null", "key=b expires=null"}; !slices.Equal(dd, want) {
		t.Fatalf("dedup query got %q; want %q", dd, want)
	}
}

// TestWindowRestartManyKeys covers panes stored in many buckets (ordering of
// bucket entries on restore).
func TestWindowRestartManyKeys(t *testing.T) {
	var epochs [][]kv
	for e := 0; e < 4; e++ {
		var recs []kv
		for i := 0; i < 3000; i++ {
			recs = append(recs, kv{"key" + strconvItoa((i*7919)%5000), float64(i % 13), int64(10 + e*3 + i%3)})
		}
		epochs = append(epochs, recs)
	}
	epochs = append(epochs, []kv{{"z", 1, 40}})
	for _, cfg := range []WindowConfig{
		{Keys: []string{"k"}, Aggs: allAggs, Size: 5000},
		{Keys: []string{"k"}, Aggs: allAggs, Size: 6000, Slide: 2000, Mode: OutputUpdate},
	} {
		out := checkRestart(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, 2*time.Second, epochs)
		n := 0
		for _, o := range out {
			n += len(o)
		}
		if n < 3000 {
			t.Fatalf("emitted %d rows; want the many-key windows", n)
		}
	}
}

func strconvItoa(i int) string { return string(AppendNumber(nil, float64(i))) }

func TestAllowedLatenessDelaysFinality(t *testing.T) {
	cfg := WindowConfig{Aggs: []AggSpec{{Func: "count", As: "n"}}, Size: 5000, AllowedLateness: 5000}
	p := buildTest(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, 0)
	x, _ := NewExecutor(p, Options{})
	got := runEpochs(t, x, [][]kv{
		{{"a", 1, 10}, {"a", 1, 12}},
		{{"a", 1, 16}}, // W=16: [10,15) not final before 15+5
		{{"a", 1, 11}}, // not late: 15 > 16-5
		{{"a", 1, 20}}, // W=20: [10,15) final
		{{"a", 1, 12}}, // late: 15 <= 20-5
	})
	want := [][]string{nil, nil, nil, {"window_start=10000 window_end=15000 n=3"}, nil}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("epoch %d got %q; want %q", i+1, got[i], want[i])
		}
	}
	if st, _ := x.StepStats("op"); st.Late != 1 {
		t.Errorf("late got %d; want 1", st.Late)
	}
}

func TestCountWindows(t *testing.T) {
	for _, c := range []struct {
		name        string
		count, step int64
		want        []string
	}{
		{"tumbling", 2, 0, []string{"k=a n=2 sum=3", "k=a n=2 sum=7"}},
		{"sliding", 3, 1, []string{"k=a n=1 sum=1", "k=a n=2 sum=3", "k=a n=3 sum=6", "k=a n=3 sum=9", "k=a n=3 sum=12"}},
		{"sliding by two", 4, 2, []string{"k=a n=2 sum=3", "k=a n=4 sum=10"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := WindowConfig{Keys: []string{"k"}, Count: c.count, CountSlide: c.step,
				Aggs: []AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "v", As: "sum"}}}
			p := buildTest(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, -1)
			x, _ := NewExecutor(p, Options{})
			out := runEpochs(t, x, [][]kv{{{"a", 1, 1}, {"b", 9, 1}, {"a", 2, 2}, {"a", 3, 3}}, {{"a", 4, 4}, {"a", 5, 5}}})
			var got []string
			for _, e := range out {
				for _, l := range e {
					if strings.HasPrefix(l, "k=a") {
						f := strings.Fields(l)
						got = append(got, f[0]+" "+f[3]+" "+f[4])
					}
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q; want %q", got, c.want)
			}
		})
	}
}

// refStateRows counts a sliding window's open (window, key) rows as a set,
// the way StateRows did before it stopped building one.
func refStateRows(o *timeWinOp) int {
	open := map[[2]int64]struct{}{}
	for ps, p := range o.panes {
		for _, w := range o.windowsOf(nil, ps) {
			if o.cfg.Mode != OutputComplete && o.end(w) <= o.emitted {
				continue
			}
			for _, id := range p.keys {
				open[[2]int64{w, int64(id)}] = struct{}{}
			}
		}
	}
	return len(open)
}

// TestSlidingStateRowsCountsOpenRows checks the sliding window's state-row
// count (status, metrics) against a set of its open (window, key) rows, after
// every epoch, over keys that come and go, late rows and a gap, in each
// output mode.
func TestSlidingStateRowsCountsOpenRows(t *testing.T) {
	for _, mode := range []OutputMode{OutputAppend, OutputUpdate, OutputComplete} {
		cfg := WindowConfig{Keys: []string{"k"}, Aggs: allAggs[:2], Size: 12000, Slide: 3000, Mode: mode}
		op := WindowAggregate(cfg).(*timeWinOp)
		x, err := NewExecutor(buildTest(t, func(s Stream) Stream { return s.Then("op", op) }, 2*time.Second), Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := uint64(11)
		ts := int64(100)
		nonzero := 0
		for e := 0; e < 30; e++ {
			in := x.Input("in")
			for i := 0; i < 25; i++ {
				r ^= r << 13
				r ^= r >> 7
				r ^= r << 17
				in.AppendValues((ts-int64(r%5))*1000, String(string(rune('a'+(r%9)+uint64(e/10)))), Number(float64(r%7)))
				if r%5 == 0 {
					ts += 2
				}
			}
			if e == 15 {
				ts += 60 // a gap
			}
			if _, err := x.RunEpochAt(context.Background(), int64(e+1)*1000); err != nil {
				t.Fatal(err)
			}
			want := refStateRows(op)
			if got := op.StateRows(); got != want {
				t.Fatalf("mode %v epoch %d: StateRows = %d, want %d", mode, e+1, got, want)
			}
			if want > 0 {
				nonzero++
			}
		}
		if nonzero < 10 {
			t.Fatalf("mode %v: only %d epochs had open rows; the test protects little", mode, nonzero)
		}
	}
}

// TestSliderMatchesPanesWithManyPanes checks the slider, which keeps a
// suffix partial only every sufEvery panes of a block and folds the panes
// in between, against merging each window's panes from scratch (combine),
// for a 60-pane window: every window start in ascending order (the caches
// carried from one window to the next), after epochs with late records.
// Integer values keep the sums exact whatever the merge order.
func TestSliderMatchesPanesWithManyPanes(t *testing.T) {
	aggs := []AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "v", As: "sum"},
		{Func: "min", Field: "v", As: "min"}, {Func: "max", Field: "v", As: "max"}}
	cfg := WindowConfig{Keys: []string{"k"}, Aggs: aggs, Size: 60_000, Slide: 1000}
	op := WindowAggregate(cfg).(*timeWinOp)
	x, err := NewExecutor(buildTest(t, func(s Stream) Stream { return s.Then("op", op) }, 200*time.Second), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(5)
	next := func() uint64 { r ^= r << 13; r ^= r >> 7; r ^= r << 17; return r }
	ts := int64(1000)
	for e := 0; e < 12; e++ {
		in := x.Input("in")
		for i := 0; i < 200; i++ {
			in.AppendValues((ts-int64(next()%90))*1000, String(string(rune('a'+next()%6))), Number(float64(next()%50)))
			ts += int64(next() % 2)
		}
		if _, err := x.RunEpochAt(context.Background(), int64(e+1)*1000); err != nil {
			t.Fatal(err)
		}
		var lo, hi int64 = math.MaxInt64, math.MinInt64
		for ps := range op.panes {
			lo, hi = min(lo, ps), max(hi, ps)
		}
		checked := 0
		for ws := lo - op.size + op.slide; ws <= hi; ws += op.slide {
			op.sl.moveTo(op, ws)
			op.combine(ws)
			got, want := &op.sl.out, &op.scr
			if len(got.keys) != len(want.keys) {
				t.Fatalf("epoch %d window %d: slider has %d keys, panes %d", e+1, ws, len(got.keys), len(want.keys))
			}
			for _, id := range want.keys {
				for i := range aggs {
					g := op.plan.result(i, &got.st, got.idx[id]-1)
					w := op.plan.result(i, &want.st, want.idx[id]-1)
					if g.String() != w.String() {
						t.Fatalf("epoch %d window %d key %s %s: slider %v, panes %v", e+1, ws, op.dict.enc[id], aggs[i].As, g, w)
					}
				}
			}
			checked += len(want.keys)
		}
		if checked < 100 {
			t.Fatalf("epoch %d: only %d window rows checked", e+1, checked)
		}
	}
}

// TestAggregatesShareAccumulators protects the accumulator layout: aggregates
// computed from the same accumulator (sum and avg of a field, stddev and
// stddev_pop, percentiles of a field) share one column, so a group of
// count(*), sum, min, max and avg of one field takes 4 columns (64 bytes, one
// cache line), while the same function over different fields does not share.
func TestAggregatesShareAccumulators(t *testing.T) {
	s := MustSchema(Field{"k", KindString}, Field{"v", KindNumber}, Field{"w", KindNumber})
	for _, c := range []struct {
		specs []AggSpec
		want  int
	}{
		{[]AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "v", As: "sum"}, {Func: "min", Field: "v", As: "min"},
			{Func: "max", Field: "v", As: "max"}, {Func: "avg", Field: "v", As: "avg"}}, 4},
		{[]AggSpec{{Func: "stddev", Field: "v", As: "a"}, {Func: "stddev_pop", Field: "v", As: "b"},
			{Func: "percentile", Field: "v", Q: 0.5, As: "c"}, {Func: "percentile", Field: "v", Q: 0.9, As: "d"}}, 2},
		{[]AggSpec{{Func: "sum", Field: "v", As: "a"}, {Func: "sum", Field: "w", As: "b"}, {Func: "avg", Field: "w", As: "c"},
			{Func: "count", Field: "v", As: "d"}, {Func: "count", As: "e"}}, 4},
	} {
		p, err := resolveAggs(c.specs, s)
		if err != nil {
			t.Fatal(err)
		}
		if p.ncol() != c.want {
			t.Errorf("%v: %d accumulator columns, want %d", c.specs, p.ncol(), c.want)
		}
	}
}
