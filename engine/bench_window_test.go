package engine

import (
	"context"
	"runtime"
	"strconv"
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

type handAgg struct {
	n             int64
	sum, min, max float64
}

// runHandwritten is the same work as a plain loop: per window a
// map[string]*handAgg, emitted (avg computed) when the window closes.
func runHandwritten(data []benchRec, size int64) int {
	emitted := 0
	var sink float64
	cur := int64(-1)
	m := map[string]*handAgg{}
	flush := func() {
		for _, a := range m {
			sink += a.sum / float64(a.n)
			emitted++
		}
		m = map[string]*handAgg{}
	}
	for i := range data {
		r := &data[i]
		w := r.ts - r.ts%size
		if w != cur {
			flush()
			cur = w
		}
		a := m[r.sensor]
		if a == nil {
			a = &handAgg{min: r.temp, max: r.temp}
			m[r.sensor] = a
		}
		a.n++
		a.sum += r.temp
		a.min = min(a.min, r.temp)
		a.max = max(a.max, r.temp)
	}
	flush()
	_ = sink
	return emitted
}

func reportRate(b *testing.B, n int) {
	sec := b.Elapsed().Seconds()
	if sec > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/sec, "records/s")
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
		for b.Loop() {
			e.run(b, data)
		}
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
		for b.Loop() {
			runHandwritten(data, 1000)
		}
		reportRate(b, len(data))
	})
}

// BenchmarkSlidingWindow shows that wpane slicing keeps the cost per record
// independent of window/slide: 10 s and 60 s windows sliding by 1 s.
func BenchmarkSlidingWindow(b *testing.B) {
	data := benchInput()
	for _, c := range []struct {
		name        string
		size, slide int64
	}{{"slide1s_window10s", 10_000, 1000}, {"slide1s_window60s", 60_000, 1000}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cfg := WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: c.size, Slide: c.slide}
			e := newEngineRunner(b, cfg, benchEpoch)
			// Warm up over two window lengths of event time (the data holds
			// 20 s), so the measured runs see the steady state: full windows,
			// recycled panes and slider blocks.
			span := data[len(data)-1].ts - data[0].ts + 1
			for w := int64(0); w < 2*c.size; w += span {
				e.run(b, data)
			}
			for b.Loop() {
				e.run(b, data)
			}
			reportRate(b, len(data))
		})
	}
}
