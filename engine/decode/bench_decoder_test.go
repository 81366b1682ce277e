package decode

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// decoderCase is one format's typical message, for the allocation test and
// the benchmarks.
type decoderCase struct {
	name   string
	cfg    Config
	schema *engine.Schema
	in     Input
}

func decoderCases() []decoderCase {
	topics := []TopicMatcher{newTmpl("sensors/{site}/{sensor}/temp")}
	withTopics := func(c Config) Config { c.Topics = topics; return c }
	csvRows := func(n int, header bool) []byte {
		var b strings.Builder
		if header {
			b.WriteString("site,sensor,ts,temp\n")
		}
		for i := range n {
			b.WriteString("hall,s-0042," + strconv.Itoa(1732450000123+i) + ",21.4\n")
		}
		return []byte(b.String())
	}
	cols := readingConfig(FormatCSV)
	cols.CSVColumns = []string{"site", "sensor", "ts", "temp"}
	return []decoderCase{
		{"json", readingConfig(FormatJSON), readingSchema,
			Input{Payload: []byte(`{"site":"hall","sensor":"s-0042","ts":1732450000123,"temp":21.4}`)}},
		{"json_topic", withTopics(readingConfig(FormatJSON)), readingSchema,
			Input{Payload: []byte(`{"ts":1732450000123,"temp":21.4}`), Topic: []byte("sensors/hall/s-0042/temp")}},
		{"json_array8", readingConfig(FormatJSON), readingSchema,
			Input{Payload: []byte("[" + strings.Repeat(`{"site":"hall","sensor":"s-0042","ts":1732450000123,"temp":21.4},`, 7) +
				`{"site":"hall","sensor":"s-0042","ts":1732450000123,"temp":21.4}]`)}},
		{"csv_header", readingConfig(FormatCSV), readingSchema, Input{Payload: csvRows(1, true)}},
		{"csv_columns", cols, readingSchema, Input{Payload: csvRows(1, false)}},
		{"csv_columns8", cols, readingSchema, Input{Payload: csvRows(8, false)}},
		{"senml", senmlConfig(), senmlSchema,
			Input{Payload: []byte(`[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},{"n":"humidity","u":"%RH","v":80,"t":-1}]`), Received: received}},
		{"senml_rfc8428_5.1.5", senmlConfig(), senmlSchema, Input{Payload: []byte(senmlSamples[4]), Received: received}},
		{"raw", Config{Schema: engine.MustSchema(engine.Field{Name: "payload", Kind: engine.KindString}), Format: FormatRaw},
			engine.MustSchema(engine.Field{Name: "payload", Kind: engine.KindString}), Input{Payload: []byte("ON")}},
	}
}

// TestDecoderAllocs: in steady state no format allocates per message (a
// batch's value arena grows once per 64 records, and strings of up to 64
// bytes are interned).
func TestDecoderAllocs(t *testing.T) {
	for _, c := range decoderCases() {
		t.Run(c.name, func(t *testing.T) {
			d := mustNew(t, c.cfg)
			b := engine.NewBatch(c.schema)
			if err := d.Decode(b, c.in); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if b.Len() >= 1024 {
					b.Reset(c.schema)
				}
				if err := d.Decode(b, c.in); err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 0.2 {
				t.Errorf("got %.2f allocs/op; want 0", allocs)
			}
		})
	}
}

// BenchmarkDecoder decodes one typical message per format into a reused
// batch; records/s counts records, not messages.
func BenchmarkDecoder(b *testing.B) {
	for _, c := range decoderCases() {
		b.Run(c.name, func(b *testing.B) {
			d := mustNew(b, c.cfg)
			batch := engine.NewBatch(c.schema)
			if err := d.Decode(batch, c.in); err != nil {
				b.Fatal(err)
			}
			per := batch.Len()
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in.Payload)))
			for b.Loop() {
				if batch.Len() >= 1024 {
					batch.Reset(c.schema)
				}
				if err := d.Decode(batch, c.in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
