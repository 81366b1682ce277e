package decode

import (
	"bytes"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

var jsonSeeds = []string{
	`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}`,
	`{"sensor":"s-0042","ts":"2024-11-24T12:06:40.123Z","temp":"21.4","hum":40.2,"ok":true}`,
	`{"sensor":"caf\u00e9 \ud83d\ude00 \"q\" \\ \n","ts":1732450000123,"temp":-1.5e-3,"hum":null,"ok":false}`,
	`{"sensor":"東京-01","ts":1732450000,"temp":0,"hum":100,"meta":{"fw":"1.2.3","tags":["a",1,null,{"x":[]}]}}`,
	`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.`,
	`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}}`,
	`{"sensor":12,"temp":"abc"}`,
	`{"temp":1e999,"hum":-0,"ok":"1"}`,
	`{"sensor":"\ud800\udc00\udbff","ts":-1}`,
	"{\"sensor\":\"\xff\xfe\",\"ts\":1}",
	`[{"sensor":"s"}]`,
	`{"a":{"b":{"c":{"d":[[[[[]]]]]}}}}`,
	``,
	`null`,
	"\x00\x01garbage\"}",
}

// FuzzDecodeJSON checks that Decode never panics and that a payload either
// fails, appending nothing, or gives a record that AppendJSON writes back as
// JSON decoding to equal values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(jsonSeeds[0]+` `), true)
	f.Fuzz(func(t *testing.T, payload []byte, strict bool) {
		cfg := sensorConfig()
		cfg.Strict = strict
		d := mustJSON(t, cfg)
		b := engine.NewBatch(sensorSchema)
		err := d.Decode(payload, b)
		if err != nil {
			if b.Len() != 0 {
				t.Fatalf("got %d records after error %v; want 0", b.Len(), err)
			}
			asDecodeError(t, err)
			_ = err.Error()
			return
		}
		if b.Len() != 1 {
			t.Fatalf("got %d records; want 1", b.Len())
		}
		r := b.Recs[0]
		out := AppendJSON(nil, sensorSchema, &r)
		b2 := engine.NewBatch(sensorSchema)
		if err := d.Decode(out, b2); err != nil {
			t.Fatalf("re-decode of %s (from %q): %v", out, payload, err)
		}
		r2 := b2.Recs[0]
		if !equalVals(r.Vals, r2.Vals) || r.Time != r2.Time || r.Key != r2.Key {
			t.Fatalf("round trip of %q via %s: got %s (t=%d key=%q); want %s (t=%d key=%q)",
				payload, out, valsString(r2.Vals), r2.Time, r2.Key, valsString(r.Vals), r.Time, r.Key)
		}
	})
}

var csvSeeds = []string{
	"sensor,ts,temp,hum\ns-0042,1732450000123,21.4,40.2\ns-0043,1732450000124,21.5,40.1\n",
	"sensor,ts,temp,hum,ok\r\n\"s,1\",2024-11-24T12:06:40.123Z,-1e-3,,true\r\n",
	"\ufeffsensor,ts,extra\n\"multi\nline \"\"q\"\"\",1,x\n",
	"sensor,ts,temp\ns-1,1000\ns-2,x,1\ns-3,3\"0,1\n",
	"ts,temp\n1,2\n",
	"sensor,ts,temp,hum\ns-0042,1732450000123,21.4,40.",
	"sensor,sensor\n",
	"",
	"\"unterminated\n",
}

// FuzzDecodeCSV checks that DecodeCSV never panics, that every bad row is
// reported with a *DecodeError, and that decoded records survive a CSV round
// trip through AppendCSV.
func FuzzDecodeCSV(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, strict bool) {
		cfg := sensorConfig()
		cfg.Strict = strict
		b := engine.NewBatch(sensorSchema)
		bad := 0
		err := DecodeCSV(bytes.NewReader(in), cfg, b, func(line int, raw []byte, err error) {
			bad++
			if de := asDecodeError(t, err); de.Line != line || line < 1 {
				t.Fatalf("got line %d and error line %d; want equal and positive", line, de.Line)
			}
		})
		if err != nil {
			asDecodeError(t, err)
			return
		}
		if b.Len() == 0 {
			return
		}
		buf := AppendCSVHeader(nil, sensorSchema)
		for i := range b.Recs {
			buf = append(buf, '\n')
			buf = AppendCSV(buf, sensorSchema, &b.Recs[i])
		}
		b2 := engine.NewBatch(sensorSchema)
		if err := DecodeCSV(bytes.NewReader(buf), cfg, b2, nil); err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", buf, in, err)
		}
		if b2.Len() != b.Len() {
			t.Fatalf("re-decode of %q: got %d records; want %d", buf, b2.Len(), b.Len())
		}
		for i := range b.Recs {
			r, r2 := b.Recs[i], b2.Recs[i]
			if !equalVals(r.Vals, r2.Vals) || r.Time != r2.Time || r.Key != r2.Key {
				t.Fatalf("round trip of %q via %q: record %d: got %s; want %s", in, buf, i, valsString(r2.Vals), valsString(r.Vals))
			}
		}
	})
}

// FuzzDecodeLines checks that DecodeLines never panics and accounts for every
// non-blank line: each one is either a record or a bad line.
func FuzzDecodeLines(f *testing.F) {
	f.Add([]byte(strings.Join(jsonSeeds, "\n")))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := engine.NewBatch(sensorSchema)
		bad := 0
		if err := DecodeLines(bytes.NewReader(in), sensorConfig(), b, func(int, []byte, error) { bad++ }); err != nil {
			t.Fatal(err)
		}
		lines := 0
		for _, l := range bytes.Split(in, []byte("\n")) {
			if len(bytes.Trim(l, " \t\r\n")) > 0 {
				lines++
			}
		}
		if b.Len()+bad != lines {
			t.Fatalf("got %d records + %d bad lines; want %d lines", b.Len(), bad, lines)
		}
	})
}
