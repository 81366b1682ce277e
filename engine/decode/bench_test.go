package decode

import (
	"encoding/json"
	"testing"

	"github.com/edgedio/edged/engine"
)

var benchPayload = []byte(`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}`)

var benchSchema = engine.MustSchema(
	engine.Field{Name: "sensor", Kind: engine.KindString},
	engine.Field{Name: "ts", Kind: engine.KindTime},
	engine.Field{Name: "temp", Kind: engine.KindNumber},
	engine.Field{Name: "hum", Kind: engine.KindNumber},
)

// BenchmarkDecodeJSON decodes a typical sensor payload into a reused batch,
// beside encoding/json decoding the same payload into a struct.
func BenchmarkDecodeJSON(b *testing.B) {
	b.Run("edged", func(b *testing.B) {
		d := mustJSON(b, Config{Schema: benchSchema, TimeField: "ts"})
		batch := engine.NewBatch(benchSchema)
		b.ReportAllocs()
		b.SetBytes(int64(len(benchPayload)))
		for b.Loop() {
			if batch.Len() == 1024 {
				batch.Reset(benchSchema)
			}
			if err := d.Decode(benchPayload, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		type reading struct {
			Sensor string  `json:"sensor"`
			TS     int64   `json:"ts"`
			Temp   float64 `json:"temp"`
			Hum    float64 `json:"hum"`
		}
		var r reading
		b.ReportAllocs()
		b.SetBytes(int64(len(benchPayload)))
		for b.Loop() {
			r = reading{}
			if err := json.Unmarshal(benchPayload, &r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkAppendJSON encodes the benchmark record into a reused buffer.
func BenchmarkAppendJSON(b *testing.B) {
	r := &engine.Record{Vals: []engine.Value{engine.String("s-0042"), engine.Time(1732450000123), engine.Number(21.4), engine.Number(40.2)}}
	buf := AppendJSON(nil, benchSchema, r)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = AppendJSON(buf[:0], benchSchema, r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
