package decode

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

func TestDecodeJSONValues(t *testing.T) {
	null := engine.Null
	tests := []struct {
		name    string
		cfg     func(*Config)
		in      string
		want    []engine.Value
		wantT   int64
		wantKey string
	}{
		{
			name:    "typical sensor reading",
			in:      `{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}`,
			want:    []engine.Value{engine.String("s-0042"), engine.Time(1732450000123), engine.Number(21.4), engine.Number(40.2), null},
			wantT:   1732450000123,
			wantKey: "s-0042",
		},
		{
			name:    "white space, other key order, bool",
			in:      " \r\n{ \"ok\" : true ,\t\"hum\":-0.5e1, \"sensor\" : \"a\" }\n",
			want:    []engine.Value{engine.String("a"), null, null, engine.Number(-5), engine.Bool(true)},
			wantKey: "a",
		},
		{
			name: "empty object gives all nulls",
			in:   `{}`,
			want: []engine.Value{null, null, null, null, null},
		},
		{
			name: "explicit nulls",
			in:   `{"sensor":null,"ts":null,"temp":null,"hum":null,"ok":null}`,
			want: []engine.Value{null, null, null, null, null},
		},
		{
			name:    "unknown keys with nested values are skipped",
			in:      `{"meta":{"a":[1,2,{"b":"}"}],"c":null},"sensor":"x","list":[],"o":{},"t":true,"f":false,"n":null,"s":"\u00e9","num":-1.5E+3}`,
			want:    []engine.Value{engine.String("x"), null, null, null, null},
			wantKey: "x",
		},
		{
			name:    "escapes in strings",
			in:      `{"sensor":"a\"b\\c\/d\n\t\r\b\f\u00e9\u20ac\ud83d\ude00"}`,
			want:    []engine.Value{engine.String("a\"b\\c/d\n\t\r\b\f\u00e9\u20ac\U0001F600"), null, null, null, null},
			wantKey: "a\"b\\c/d\n\t\r\b\f\u00e9\u20ac\U0001F600",
		},
		{
			name:    "valid UTF-8 kept",
			in:      "{\"sensor\":\"kü東\U0001F600\"}",
			want:    []engine.Value{engine.String("kü東\U0001F600"), null, null, null, null},
			wantKey: "kü東\U0001F600",
		},
		{
			name: "escaped key matches the field",
			in:   `{"t\u0065mp":1}`,
			want: []engine.Value{null, null, engine.Number(1), null, null},
		},
		{
			name: "numeric strings into number fields",
			in:   `{"temp":"21.5","hum":" -3e2 "}`,
			want: []engine.Value{null, null, engine.Number(21.5), engine.Number(-300), null},
		},
		{
			name: "bool as string",
			in:   `{"ok":"false"}`,
			want: []engine.Value{null, null, null, null, engine.Bool(false)},
		},
		{
			name:  "RFC 3339 string time",
			in:    `{"ts":"2024-11-24T12:06:40.123Z"}`,
			want:  []engine.Value{null, engine.Time(1732450000123), null, null, null},
			wantT: 1732450000123,
		},
		{
			name:  "RFC 3339 with offset",
			in:    `{"ts":"2024-11-24T13:06:40.123+01:00"}`,
			want:  []engine.Value{null, engine.Time(1732450000123), null, null, null},
			wantT: 1732450000123,
		},
		{
			name:  "numeric string time in unit",
			in:    `{"ts":"1732450000123"}`,
			want:  []engine.Value{null, engine.Time(1732450000123), null, null, null},
			wantT: 1732450000123,
		},
		{
			name:  "fractional unix seconds",
			cfg:   func(c *Config) { c.TimeFormat = TimeUnixS },
			in:    `{"ts":1732450000.123}`,
			want:  []engine.Value{null, engine.Time(1732450000123), null, null, null},
			wantT: 1732450000123,
		},
		{
			name:  "unix seconds as string",
			cfg:   func(c *Config) { c.TimeFormat = TimeUnixS },
			in:    `{"ts":"1732450000"}`,
			want:  []engine.Value{null, engine.Time(1732450000000), null, null, null},
			wantT: 1732450000000,
		},
		{
			name:  "rfc3339 format still reads numbers as ms",
			cfg:   func(c *Config) { c.TimeFormat = TimeRFC3339 },
			in:    `{"ts":1732450000123}`,
			want:  []engine.Value{null, engine.Time(1732450000123), null, null, null},
			wantT: 1732450000123,
		},
		{
			name:    "composite key with null and number",
			cfg:     func(c *Config) { c.KeyFields = []string{"sensor", "temp", "hum", "ok"} },
			in:      `{"sensor":"s1","temp":21,"ok":true}`,
			want:    []engine.Value{engine.String("s1"), null, engine.Number(21), null, engine.Bool(true)},
			wantKey: "s1/21//true",
		},
		{
			name: "big and tiny numbers",
			in:   `{"temp":1e308,"hum":-0.000000000000000000001234567890123456789}`,
			want: []engine.Value{null, null, engine.Number(1e308), engine.Number(-1.234567890123456789e-21), null},
		},
		{
			name:  "strict accepts a complete object",
			cfg:   func(c *Config) { c.Strict = true },
			in:    `{"sensor":"a","ts":1,"temp":2,"hum":3,"ok":null}`,
			want:  []engine.Value{engine.String("a"), engine.Time(1), engine.Number(2), engine.Number(3), null},
			wantT: 1, wantKey: "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sensorConfig()
			if tt.wantT == 0 {
				cfg.TimeField = "" // records without a time need a pipeline without event time
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d := mustJSON(t, cfg)
			b := engine.NewBatch(sensorSchema)
			if err := d.Decode([]byte(tt.in), b); err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if b.Len() != 1 {
				t.Fatalf("got %d records; want 1", b.Len())
			}
			r := b.Recs[0]
			if !equalVals(r.Vals, tt.want) {
				t.Errorf("got %s; want %s", valsString(r.Vals), valsString(tt.want))
			}
			if r.Time != tt.wantT {
				t.Errorf("got Time %d; want %d", r.Time, tt.wantT)
			}
			if r.Key != tt.wantKey {
				t.Errorf("got Key %q; want %q", r.Key, tt.wantKey)
			}
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name      string
		strict    bool
		in        string
		wantField string
		wantOff   int // -1: do not check
		wantMsg   string
	}{
		{"number into string field", false, `{"sensor":12}`, "sensor", 10, `decode: field "sensor": want string, got number 12`},
		{"non-numeric string into number field", false, `{"temp":"abc"}`, "temp", 8, `decode: field "temp": want number, got string "abc"`},
		{"NaN string into number field", false, `{"temp":"NaN"}`, "temp", 8, `want number, got string "NaN"`},
		{"bool into number field", false, `{"temp":true}`, "temp", 8, `want number, got bool true`},
		{"object into number field", false, `{"temp":{"v":1}}`, "temp", 8, `want number, got object`},
		{"array into string field", false, `{"sensor":["a"]}`, "sensor", 10, `want string, got array`},
		{"bad time string", false, `{"ts":"yesterday"}`, "ts", 6, `want time (RFC 3339 or a number), got string "yesterday"`},
		{"time out of range", false, `{"ts":1e300}`, "ts", 6, `out of range`},
		{"duplicate key", false, `{"temp":1,"temp":2}`, "temp", 17, `duplicate key`},
		{"unknown key in strict mode", true, `{"sensor":"a","x":1}`, "x", 18, `unknown field (strict)`},
		{"missing field in strict mode", true, `{"sensor":"a","ts":1,"temp":2,"hum":3}`, "ok", -1, `decode: field "ok": missing (strict)`},
		{"unexpected close brace", false, `{"sensor":"s-0042",}`, "", 19, `decode: byte 19: unexpected '}', want string key`},
		{"empty input", false, ``, "", 0, `decode: byte 0: unexpected end of input, want '{'`},
		{"not an object", false, `[1]`, "", 0, `unexpected '[', want '{'`},
		{"truncated", false, `{"sensor":"s-00`, "", 10, `unterminated string`},
		{"truncated after value", false, `{"temp":21.4`, "", 12, `unexpected end of input, want ',' or '}'`},
		{"missing colon", false, `{"temp" 1}`, "", 8, `want ':'`},
		{"trailing garbage", false, `{"temp":1} x`, "", 11, `unexpected 'x', want end of input after the object`},
		{"two objects", false, `{}{}`, "", 2, `unexpected '{'`},
		{"leading zero", false, `{"temp":01}`, "", 9, `unexpected '1', want ',' or '}'`},
		{"bare dot", false, `{"temp":1.}`, "", 10, `want a digit after '.'`},
		{"bad exponent", false, `{"temp":1e}`, "", 10, `want a digit in the exponent`},
		{"number overflow", false, `{"temp":1e999}`, "temp", 8, `decode: field "temp": number "1e999" out of range`},
		{"number overflow in unknown key is skipped", false, `{"x":1e999,"temp":"1e999"}`, "temp", 18, `want number, got string "1e999"`},
		{"bad literal", false, `{"ok":tru}`, "", 9, `unexpected '}', want 'true'`},
		{"control character in string", false, "{\"sensor\":\"a\nb\"}", "", 12, `control character byte 0xa in string`},
		{"bad escape", false, `{"sensor":"\x"}`, "", 11, `invalid escape "\\x"`},
		{"bad unicode escape", false, `{"sensor":"\u12g4"}`, "", 11, `invalid \u escape`},
		{"bad nested value in unknown key", false, `{"x":[1,}`, "", 8, `unexpected '}', want a value`},
		{"mismatched nesting in unknown key", false, `{"x":[1}`, "", 7, `want ',' or ']'`},
		{"lone surrogate", false, `{"sensor":"x\ud800y"}`, "sensor", 12, `decode: field "sensor": \u escape "\\ud800" is half of a UTF-16 surrogate pair`},
		{"reversed surrogate pair", false, `{"sensor":"\udc00\ud800"}`, "sensor", 11, `half of a UTF-16 surrogate pair`},
		{"invalid UTF-8 in a field", false, "{\"sensor\":\"k\xffü\"}", "sensor", 12, `decode: field "sensor": text is not valid UTF-8`},
		{"invalid UTF-8 after an escape", false, "{\"sensor\":\"\\n\xc3\"}", "sensor", 13, `text is not valid UTF-8`},
		{"overlong UTF-8", false, "{\"sensor\":\"\xc0\xaf\"}", "sensor", 11, `text is not valid UTF-8`},
		{"UTF-8 encoded surrogate", false, "{\"sensor\":\"\xed\xa0\x80\"}", "sensor", 11, `text is not valid UTF-8`},
		{"invalid UTF-8 in a skipped key", false, "{\"x\xff\":1}", "", 3, `text is not valid UTF-8`},
		{"missing event time", false, `{"sensor":"a","temp":1}`, "ts", -1, `decode: field "ts": no event time`},
		{"null event time", false, `{"sensor":"a","ts":null}`, "ts", -1, `no event time`},
		{"too deep", false, `{"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, "", 5 + maxDepth, `nesting deeper than 256`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sensorConfig()
			cfg.Strict = tt.strict
			d := mustJSON(t, cfg)
			b := engine.NewBatch(sensorSchema)
			err := d.Decode([]byte(tt.in), b)
			if err == nil {
				t.Fatalf("Decode(%q) = nil; want an error", tt.in)
			}
			if b.Len() != 0 {
				t.Errorf("got %d records after an error; want 0", b.Len())
			}
			de := asDecodeError(t, err)
			if de.Field != tt.wantField {
				t.Errorf("got Field %q; want %q (%v)", de.Field, tt.wantField, err)
			}
			if tt.wantOff >= 0 && de.Offset != tt.wantOff {
				t.Errorf("got Offset %d; want %d (%v)", de.Offset, tt.wantOff, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %q; want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDecodeJSONErrorLeavesBatchUntouched(t *testing.T) {
	d := mustJSON(t, untimedConfig())
	b := engine.NewBatch(sensorSchema)
	if err := d.Decode([]byte(`{"sensor":"a","temp":1}`), b); err != nil {
		t.Fatal(err)
	}
	// The bad payload fails after two fields were already decoded.
	if err := d.Decode([]byte(`{"sensor":"b","temp":2,"hum":"x"}`), b); err == nil {
		t.Fatal("got nil error; want one")
	}
	if err := d.Decode([]byte(`{"hum":3}`), b); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 2 {
		t.Fatalf("got %d records; want 2", b.Len())
	}
	want := []engine.Value{engine.Null, engine.Null, engine.Null, engine.Number(3), engine.Null}
	if !equalVals(b.Recs[1].Vals, want) {
		t.Errorf("got %s; want %s (scratch leaked from the failed payload)", valsString(b.Recs[1].Vals), valsString(want))
	}
}

func TestDecodeJSONBatchSchemaMismatch(t *testing.T) {
	d := mustJSON(t, untimedConfig())
	other := engine.MustSchema(engine.Field{Name: "x", Kind: engine.KindNumber})
	if err := d.Decode([]byte(`{}`), engine.NewBatch(other)); err == nil {
		t.Fatal("got nil error for a batch of another schema; want one")
	}
	// An equal schema that is a different pointer is fine.
	same := engine.MustSchema(sensorSchema.Fields()...)
	if err := d.Decode([]byte(`{}`), engine.NewBatch(same)); err != nil {
		t.Fatalf("got %v for an equal schema; want nil", err)
	}
}

func TestFastNumberPathMatchesParseFloat(t *testing.T) {
	inputs := []string{"0", "-0", "1", "21.4", "40.2", "0.1", "0.3", "-123.456", "999999999999999",
		"99999999999999.9", "0.000000000000001", "1732450000123", "1234567890.12345",
		"9007199254740993", "0.1234567890123456789", "123456789012345678901234567890"}
	for i := 0; i < 2000; i++ { // deterministic pseudo-random decimals
		x := uint64(i)*2654435761%1000000007 + uint64(i)
		inputs = append(inputs, strconv.FormatUint(x, 10)+"."+strconv.Itoa(i%1000))
	}
	for _, s := range inputs {
		got, end, err := scanNumber([]byte(s), 0)
		if err != nil || end != len(s) {
			t.Fatalf("scanNumber(%q) = _, %d, %v; want the whole input", s, end, err)
		}
		want, _ := strconv.ParseFloat(s, 64)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("scanNumber(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestNewJSONRejectsBadConfig(t *testing.T) {
	if _, err := NewJSON(Config{}); err == nil || !strings.Contains(err.Error(), "schema: required") {
		t.Errorf("got %v; want a schema: required error", err)
	}
}

func TestDecodeJSONAllocs(t *testing.T) {
	d := mustJSON(t, sensorConfig())
	b := engine.NewBatch(sensorSchema)
	payloads := [][]byte{
		[]byte(`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}`),
		// slow number path (strconv.ParseFloat) and escapes
		[]byte(`{"sensor":"s-\u0030042","ts":1.732450000123e12,"temp":21.41234567890123456,"hum":4.02e1,"x":{"y":[1,"z"]}}`),
	}
	for _, p := range payloads {
		if err := d.Decode(p, b); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if b.Len() == 1024 {
				b.Reset(sensorSchema)
			}
			if err := d.Decode(p, b); err != nil {
				t.Fatal(err)
			}
		})
		// Append grows a fresh value arena once per 64 records.
		if allocs > 0.1 {
			t.Errorf("Decode(%s): got %.2f allocs/op; want 0", p, allocs)
		}
	}
}

func TestInternBounded(t *testing.T) {
	in := interner{m: map[string]string{}}
	for i := 0; i < 3*internMaxEntries; i++ {
		s := in.get([]byte("sensor-" + strconv.Itoa(i)))
		if s != "sensor-"+strconv.Itoa(i) {
			t.Fatalf("got %q", s)
		}
		if len(in.m) > internMaxEntries {
			t.Fatalf("got %d entries; want at most %d", len(in.m), internMaxEntries)
		}
	}
	long := strings.Repeat("x", internMaxLen+1)
	in.get([]byte(long))
	if _, ok := in.m[long]; ok {
		t.Errorf("a %d-byte string was interned; want only strings up to %d bytes", len(long), internMaxLen)
	}
}
