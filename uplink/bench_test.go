package uplink

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// aggregateRows makes n typical window aggregates: 100 sensors, one-minute
// windows, counts and temperatures with one decimal.
func aggregateRows(n int) ([]Row, int) {
	rows := make([]Row, n)
	plain := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rows {
		s := i % 100
		w := int64(1700000000000) + int64(i/100)*60000
		avg := 15 + float64(rng.IntN(150))/10
		rows[i] = Row{
			ID: fmt.Sprintf("agg/%d/1/%d/%d", s%4, i/100, i%100),
			Data: fmt.Appendf(nil, `{"sensor":"s-%04d","window_start":%d,"window_end":%d,"n":%d,"avg_temp":%.1f,"max_temp":%.1f}`,
				s, w, w+60000, 6+rng.IntN(7), avg, avg+float64(rng.IntN(40))/10),
		}
		plain += len(rows[i].Data) + 1 // as plain JSON Lines
	}
	return rows, plain
}

// readingRows makes n raw readings: 3 sites, 100 sensors, a sequence
// number, a timestamp every 10 ms, a temperature and a flag.
func readingRows(n int) ([]Row, int) {
	rows := make([]Row, n)
	plain := 0
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range rows {
		ts := int64(1700000000000) + int64(i)*10
		rows[i] = Row{ID: fmt.Sprintf("raw/%d/1/%d/%d", i%4, i/1000, i%1000),
			Data: fmt.Appendf(nil, `{"site":"plant-%d","sensor":"s-%04d","seq":%d,"ts":%d,"temp":%.1f,"ok":%v}`,
				i%3, i%100, i, ts, 15+float64(rng.IntN(150))/10, rng.IntN(10) > 0)}
		plain += len(rows[i].Data) + 1
	}
	return rows, plain
}

func benchSchemas(b *testing.B) (readings, windows *Schema) {
	var err error
	readings, err = NewSchema(Column{Name: "site", Type: TypeString, Optional: true}, Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "seq", Type: TypeInt64, Optional: true}, Column{Name: "ts", Type: TypeTimestamp, Optional: true},
		Column{Name: "temp", Type: TypeDouble, Optional: true}, Column{Name: "ok", Type: TypeBool, Optional: true})
	if err != nil {
		b.Fatal(err)
	}
	windows, err = NewSchema(Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "window_start", Type: TypeTimestamp, Optional: true}, Column{Name: "window_end", Type: TypeTimestamp, Optional: true},
		Column{Name: "n", Type: TypeInt64, Optional: true}, Column{Name: "avg_temp", Type: TypeDouble, Optional: true},
		Column{Name: "max_temp", Type: TypeDouble, Optional: true})
	if err != nil {
		b.Fatal(err)
	}
	return readings, windows
}

// benchBatch is the batch size of the benchmarks (uplink.max_rows is 20,000
// by default; 4 MiB of JSON cuts raw readings at ~40,000).
const benchBatch = 10_000

func benchEncode(b *testing.B, enc Encoder, schema *Schema, rows []Row, plain int) {
	var buf bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(plain))
	for b.Loop() {
		buf.Reset()
		if _, err := enc.Encode(&buf, schema, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rows)), "ns/row")
	b.ReportMetric(float64(buf.Len())/float64(len(rows)), "B/row")
	b.ReportMetric(float64(plain)/float64(buf.Len()), "ratio_vs_jsonl")
}

// BenchmarkEncode: one batch of 10,000 rows per op (allocs/op are per
// batch), raw readings and window aggregates, with the "_id" column:
// Parquet with the declared schema, Parquet with inferred columns, and
// JSON Lines + zstd. B/row is the encoded size per row; ratio_vs_jsonl is
// plain JSON Lines bytes / encoded bytes.
func BenchmarkEncode(b *testing.B) {
	rs, ws := benchSchemas(b)
	readings, rp := readingRows(benchBatch)
	windows, wp := aggregateRows(benchBatch)
	for _, data := range []struct {
		name   string
		schema *Schema
		rows   []Row
		plain  int
	}{{"readings", rs, readings, rp}, {"windows", ws, windows, wp}} {
		b.Run("parquet/"+data.name, func(b *testing.B) {
			benchEncode(b, &ParquetEncoder{IDColumn: "_id"}, data.schema, data.rows, data.plain)
		})
		b.Run("parquet-inferred/"+data.name, func(b *testing.B) {
			benchEncode(b, &ParquetEncoder{IDColumn: "_id"}, nil, data.rows, data.plain)
		})
		b.Run("jsonl/"+data.name, func(b *testing.B) {
			benchEncode(b, &JSONLEncoder{IDColumn: "_id"}, nil, data.rows, data.plain)
		})
	}
}
