package engine

import (
	"cmp"
	"context"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	benchRecords  = 1_000_000
	benchKeys     = 10_000
	benchWinBatch = 4096
	// benchEpoch is one second of event time of the benchmark data (50 records
	// per millisecond): the records the daemon puts in one epoch at its default
	// 1 s interval.
	benchEpoch = 50_000
)

var benchSchema = MustSchema(Field{"sensor", KindString}, Field{"temp", KindNumber})

type benchRec struct {
	ts     int64
	sensor string
	temp   float64
}

var benchData []benchRec

// benchRecords builds, once, 1,000,000 pre-decoded readings of 10,000 sensors
// in pseudo-random key order, with event time advancing 1 ms every 50 records
// (50,000 records per 1 s window, about 5 per key).
func benchInput() []benchRec {
	if benchData != nil {
		return benchData
	}
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "sensor-" + strconv.Itoa(i)
	}
	benchData = make([]benchRec, benchRecords)
	x := uint64(88172645463325252)
	for i := range benchData {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		benchData[i] = benchRec{ts: 1_700_000_000_000 + int64(i/50), sensor: keys[x%benchKeys], temp: float64((x>>24)%1000) / 10}
	}
	return benchData
}

var benchAggs = []AggSpec{{Func: "count", As: "n"}, {Func: "sum", Field: "temp", As: "sum"},
	{Func: "min", Field: "temp", As: "min"}, {Func: "max", Field: "temp", As: "max"}, {Func: "avg", Field: "temp", As: "avg"}}

// engineRunner pushes records through Source -> WindowAggregate -> Sink in
// batches. It is reused across benchmark iterations (each run shifts event
// times past the previous one), so it measures the steady state.
type engineRunner struct {
	x     *Executor
	shift int64
	batch int
}

func newEngineRunner(tb testing.TB, cfg WindowConfig, batch int) *engineRunner {
	b := NewBuilder("bench")
	src := b.Source("in", benchSchema, WithWatermark(0))
	b.Sink("out", src.Then("win", WindowAggregate(cfg)))
	p, err := b.Build()
	if err != nil {
		tb.Fatal(err)
	}
	x, err := NewExecutor(p, Options{Store: NewMemStore()})
	if err != nil {
		tb.Fatal(err)
	}
	return &engineRunner{x: x, batch: batch}
}

// run processes data once and returns the number of window rows emitted.
func (e *engineRunner) run(tb testing.TB, data []benchRec) int {
	in := e.x.Input("in")
	ctx := context.Background()
	emitted := 0
	for i := 0; i < len(data); i += e.batch {
		end := min(i+e.batch, len(data))
		for j := i; j < end; j++ {
			r := in.Append()
			r.Time = data[j].ts + e.shift
			r.Vals[0] = Value{Kind: KindString, Str: data[j].sensor}
			r.Vals[1] = Value{Kind: KindNumber, Num: data[j].temp}
		}
		res, err := e.x.RunEpochAt(ctx, int64(i))
		if err != nil {
			tb.Fatal(err)
		}
		emitted += res.Outputs[0].Len()
	}
	e.shift += data[len(data)-1].ts - data[0].ts + 1 // continuous event time across runs
	return emitted
}

// handAgg is one key's partial aggregate in the handwritten baseline.
type handAgg struct {
	n             int64
	sum, min, max float64
}

// handRow is one output row of the handwritten baseline: the columns the
// engine emits (sensor, window_start, window_end, n, sum, min, max, avg).
type handRow struct {
	sensor     string
	start, end int64
	n          int64
	sum        float64
	min, max   float64
	avg        float64
}

// handwritten is the best plain Go loop doing the engine's work, so that the
// engine's ratio to it means something: a map pre-sized for the key count
// and reused across windows with clear, holding an index into a reused slice
// of value entries (one hash lookup per record, no allocation per key), and
// the output rows of each closed window emitted into a reused slice.
type handwritten struct {
	size int64
	idx  map[string]int32
	keys []string
	aggs []handAgg
	rows []handRow
	sink float64 // keeps the emitted rows observable
}

func newHandwritten(size int64, keys int) *handwritten {
	return &handwritten{size: size, idx: make(map[string]int32, keys),
		keys: make([]string, 0, keys), aggs: make([]handAgg, 0, keys), rows: make([]handRow, 0, keys)}
}

// run aggregates data (in event-time order) per key and 1 s window, calling
// emit with the rows of every window as it closes (the slice is reused), and
// returns the number of rows emitted. The last window is emitted at the end.
func (h *handwritten) run(data []benchRec, emit func([]handRow)) int {
	emitted := 0
	cur := int64(-1)
	flush := func() {
		if len(h.aggs) == 0 {
			return
		}
		h.rows = h.rows[:0]
		for i := range h.aggs {
			a := &h.aggs[i]
			h.rows = append(h.rows, handRow{sensor: h.keys[i], start: cur, end: cur + h.size,
				n: a.n, sum: a.sum, min: a.min, max: a.max, avg: a.sum / float64(a.n)})
		}
		for i := range h.rows {
			h.sink += h.rows[i].avg
		}
		if emit != nil {
			emit(h.rows)
		}
		emitted += len(h.rows)
		clear(h.idx)
		h.keys, h.aggs = h.keys[:0], h.aggs[:0]
	}
	for i := range data {
		r := &data[i]
		w := r.ts - r.ts%h.size
		if w != cur {
			flush()
			cur = w
		}
		j, ok := h.idx[r.sensor]
		if !ok {
			j = int32(len(h.aggs))
			h.idx[r.sensor] = j
			h.keys = append(h.keys, r.sensor)
			h.aggs = append(h.aggs, handAgg{min: r.temp, max: r.temp})
		}
		a := &h.aggs[j]
		a.n++
		a.sum += r.temp
		a.min = min(a.min, r.temp)
		a.max = max(a.max, r.temp)
	}
	flush()
	return emitted
}

func reportRate(b *testing.B, n int) {
	sec := b.Elapsed().Seconds()
	if sec > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/sec, "records/s")
	}
}

// reportCPURate reports records per CPU second of the process (garbage
// collection included) since cpu0, read with processCPU before the loop.
func reportCPURate(b *testing.B, n int, cpu0 time.Duration) {
	if d := processCPU() - cpu0; cpu0 > 0 && d > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/d.Seconds(), "records/cpu-s")
	}
}

// BenchmarkKeyedTumblingAggregate compares the engine's keyed 1 s tumbling
// window (count, sum, min, max, avg over 10,000 keys) with a handwritten loop
// doing the same work.
func BenchmarkKeyedTumblingAggregate(b *testing.B) {
	data := benchInput()
	b.Run("engine", func(b *testing.B) {
		b.ReportAllocs()
		cfg := WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: int64(time.Second / time.Millisecond)}
		e := newEngineRunner(b, cfg, benchEpoch)
		e.run(b, data) // warm up: the steady state is what is measured
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0 := processCPU()
		for b.Loop() {
			e.run(b, data)
		}
		reportCPURate(b, len(data), cpu0)
		runtime.ReadMemStats(&m1)
		reportRate(b, len(data))
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)/float64(len(data)), "allocs/record")
	})
	// The same with 4096-record epochs (a 12x shorter commit interval): every
	// epoch checkpoints nearly every key, so this shows what a short commit
	// interval costs.
	b.Run("engine_epoch4k", func(b *testing.B) {
		b.ReportAllocs()
		cfg := WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: 1000}
		e := newEngineRunner(b, cfg, benchWinBatch)
		e.run(b, data)
		for b.Loop() {
			e.run(b, data)
		}
		reportRate(b, len(data))
	})
	b.Run("handwritten", func(b *testing.B) {
		b.ReportAllocs()
		h := newHandwritten(1000, benchKeys)
		h.run(data, nil) // warm up, like the engine side
		cpu0 := processCPU()
		for b.Loop() {
			h.run(data, nil)
		}
		reportCPURate(b, len(data), cpu0)
		reportRate(b, len(data))
	})
}

// BenchmarkSlidingWindow shows that wpane slicing keeps the cost per record
// independent of window/slide: 10 s and 60 s windows sliding by 1 s. It
// reports the heap the executor holds per key once the windows are full
// (heapB/key: live heap after a GC, over 10,000 keys).
func BenchmarkSlidingWindow(b *testing.B) {
	data := benchInput()
	for _, c := range []struct {
		name        string
		size, slide int64
	}{{"slide1s_window10s", 10_000, 1000}, {"slide1s_window60s", 60_000, 1000}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cfg := WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: c.size, Slide: c.slide}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			e := newEngineRunner(b, cfg, benchEpoch)
			// Warm up over two window lengths of event time (the data holds
			// 20 s), so the measured runs see the steady state: full windows,
			// recycled panes and slider blocks.
			span := data[len(data)-1].ts - data[0].ts + 1
			for w := int64(0); w < 2*c.size; w += span {
				e.run(b, data)
			}
			// The state the window keeps once full: heap in use after a GC,
			// beyond what was in use before the runner existed, per key.
			runtime.GC()
			runtime.ReadMemStats(&m1)
			heapPerKey := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / benchKeys
			for b.Loop() {
				e.run(b, data)
			}
			reportRate(b, len(data))
			b.ReportMetric(heapPerKey, "heapB/key")
			runtime.KeepAlive(e)
		})
	}
}

// TestHandwrittenBaselineMatchesEngine protects the meaning of
// BenchmarkKeyedTumblingAggregate's ratio: the handwritten baseline must emit
// exactly the rows the engine emits (same keys, windows and aggregates) over
// the benchmark's data, so that it is not faster by doing less.
func TestHandwrittenBaselineMatchesEngine(t *testing.T) {
	data := benchInput()[:3*benchEpoch+benchEpoch/2] // three full windows and a partial one
	cfg := WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: 1000}
	e := newEngineRunner(t, cfg, benchEpoch)
	in := e.x.Input("in")
	var got []handRow
	collect := func(res *Result) {
		out := res.Outputs[0]
		col := func(name string) int {
			i, ok := out.Schema.Index(name)
			if !ok {
				t.Fatalf("engine output has no field %q (schema %s)", name, out.Schema)
			}
			return i
		}
		sensor, start, end := col("sensor"), col("window_start"), col("window_end")
		n, sum, mn, mx, avg := col("n"), col("sum"), col("min"), col("max"), col("avg")
		for _, r := range out.Recs {
			got = append(got, handRow{sensor: r.Vals[sensor].Str, start: int64(r.Vals[start].Num), end: int64(r.Vals[end].Num),
				n: int64(r.Vals[n].Num), sum: r.Vals[sum].Num, min: r.Vals[mn].Num, max: r.Vals[mx].Num, avg: r.Vals[avg].Num})
		}
	}
	ctx := context.Background()
	for i := 0; i < len(data); i += benchEpoch {
		for _, d := range data[i:min(i+benchEpoch, len(data))] {
			r := in.Append()
			r.Time = d.ts
			r.Vals[0] = Value{Kind: KindString, Str: d.sensor}
			r.Vals[1] = Value{Kind: KindNumber, Num: d.temp}
		}
		res, err := e.x.RunEpochAt(ctx, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		collect(res)
	}
	// A reading an hour later closes the last window of the data (its own
	// window stays open).
	r := in.Append()
	r.Time = data[len(data)-1].ts + 3_600_000
	r.Vals[0] = Value{Kind: KindString, Str: "sentinel"}
	r.Vals[1] = Value{Kind: KindNumber, Num: 0}
	res, err := e.x.RunEpochAt(ctx, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	collect(res)

	var want []handRow
	h := newHandwritten(1000, benchKeys)
	emitted := h.run(data, func(rows []handRow) { want = append(want, rows...) })
	if emitted != len(want) {
		t.Fatalf("handwritten reported %d rows, emitted %d", emitted, len(want))
	}
	order := func(a, b handRow) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		return strings.Compare(a.sensor, b.sensor)
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if len(got) != len(want) {
		t.Fatalf("engine emitted %d rows, handwritten %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.sensor != w.sensor || g.start != w.start || g.end != w.end || g.n != w.n ||
			g.min != w.min || g.max != w.max || math.Abs(g.sum-w.sum) > 1e-9*math.Abs(w.sum) || math.Abs(g.avg-w.avg) > 1e-9*math.Abs(w.avg) {
			t.Fatalf("row %d: engine %+v, handwritten %+v", i, g, w)
		}
	}
}
