package decode

import (
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

func TestDecodeCSV(t *testing.T) {
	in := "\ufeffsensor, ts ,temp,hum,extra,ok\n" +
		"s-1,1000,20.5,40,ignored,true\n" +
		`"s,2","2024-11-24T12:06:40.123Z",-1e2,,"x""y",0` + "\n" +
		"\"multi\nline\",3000, 7 ,1,,\n"
	b := engine.NewBatch(sensorSchema)
	if err := DecodeCSV(strings.NewReader(in), sensorConfig(), b, nil); err != nil {
		t.Fatalf("DecodeCSV: %v", err)
	}
	want := [][]engine.Value{
		{engine.String("s-1"), engine.Time(1000), engine.Number(20.5), engine.Number(40), engine.Bool(true)},
		{engine.String("s,2"), engine.Time(1732450000123), engine.Number(-100), engine.Null, engine.Bool(false)},
		{engine.String("multi\nline"), engine.Time(3000), engine.Number(7), engine.Number(1), engine.Null},
	}
	if b.Len() != len(want) {
		t.Fatalf("got %d records; want %d", b.Len(), len(want))
	}
	for i, w := range want {
		if !equalVals(b.Recs[i].Vals, w) {
			t.Errorf("record %d: got %s; want %s", i, valsString(b.Recs[i].Vals), valsString(w))
		}
		if b.Recs[i].Time != w[1].Millis() || b.Recs[i].Key != w[0].Str {
			t.Errorf("record %d: got Time %d Key %q; want %d %q", i, b.Recs[i].Time, b.Recs[i].Key, w[1].Millis(), w[0].Str)
		}
	}
}

func TestDecodeCSVBadRows(t *testing.T) {
	in := "sensor,ts,temp\n" +
		"s-1,1000,20.5\n" +
		"s-2,2000,warm\n" + // line 3: bad number
		"s-3,3000\n" + // line 4: short row
		"s-4,4\"000,1\n" + // line 5: bare quote
		"s-5,yesterday,1\n" + // line 6: bad time
		"s-6,6000,6\n"
	var bad []badLine
	b := engine.NewBatch(sensorSchema)
	err := DecodeCSV(strings.NewReader(in), sensorConfig(), b, func(line int, raw []byte, err error) {
		bad = append(bad, badLine{line, string(raw), err})
	})
	if err != nil {
		t.Fatalf("DecodeCSV: %v", err)
	}
	if b.Len() != 2 || b.Recs[0].Key != "s-1" || b.Recs[1].Key != "s-6" {
		t.Fatalf("got %d records; want s-1 and s-6", b.Len())
	}
	want := []struct {
		line       int
		field, msg string
		raw        string
	}{
		{3, "temp", `decode: line 3: field "temp": want number, got string "warm"`, "s-2,2000,warm"},
		{4, "", "decode: line 4: row has 2 columns; header has 3", "s-3,3000"},
		{5, "", `decode: line 5: bare " in non-quoted-field`, ""},
		{6, "ts", `decode: line 6: field "ts": want time`, "s-5,yesterday,1"},
	}
	if len(bad) != len(want) {
		t.Fatalf("got %d bad rows %v; want %d", len(bad), bad, len(want))
	}
	for i, w := range want {
		de := asDecodeError(t, bad[i].err)
		if bad[i].line != w.line || de.Line != w.line || de.Field != w.field {
			t.Errorf("bad row %d: got line %d/%d field %q; want line %d field %q", i, bad[i].line, de.Line, de.Field, w.line, w.field)
		}
		if !strings.HasPrefix(de.Error(), w.msg) {
			t.Errorf("bad row %d: got %q; want prefix %q", i, de.Error(), w.msg)
		}
		if bad[i].raw != w.raw {
			t.Errorf("bad row %d: got raw %q; want %q", i, bad[i].raw, w.raw)
		}
	}
}

func TestDecodeCSVHeader(t *testing.T) {
	tests := []struct {
		name   string
		strict bool
		header string
		want   string // error substring; "" for success
	}{
		{"all columns", true, "sensor,ts,temp,hum,ok", ""},
		{"optional columns may be missing", false, "sensor,ts", ""},
		{"missing key column", false, "ts,temp", `decode: line 1: field "sensor": missing column in the header (have ts, temp)`},
		{"missing time column", false, "sensor,temp", `field "ts": missing column`},
		{"strict requires every column", true, "sensor,ts,temp,hum", `field "ok": missing column`},
		{"duplicate column", false, "sensor,ts,sensor", `field "sensor": column appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sensorConfig()
			cfg.Strict = tt.strict
			err := DecodeCSV(strings.NewReader(tt.header+"\n"), cfg, engine.NewBatch(sensorSchema), nil)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeCSVEmpty(t *testing.T) {
	if err := DecodeCSV(strings.NewReader(""), sensorConfig(), engine.NewBatch(sensorSchema), nil); err != nil {
		t.Errorf("got %v; want nil", err)
	}
}
