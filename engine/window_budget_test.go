package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// budgetSchema is the input of the output-budget tests: a sensor and a
// reading.
var budgetSchema = MustSchema(Field{"sensor", KindString}, Field{"temp", KindNumber})

// budgetEncode is a small deterministic encoder (the engine cannot import
// engine/decode): every field as text, tab-separated.
func budgetEncode(dst []byte, s *Schema, r *Record) []byte {
	for i, v := range r.Vals {
		if i > 0 {
			dst = append(dst, '\t')
		}
		switch v.Kind {
		case KindString:
			dst = append(dst, v.Str...)
		default:
			dst = strconv.AppendFloat(dst, v.Num, 'g', -1, 64)
		}
	}
	return dst
}

// budgetPlan is a per-sensor count and average over windows of size ms
// sliding by slide ms (tumbling when equal), the watermark delay behind.
func budgetPlan(t testing.TB, size, slide int64, delay time.Duration) *Plan {
	t.Helper()
	b := NewBuilder("budget")
	src := b.Source("in", budgetSchema, WithWatermark(delay))
	b.Sink("out", src.Then("win", WindowAggregate(WindowConfig{Keys: []string{"sensor"}, Size: size, Slide: slide,
		Aggs: []AggSpec{{Func: "count", As: "n"}, {Func: "avg", Field: "temp", As: "avg"}}})))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// budgetData feeds keys sensors, one reading each every 100 ms of event
// time over [from, to), into in.
func budgetData(in *Batch, keys int, from, to int64) {
	for ts := from; ts < to; ts += 100 {
		for k := range keys {
			in.AppendValues(ts, String(fmt.Sprintf("s%04d", k)), Number(float64((ts/100+int64(k))%97)/3))
		}
	}
}

// budgetRun is a run of the budget tests' executor: the outputs of every
// epoch, encoded with their ids, and the epochs' figures.
type budgetRun struct {
	rows    []string // every output row, in order, without its id
	outs    []string // id + row
	perEp   []int    // rows per epoch
	pending []bool
}

// drive runs one epoch at time t with the records add puts in, then, while
// windows wait (Result.Pending), epochs with no input, and records them.
func (br *budgetRun) drive(t testing.TB, x *Executor, tm *int64, add func(in *Batch)) {
	t.Helper()
	ctx := context.Background()
	if add != nil {
		add(x.Input("in"))
	}
	for range 1000 {
		*tm += 1000
		res, err := x.RunEpochAt(ctx, *tm)
		if err != nil {
			t.Fatal(err)
		}
		br.record(res)
		if res.Pending && res.Through >= res.Watermark {
			t.Fatalf("epoch %d: pending with through %d at watermark %d; want through below it", res.Epoch, res.Through, res.Watermark)
		}
		if !res.Pending && res.Through != res.Watermark {
			t.Fatalf("epoch %d: nothing pending but through %d != watermark %d", res.Epoch, res.Through, res.Watermark)
		}
		if !res.Pending {
			return
		}
	}
	t.Fatal("still pending after 1,000 epochs")
}

func (br *budgetRun) record(res *Result) {
	out := res.Outputs[0]
	for i := range out.Recs {
		row := string(budgetEncode(nil, out.Schema, &out.Recs[i]))
		br.rows = append(br.rows, row)
	}
	br.perEp = append(br.perEp, out.Len())
	br.pending = append(br.pending, res.Pending)
}

// TestMaxOutputsSpreadsClosedWindowsOverEpochs: when one watermark jump
// closes far more windows than Options.MaxOutputs, each epoch emits whole
// windows up to the bound (one window's rows beyond it at most), the result
// says Pending until the last, and the rows, in order, are those of an
// executor without the bound.
func TestMaxOutputsSpreadsClosedWindowsOverEpochs(t *testing.T) {
	const keys = 50
	for _, c := range []struct {
		name        string
		size, slide int64
	}{{"sliding", 10_000, 1000}, {"tumbling", 1000, 1000}} {
		t.Run(c.name, func(t *testing.T) {
			run := func(maxOut int) budgetRun {
				x, err := NewExecutor(budgetPlan(t, c.size, c.slide, 0), Options{MaxOutputs: maxOut})
				if err != nil {
					t.Fatal(err)
				}
				var br budgetRun
				tm := int64(0)
				// 20 s of readings, then one an hour later: its watermark
				// closes every window of the data at once.
				br.drive(t, x, &tm, func(in *Batch) { budgetData(in, keys, 0, 20_000) })
				br.drive(t, x, &tm, func(in *Batch) { in.AppendValues(3_600_000, String("late"), Number(0)) })
				// Input after the burst meets the same state either way.
				br.drive(t, x, &tm, func(in *Batch) { budgetData(in, keys, 3_600_000, 3_603_000) })
				return br
			}
			free, bounded := run(0), run(120)
			if len(free.rows) < 1000 {
				t.Fatalf("only %d rows: the test closes too few windows", len(free.rows))
			}
			if len(bounded.rows) != len(free.rows) {
				t.Fatalf("bounded run emitted %d rows; want %d, as without the bound", len(bounded.rows), len(free.rows))
			}
			for i := range free.rows {
				if bounded.rows[i] != free.rows[i] {
					t.Fatalf("row %d: got %q; want %q (as without the bound)", i, bounded.rows[i], free.rows[i])
				}
			}
			pend := 0
			for i, n := range bounded.perEp {
				if n > 120+keys {
					t.Errorf("epoch %d emitted %d rows; want at most the bound 120 plus one window (%d)", i+1, n, keys)
				}
				if bounded.pending[i] {
					pend++
				}
			}
			if pend < 5 {
				t.Errorf("%d epochs were pending; want the burst spread over several", pend)
			}
		})
	}
}

// failingStore fails the commit of one epoch (a crash between two epochs of
// a burst) and keeps the outputs of the others.
type failingStore struct {
	*MemStore
	failAt uint64
}

func (s *failingStore) Commit(ctx context.Context, c *Commit) error {
	if c.Epoch == s.failAt {
		s.failAt = 0
		return errors.New("injected commit failure")
	}
	return s.MemStore.Commit(ctx, c)
}

// TestMaxOutputsBurstReplaysIdentically: a restart in the middle of a
// spread burst (a new executor from the committed state), and a failed
// commit whose epoch is run again from the checkpoint, give the outputs of
// an uninterrupted run byte for byte, ids included: which windows wait is
// part of the committed state.
func TestMaxOutputsBurstReplaysIdentically(t *testing.T) {
	const keys = 40
	ctx := context.Background()
	feeds := []func(in *Batch){
		func(in *Batch) { budgetData(in, keys, 0, 15_000) },
		func(in *Batch) { in.AppendValues(3_600_000, String("late"), Number(0)) },
		func(in *Batch) { budgetData(in, keys, 3_600_000, 3_602_000) },
	}
	// run feeds each batch in an epoch, then runs epochs with no input
	// while windows wait. restartAt rebuilds the executor from the store
	// before that epoch (counting from 1); failAt makes that epoch's commit
	// fail, after which the executor is rebuilt and the epoch run again.
	run := func(restartAt int, failAt uint64) ([]Output, []bool) {
		store := &failingStore{MemStore: NewMemStore(), failAt: failAt}
		store.KeepOutputs = true
		open := func() *Executor {
			x, err := NewExecutor(budgetPlan(t, 10_000, 1000, 0), Options{Store: store, MaxOutputs: 100, Encode: budgetEncode})
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		x := open()
		n := 0
		var pend []bool // after each epoch
		for _, feed := range feeds {
			first := true
			for first || x.Pending() {
				if n++; n > 1000 {
					t.Fatal("still pending after 1,000 epochs")
				}
				if n == restartAt {
					x = open()
					if !x.Pending() {
						t.Fatalf("restored before epoch %d: Pending() false; want true (the burst was not over)", n)
					}
				}
				if first {
					feed(x.Input("in"))
				}
				if _, err := x.RunEpochAt(ctx, int64(n)*1000); err != nil {
					x = open() // from the checkpoint: the epoch is run again
					n--
					continue
				}
				pend = append(pend, x.Pending())
				first = false
			}
		}
		return store.Outputs(), pend
	}
	want, pend := run(-1, 0)
	// mid is an epoch of the last burst after two that left windows
	// waiting (pend[n-1]: after epoch n).
	mid := 0
	for n := 2; n < len(pend); n++ {
		if pend[n-2] && pend[n-1] {
			mid = n + 1
		}
	}
	if mid < 5 {
		t.Fatalf("epochs pending: %v; want bursts spread over several epochs", pend)
	}
	for _, c := range []struct {
		name      string
		restartAt int
		failAt    uint64
	}{{"restart mid-burst", mid, 0}, {"failed commit mid-burst", -1, uint64(mid)}} {
		got, _ := run(c.restartAt, c.failAt)
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs; want %d", c.name, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("%s: output %d is %s %q; want %s %q", c.name, i, got[i].ID, got[i].Data, want[i].ID, want[i].Data)
			}
		}
	}
}

// TestClosingManyWindowsAllocatesABoundedEpoch protects the bound on an
// epoch's outputs: closing 60,000 (window, key) rows at once must not
// materialise them in one epoch (records, encoded outputs), so the epoch that
// closes them allocates about what MaxOutputs rows need, not what 60,000 do
// (about 40 MB).
func TestClosingManyWindowsAllocatesABoundedEpoch(t *testing.T) {
	const keys = 2000
	store := NewMemStore() // keeps state, not outputs
	// The watermark an hour behind keeps every window of the data open.
	x, err := NewExecutor(budgetPlan(t, 1000, 1000, time.Hour), Options{Store: store, MaxOutputs: 1000, Encode: budgetEncode})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := x.Input("in")
	for ts := int64(0); ts < 30_000; ts += 500 { // 30 tumbling windows of 2,000 sensors
		for k := range keys {
			in.AppendValues(ts, String("s"+strconv.Itoa(k)), Number(float64(k%7)))
		}
	}
	if _, err := x.RunEpochAt(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	// A reading two hours later closes all 60,000 rows at once.
	x.Input("in").AppendValues(2*3_600_000+30_000, String("late"), Number(0))
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	res, err := x.RunEpochAt(ctx, 2000)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if !res.Pending {
		t.Error("the burst epoch is not pending: it emitted every closed window at once")
	}
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("the epoch closing the burst emitted %d rows and allocated %d bytes", res.Outputs[0].Len(), alloc)
	if alloc > 6<<20 {
		t.Errorf("the epoch closing the burst allocated %d bytes; want at most 6 MiB (its outputs are bounded to 1,000 rows)", alloc)
	}
}

// TestEncodedOutputsShareOneBuffer: an epoch's encoded outputs are slices
// of one final buffer. Slices taken while the buffer grew kept every
// earlier, smaller copy of it alive until the commit (about twice the
// encoded bytes for a large epoch).
func TestEncodedOutputsShareOneBuffer(t *testing.T) {
	var got []Output
	store := &captureStore{MemStore: NewMemStore(), fn: func(c *Commit) { got = append(got[:0], c.Outputs...) }}
	x, err := NewExecutor(budgetPlan(t, 1000, 1000, 0), Options{Store: store, Encode: budgetEncode})
	if err != nil {
		t.Fatal(err)
	}
	budgetData(x.Input("in"), 3000, 0, 1000)
	x.Input("in").AppendValues(5000, String("late"), Number(0))
	if _, err := x.RunEpochAt(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
	if len(got) < 3000 {
		t.Fatalf("%d outputs; want at least 3000", len(got))
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(got[0].Data)))
	last := got[len(got)-1].Data
	hi := uintptr(unsafe.Pointer(unsafe.SliceData(last))) + uintptr(len(last))
	for i, o := range got {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(o.Data)))
		if p < lo || p+uintptr(len(o.Data)) > hi || (i > 0 && p != lo+uintptr(totalLen(got[:i]))) {
			t.Fatalf("output %d is not in the epoch's one encoded buffer", i)
		}
	}
}

func totalLen(outs []Output) int {
	n := 0
	for _, o := range outs {
		n += len(o.Data)
	}
	return n
}

// captureStore calls fn with every commit.
type captureStore struct {
	*MemStore
	fn func(c *Commit)
}

func (s *captureStore) Commit(ctx context.Context, c *Commit) error {
	s.fn(c)
	return s.MemStore.Commit(ctx, c)
}
