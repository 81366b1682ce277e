package decode

import (
	"errors"
	"testing"

	"github.com/edgedio/edged/engine"
)

// checkDecoded is the property every Decoder fuzz target checks after
// Decode: an error is a *DecodeError and leaves dst as it was; records
// decoded have their event time and valid UTF-8 strings.
func checkDecoded(t *testing.T, cfg Config, b *engine.Batch, n0 int, err error) {
	t.Helper()
	if err != nil {
		asDecodeError(t, err)
		_ = err.Error()
		if b.Len() != n0 {
			t.Fatalf("got %d records after error %v; want %d", b.Len(), err, n0)
		}
		return
	}
	ti, hasTime := cfg.Schema.Index(cfg.TimeField)
	for i := n0; i < b.Len(); i++ {
		r := &b.Recs[i]
		if hasTime && (r.Vals[ti].Kind != engine.KindTime || r.Time != r.Vals[ti].Millis()) {
			t.Fatalf("record %d: time field %s, Time %d; want a time equal to Time", i, r.Vals[ti], r.Time)
		}
		for _, v := range r.Vals {
			if v.Kind == engine.KindString && !validUTF8(v.Str) {
				t.Fatalf("record %d: string %q is not valid UTF-8", i, v.Str)
			}
		}
	}
}

// fuzzDecode decodes payload on topic twice with one decoder (the second
// time after a record from the first), checking checkDecoded each time.
func fuzzDecode(t *testing.T, cfg Config, in Input) *engine.Batch {
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := engine.NewBatch(cfg.Schema)
	for range 2 {
		n0 := b.Len()
		checkDecoded(t, cfg, b, n0, d.Decode(b, in))
	}
	return b
}

// FuzzDecoderJSON: JSON objects and arrays, with topic captures; a decoded
// message written back with AppendJSON decodes to the same records.
func FuzzDecoderJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), "sensors/hall/s-1/temp")
	}
	f.Add([]byte(`[{"sensor":"a","ts":1},{"sensor":"b","ts":2,"temp":3}]`), "")
	f.Add([]byte(`[{"ts":1},{"sensor":"x"}]`), "sensors/a/b/temp")
	f.Add([]byte(`[]`), "sensors/\xff/b/temp")
	f.Fuzz(func(t *testing.T, payload []byte, topic string) {
		cfg := sensorConfig()
		cfg.Schema = engine.MustSchema(append(sensorSchema.Fields(), engine.Field{Name: "site", Kind: engine.KindString})...)
		cfg.Topics = []TopicMatcher{newTmpl("sensors/{site}/{sensor}/temp")}
		b := fuzzDecode(t, cfg, Input{Payload: payload, Topic: []byte(topic)})
		if b.Len() == 0 {
			return
		}
		// Round trip without the topic: the captures are in the records.
		cfg.Topics = nil
		d := mustNew(t, cfg)
		for i := range b.Recs {
			out := AppendJSON(nil, cfg.Schema, &b.Recs[i])
			b2 := engine.NewBatch(cfg.Schema)
			if err := d.Decode(b2, Input{Payload: out}); err != nil {
				t.Fatalf("re-decode of %s (from %q): %v", out, payload, err)
			}
			r, r2 := b.Recs[i], b2.Recs[0]
			if !equalVals(r.Vals, r2.Vals) || r.Time != r2.Time || r.Key != r2.Key {
				t.Fatalf("round trip of %q via %s: got %s; want %s", payload, out, valsString(r2.Vals), valsString(r.Vals))
			}
		}
	})
}

// FuzzDecoderCSV: CSV payloads with a header row and with declared
// columns; decoded rows written back with AppendCSV decode the same.
func FuzzDecoderCSV(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("s-1,1000,21.5,40,true\n\"a,\"\"b\"\"\nc\",2000,,,\r\n"), true)
	f.Add([]byte("s-1,1000\n"), true)
	f.Add([]byte("\"x\"y,1\n"), true)
	f.Fuzz(func(t *testing.T, payload []byte, declared bool) {
		cfg := sensorConfig()
		cfg.Format = FormatCSV
		if declared {
			cfg.CSVColumns = []string{"sensor", "ts", "temp", "hum", "ok"}
		}
		b := fuzzDecode(t, cfg, Input{Payload: payload})
		if b.Len() == 0 {
			return
		}
		var buf []byte
		if !declared {
			buf = append(AppendCSVHeader(nil, sensorSchema), '\n')
		}
		for i := range b.Recs {
			buf = append(AppendCSV(buf, sensorSchema, &b.Recs[i]), '\n')
		}
		d := mustNew(t, cfg)
		b2 := engine.NewBatch(sensorSchema)
		if err := d.Decode(b2, Input{Payload: buf}); err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", buf, payload, err)
		}
		if b2.Len() != b.Len() {
			t.Fatalf("re-decode of %q: got %d records; want %d", buf, b2.Len(), b.Len())
		}
		for i := range b.Recs {
			r, r2 := b.Recs[i], b2.Recs[i]
			if !equalVals(r.Vals, r2.Vals) || r.Time != r2.Time || r.Key != r2.Key {
				t.Fatalf("round trip of %q via %q: record %d: got %s; want %s", payload, buf, i, valsString(r2.Vals), valsString(r.Vals))
			}
		}
	})
}

// FuzzDecoderSenML: SenML packs, with and without a receipt time; a relative
// time is resolved against the receipt time only.
func FuzzDecoderSenML(f *testing.F) {
	for _, s := range senmlSamples {
		f.Add([]byte(s), int64(received))
	}
	f.Add([]byte(`[{"n":"a","v":1}]`), int64(0))
	f.Add([]byte(`[{"n":"a","v":1,"x_":1}]`), int64(1))
	f.Add([]byte("[{\"n\":\"a\",\"vs\":\"\xff\"}]"), int64(1))
	f.Fuzz(func(t *testing.T, payload []byte, recv int64) {
		b := fuzzDecode(t, senmlConfig(), Input{Payload: payload, Received: recv})
		// A second decoder with another receipt time moves only relative
		// times; absolute ones stay.
		if b.Len() == 0 || recv > 1<<40 || recv < -(1<<40) {
			return
		}
		d := mustNew(t, senmlConfig())
		b2 := engine.NewBatch(senmlSchema)
		if err := d.Decode(b2, Input{Payload: payload, Received: recv + 1000}); err != nil {
			var de *DecodeError
			if errors.As(err, &de) && de.Field == "t" { // the shifted time left the range
				return
			}
			t.Fatalf("decode with another receipt time: %v", err)
		}
		for i := range b2.Recs { // b holds the message's records twice
			if dt := b2.Recs[i].Time - b.Recs[i].Time; dt != 0 && dt != 1000 {
				t.Fatalf("record %d: time moved by %d ms when the receipt moved by 1000", i, dt)
			}
		}
	})
}

// FuzzDecoderRaw: any payload is either one record holding it as is, or
// rejected (not UTF-8, too long).
func FuzzDecoderRaw(f *testing.F) {
	for _, s := range []string{"hello", "", "\xff", "ON\n", "\x00\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		s := engine.MustSchema(engine.Field{Name: "payload", Kind: engine.KindString})
		cfg := Config{Schema: s, Format: FormatRaw, MaxLineBytes: 64}
		b := fuzzDecode(t, cfg, Input{Payload: payload})
		if b.Len() > 0 && b.Recs[0].Vals[0].Str != string(payload) {
			t.Fatalf("got %q; want the payload %q", b.Recs[0].Vals[0].Str, payload)
		}
	})
}

// FuzzParseEntry: ParseEntry never panics, and an entry AppendEntry wrote
// parses back to its input.
func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"x":1}`), "sensors/a", int64(received))
	f.Add([]byte{0, 1}, "", int64(0))
	f.Fuzz(func(t *testing.T, payload []byte, topic string, recv int64) {
		_ = ParseEntry(payload)
		_ = EntryIdentity(payload)
		in := ParseEntry(AppendEntry(nil, recv, topic, payload))
		if string(in.Payload) != string(payload) || string(in.Topic) != topic || in.Received != recv {
			t.Fatalf("got %+v; want payload %q topic %q received %d", in, payload, topic, recv)
		}
	})
}

// FuzzSplitFile: every byte of a file is in a message or a line end or a
// blank line, and messages come in order.
func FuzzSplitFile(f *testing.F) {
	f.Add([]byte("a,b\n1,\"x\ny\"\n\n2,z"), true)
	f.Add([]byte("{\"a\":1}\r\n\n{\"a\":2}"), false)
	f.Fuzz(func(t *testing.T, data []byte, csv bool) {
		format := FormatJSON
		if csv {
			format = FormatCSV
		}
		last := 0
		err := SplitFile(data, format, func(line int, msg []byte) error {
			if line <= last || len(msg) == 0 {
				t.Fatalf("got message %q at line %d after line %d", msg, line, last)
			}
			last = line
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
