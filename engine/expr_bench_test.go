package engine

import (
	"strconv"
	"testing"
)

// benchBatch returns n readings with temperatures 0..49 and humidity 40..99.
func benchBatch(n int) *Batch {
	b := NewBatch(readingSchema)
	for i := 0; i < n; i++ {
		b.AppendValues(int64(i), String("t"+strconv.Itoa(i%16)), Int(int64(i%50)), Int(int64(40+i%60)))
	}
	return b
}

func benchOp(b *testing.B, op Operator, size int) {
	s, err := op.Open([]*Schema{readingSchema})
	if err != nil {
		b.Fatal(err)
	}
	in := []*Batch{benchBatch(size)}
	out := NewBatch(s)
	ep := &Epoch{Stats: &NodeStats{}, DeadLetter: func(*Record, *Schema, error) {}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out.Reset(s)
		if err := op.Process(ep, in, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkFilterExpr(b *testing.B) {
	for _, size := range []int{64, 1024, 16384} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			benchOp(b, FilterExpr("temp > 30 and hum < 80"), size)
		})
	}
}

// BenchmarkFilterFunc is the hand-written Go predicate FilterExpr competes with.
func BenchmarkFilterFunc(b *testing.B) {
	benchOp(b, Filter(func(r *Record) bool {
		t, h := r.Vals[1], r.Vals[2]
		return t.Kind == KindNumber && h.Kind == KindNumber && t.Num > 30 && h.Num < 80
	}), 1024)
}

func BenchmarkProject(b *testing.B) {
	b.Run("numeric", func(b *testing.B) {
		benchOp(b, Project([]NamedExpr{
			{"sensor", "sensor"},
			{"tf", "round(temp * 1.8 + 32, 1)"},
			{"wet", "hum > 80"},
		}), 1024)
	})
	b.Run("string", func(b *testing.B) {
		benchOp(b, Project([]NamedExpr{{"id", "concat(sensor, '/', temp)"}}), 1024)
	})
}

func BenchmarkCompileExpr(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileExpr("round((temp - 32) * 5 / 9, 1) > 20 and sensor in ['t1', 't2']", readingSchema); err != nil {
			b.Fatal(err)
		}
	}
}
