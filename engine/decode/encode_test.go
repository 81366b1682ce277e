package decode

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

func TestAppendJSON(t *testing.T) {
	s := engine.MustSchema(
		engine.Field{Name: "s", Kind: engine.KindString},
		engine.Field{Name: "n", Kind: engine.KindNumber},
		engine.Field{Name: "t", Kind: engine.KindTime},
		engine.Field{Name: "b", Kind: engine.KindBool},
		engine.Field{Name: "l", Kind: engine.KindList},
		engine.Field{Name: "we\"ird\n", Kind: engine.KindNumber},
	)
	tests := []struct {
		name string
		vals []engine.Value
		want string
	}{
		{"all null", nil, `{"s":null,"n":null,"t":null,"b":null,"l":null,"we\"ird\n":null}`},
		{"typical", []engine.Value{engine.String("s-0042"), engine.Number(21.4), engine.Time(1732450000123), engine.Bool(true),
			engine.List(engine.Int(1), engine.String("x"), engine.Null), engine.Int(-3)},
			`{"s":"s-0042","n":21.4,"t":1732450000123,"b":true,"l":[1,"x",null],"we\"ird\n":-3}`},
		{"integral number has no fraction", []engine.Value{engine.Null, engine.Number(40)}, `"n":40,`},
		{"big number", []engine.Value{engine.Null, engine.Number(1e21)}, `"n":1e+21,`},
		{"non-finite number is null", []engine.Value{engine.Null, engine.Number(math.Inf(1)), engine.Null, engine.Null, engine.Null, engine.Number(math.NaN())}, `"n":null,`},
		{"string escapes", []engine.Value{engine.String("a\"b\\c\n\r\t\b\f\x01\x1f/é€😀</>&")},
			`{"s":"a\"b\\c\n\r\t\b\f\u0001\u001f/é€😀</>&",`},
		{"invalid UTF-8", []engine.Value{engine.String("a\xffb\xc3")}, `{"s":"a\ufffdb\ufffd",`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := make([]engine.Value, s.Len())
			copy(vals, tt.vals)
			got := string(AppendJSON(nil, s, &engine.Record{Vals: vals}))
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %s; want it to contain %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("got invalid JSON %s", got)
			}
		})
	}
}

func TestAppendJSONNoAllocs(t *testing.T) {
	r := &engine.Record{Vals: []engine.Value{engine.String("s-\"0042\"\n"), engine.Time(1732450000123), engine.Number(21.4), engine.Number(1e300), engine.Bool(false)}}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendJSON(buf[:0], sensorSchema, r)
		buf = AppendCSV(buf[:0], sensorSchema, r)
	})
	if allocs != 0 {
		t.Errorf("got %v allocs/op; want 0", allocs)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	records := [][]engine.Value{
		{engine.String("s-0042"), engine.Time(1732450000123), engine.Number(21.4), engine.Number(40.2), engine.Bool(true)},
		{engine.Null, engine.Null, engine.Null, engine.Null, engine.Null},
		{engine.String("tab\there \"quoted\" \\ \u2028 😀 \x00"), engine.Time(-1), engine.Number(-0.1), engine.Number(1.7976931348623157e308), engine.Bool(false)},
		{engine.String(""), engine.Time(0), engine.Number(5e-324), engine.Number(123456789012345678), engine.Null},
	}
	d := mustJSON(t, untimedConfig())
	b := engine.NewBatch(sensorSchema)
	for _, vals := range records {
		in := &engine.Record{Vals: vals}
		out := AppendJSON(nil, sensorSchema, in)
		if err := d.Decode(out, b); err != nil {
			t.Fatalf("Decode(%s): %v", out, err)
		}
		got := b.Recs[b.Len()-1]
		if !equalVals(got.Vals, vals) {
			t.Errorf("round trip of %s: got %s; want %s", out, valsString(got.Vals), valsString(vals))
		}
	}
}

func TestCSVRoundTrip(t *testing.T) {
	records := [][]engine.Value{
		{engine.String("s-0042"), engine.Time(1732450000123), engine.Number(21.4), engine.Number(40.2), engine.Bool(true)},
		{engine.String("a,b \"c\"\nd"), engine.Null, engine.Number(-1e-7), engine.Null, engine.Bool(false)},
		{engine.String(" padded "), engine.Time(5), engine.Number(1e21), engine.Number(0), engine.Null},
	}
	buf := AppendCSVHeader(nil, sensorSchema)
	for _, vals := range records {
		buf = append(buf, '\n')
		buf = AppendCSV(buf, sensorSchema, &engine.Record{Vals: vals})
	}
	b := engine.NewBatch(sensorSchema)
	if err := DecodeCSV(bytes.NewReader(buf), untimedConfig(), b, nil); err != nil {
		t.Fatalf("DecodeCSV(%s): %v", buf, err)
	}
	if b.Len() != len(records) {
		t.Fatalf("got %d records; want %d", b.Len(), len(records))
	}
	for i, vals := range records {
		if !equalVals(b.Recs[i].Vals, vals) {
			t.Errorf("record %d: got %s; want %s", i, valsString(b.Recs[i].Vals), valsString(vals))
		}
	}
}
