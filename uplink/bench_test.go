package uplink

import (
	"bytes"
	"fmt"
	"io"
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

func benchEncode(b *testing.B, enc Encoder) {
	rows, plain := aggregateRows(100_000)
	var buf bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(plain))
	b.ResetTimer()
	for b.Loop() {
		buf.Reset()
		if _, err := enc.Encode(&buf, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(buf.Len()), "bytes_out")
	b.ReportMetric(float64(plain)/float64(buf.Len()), "ratio_vs_jsonl")
}

// BenchmarkEncodeParquet: 100,000 aggregate rows to Parquet+zstd (no id
// column, the rows only); ratio_vs_jsonl is plain JSON Lines bytes / output.
func BenchmarkEncodeParquet(b *testing.B) { benchEncode(b, &ParquetEncoder{}) }

// BenchmarkEncodeParquetWithID: the same with the default "_id" column.
func BenchmarkEncodeParquetWithID(b *testing.B) { benchEncode(b, &ParquetEncoder{IDColumn: "_id"}) }

// BenchmarkEncodeJSONLZstd: the same rows as JSON Lines + zstd.
func BenchmarkEncodeJSONLZstd(b *testing.B) { benchEncode(b, &JSONLEncoder{}) }

var _ = io.Discard
