package decode

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// senmlSamples are the RFC 8428 §5.1 examples (JSON) and a few more.
var senmlSamples = []string{
	// 5.1.1 single datapoint
	`[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
	// 5.1.2 multiple datapoints
	`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
	  {"n":"current","u":"A","v":1.2}]`,
	// 5.1.3 multiple measurements
	`[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},
	  {"n":"current","t":-5,"v":1.2},{"n":"current","t":-4,"v":1.3},{"n":"current","t":-3,"v":1.4},
	  {"n":"current","t":-2,"v":1.5},{"n":"current","t":-1,"v":1.6},{"n":"current","v":1.7}]`,
	// 5.1.4 resolved data
	`[{"n":"urn:dev:ow:10e2073a0108006:voltage","u":"V","v":120.1,"t":1.320078429e+09},
	  {"n":"urn:dev:ow:10e2073a0108006:current","u":"A","v":1.2,"t":1.320078429e+09}]`,
	// 5.1.5 multiple data types
	`[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},
	  {"n":"humidity","u":"%RH","v":80},{"n":"open","vb":false},{"n":"label","vs":"kitchen"},
	  {"n":"data","vd":"aGkgCg"}]`,
	// 5.1.6 collection of resources
	`[{"bn":"2001:db8::2/","n":"temperature","u":"Cel","v":23.5},{"n":"humidity","u":"%RH","v":33.7}]`,
	// sums and base values
	`[{"bn":"meter/","bs":100,"bv":10,"n":"energy","u":"J","v":1,"s":5},{"n":"only-sum","s":7}]`,
	// unknown labels, nulls, update time
	`[{"n":"a","v":1,"ut":10,"x":{"y":[1,"z"]},"u":null,"t":null}]`,
}

var senmlSchema = engine.MustSchema(
	engine.Field{Name: "name", Kind: engine.KindString},
	engine.Field{Name: "unit", Kind: engine.KindString},
	engine.Field{Name: "value", Kind: engine.KindNumber},
	engine.Field{Name: "sum", Kind: engine.KindNumber},
	engine.Field{Name: "ts", Kind: engine.KindTime},
)

func senmlConfig() Config {
	return Config{Schema: senmlSchema, Format: FormatSenML, TimeField: "ts", KeyFields: []string{"name"}}
}

const received = 1_700_000_000_000 // the receipt time of the test messages, unix ms

func TestDecodeSenML(t *testing.T) {
	type row struct {
		name, unit string
		value, sum engine.Value
		ms         int64
	}
	n := engine.Number
	null := engine.Null
	tests := []struct {
		name    string
		payload string
		want    []row
	}{
		{"single datapoint, time relative to receipt", senmlSamples[0],
			[]row{{"urn:dev:ow:10e2073a01080063", "Cel", n(23.1), null, received}}},
		{"base name", senmlSamples[1], []row{
			{"urn:dev:ow:10e2073a01080063:voltage", "V", n(120.1), null, received},
			{"urn:dev:ow:10e2073a01080063:current", "A", n(1.2), null, received}}},
		{"base time and base unit", senmlSamples[2], []row{
			{"urn:dev:ow:10e2073a0108006:voltage", "V", n(120.1), null, 1276020076001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.2), null, 1276020071001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.3), null, 1276020072001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.4), null, 1276020073001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.5), null, 1276020074001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.6), null, 1276020075001},
			{"urn:dev:ow:10e2073a0108006:current", "A", n(1.7), null, 1276020076001}}},
		{"other value kinds leave a number field null", senmlSamples[4][:strings.Index(senmlSamples[4], `{"n":"humidity"`)] + `{"n":"open","vb":false}]`, []row{
			{"urn:dev:ow:10e2073a01080063:temperature", "Cel", n(27.2), null, 1320078429000},
			{"urn:dev:ow:10e2073a01080063:open", "", null, null, 1320078429000}}},
		{"base value and sums", senmlSamples[6], []row{
			{"meter/energy", "J", n(11), n(105), received},
			{"meter/only-sum", "", null, n(107), received}}},
		{"relative time, in seconds, against receipt", `[{"n":"a","v":1,"t":-5.5},{"n":"b","v":2,"bt":10}]`, []row{
			{"a", "", n(1), null, received - 5500},
			{"b", "", n(2), null, received + 10000}}},
		{"unknown labels, nulls and ut ignored", senmlSamples[7], []row{{"a", "", n(1), null, received}}},
		{"empty pack", `[]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, senmlConfig())
			b := engine.NewBatch(senmlSchema)
			if err := d.Decode(b, Input{Payload: []byte(tt.payload), Received: received}); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if b.Len() != len(tt.want) {
				t.Fatalf("got %d records; want %d", b.Len(), len(tt.want))
			}
			for i, w := range tt.want {
				r := b.Recs[i]
				unit := engine.Null
				if w.unit != "" {
					unit = engine.String(w.unit)
				}
				want := []engine.Value{engine.String(w.name), unit, w.value, w.sum, engine.Time(w.ms)}
				if !equalVals(r.Vals, want) || r.Time != w.ms || r.Key != w.name {
					t.Errorf("record %d: got %s time %d key %q; want %s time %d key %q", i, valsString(r.Vals), r.Time, r.Key, valsString(want), w.ms, w.name)
				}
			}
		})
	}
}

// TestDecodeSenMLReplayGivesTheSameTimes decodes one message twice, as a
// restart replays the input log: the event times come from the receipt time
// in the input, so they are the same whenever decoding happens.
func TestDecodeSenMLReplayGivesTheSameTimes(t *testing.T) {
	entry := AppendEntry(nil, received, "senml/a", []byte(`[{"n":"a","v":1,"t":-2}]`))
	var times []int64
	for range 2 {
		d := mustNew(t, senmlConfig())
		b := engine.NewBatch(senmlSchema)
		if err := d.Decode(b, ParseEntry(entry)); err != nil {
			t.Fatal(err)
		}
		times = append(times, b.Recs[0].Time)
	}
	if times[0] != received-2000 || times[1] != times[0] {
		t.Errorf("got times %v; want %d twice", times, received-2000)
	}
}

func TestDecodeSenMLStringValue(t *testing.T) {
	s := engine.MustSchema(engine.Field{Name: "name", Kind: engine.KindString}, engine.Field{Name: "value", Kind: engine.KindString})
	d := mustNew(t, Config{Schema: s, Format: FormatSenML})
	b := engine.NewBatch(s)
	if err := d.Decode(b, Input{Payload: []byte(`[{"n":"label","vs":"kitchen"},{"n":"data","vd":"aGkgCg"},{"n":"x","v":1}]`)}); err != nil {
		t.Fatal(err)
	}
	want := []string{"string:label string:kitchen", "string:data string:aGkgCg", "string:x null:null"}
	for i, w := range want {
		if got := valsString(b.Recs[i].Vals); got != w {
			t.Errorf("record %d: got %s; want %s", i, got, w)
		}
	}
}

func TestDecodeSenMLRejects(t *testing.T) {
	tests := []struct {
		name, payload string
		received      int64
		wantIndex     int
		wantErr       error
		want          string
	}{
		{"not an array", `{"n":"a","v":1}`, received, 0, nil, "a SenML pack must be a JSON array of records"},
		{"empty payload", ``, received, 0, nil, "a SenML pack must be a JSON array"},
		{"bad json", `[{"n":"a","v":1}`, received, 0, nil, "unexpected end of input, want ',' or ']'"},
		{"no value", `[{"n":"a","v":1},{"n":"b"}]`, received, 2, nil, `record 2: no value (v, vs, vb, vd) and no sum (s)`},
		{"two values", `[{"n":"a","v":1,"vs":"x"}]`, received, 1, nil, "more than one of v, vs, vb, vd"},
		{"empty name", `[{"v":1}]`, received, 1, nil, `field "n": empty name`},
		{"bad name char", `[{"n":"a b","v":1}]`, received, 1, nil, `not allowed`},
		{"name starts with dash", `[{"n":"-a","v":1}]`, received, 1, nil, "must start with a letter or digit"},
		{"string for number", `[{"n":"a","v":"1"}]`, received, 1, nil, `field "v": want a JSON number, got a string`},
		{"number for string", `[{"n":5,"v":1}]`, received, 1, nil, `field "n": want a JSON string, got a number`},
		{"string for bool", `[{"n":"a","vb":"yes"}]`, received, 1, nil, `field "vb": want a JSON bool, got a string`},
		{"must understand", `[{"n":"a","v":1,"x_" : 2}]`, received, 1, nil, "must be understood"},
		{"array of numbers", `[1,2]`, received, 1, nil, "a SenML record is an object"},
		{"bad bver", `[{"bver":0,"n":"a","v":1}]`, received, 1, nil, `field "bver": want a positive integer`},
		{"overflow", `[{"n":"a","bv":1e308,"v":1e308}]`, received, 1, nil, "overflows"},
		{"duplicate label", `[{"n":"a","v":1,"v":2}]`, received, 1, nil, `field "v": label appears twice`},
		{"invalid UTF-8 in a string", "[{\"n\":\"a\",\"vs\":\"\xff\"}]", received, 1, ErrInvalidUTF8, `field "vs": text is not valid UTF-8`},
		{"relative time without a receipt time", `[{"n":"a","v":1}]`, 0, 1, ErrNoEventTime, "relative time 0 s needs the time the message was received"},
		{"time out of range", `[{"n":"a","v":1,"t":1e300}]`, received, 1, nil, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, senmlConfig())
			b := engine.NewBatch(senmlSchema)
			err := d.Decode(b, Input{Payload: []byte(tt.payload), Received: tt.received})
			if err == nil {
				t.Fatal("got nil error; want one")
			}
			if b.Len() != 0 {
				t.Errorf("got %d records; want 0", b.Len())
			}
			de := asDecodeError(t, err)
			if de.Index != tt.wantIndex || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q (index %d); want index %d and %q", err, de.Index, tt.wantIndex, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v; want it to wrap %v", err, tt.wantErr)
			}
		})
	}
}

// TestDecodeSenMLWithoutEventTimeIgnoresReceipt: a pipeline that declares no
// event time does not need the receipt time.
func TestDecodeSenMLWithoutEventTimeIgnoresReceipt(t *testing.T) {
	cfg := senmlConfig()
	cfg.TimeField = ""
	d := mustNew(t, cfg)
	b := engine.NewBatch(senmlSchema)
	if err := d.Decode(b, Input{Payload: []byte(senmlSamples[0])}); err != nil || b.Len() != 1 || b.Recs[0].Time != 0 {
		t.Errorf("got %v, %d records; want one record without time", err, b.Len())
	}
}
