package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
)

// RFC 8428 §5.1 examples (JSON).
var senmlRFCExamples = []string{
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
}

type senmlRow struct {
	name, unit string
	ms         int64
	v          engine.Value
	sum        string
}

func decodeAll(t *testing.T, payload string, now time.Time) []senmlRow {
	t.Helper()
	var rows []senmlRow
	err := DecodeSenML([]byte(payload), now, func(r *SenMLRecord) error {
		sum := ""
		if r.HasSum {
			sum = fmt.Sprint(r.Sum)
		}
		rows = append(rows, senmlRow{r.Name, r.Unit, r.Millis(), r.Value, sum})
		return nil
	})
	if err != nil {
		t.Fatalf("DecodeSenML: %v", err)
	}
	return rows
}

func TestDecodeSenMLResolvesBaseFields(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	nowMs := now.UnixMilli()
	tests := []struct {
		name    string
		payload string
		want    []senmlRow
	}{
		{"single datapoint, time is now", senmlRFCExamples[0], []senmlRow{
			{"urn:dev:ow:10e2073a01080063", "Cel", nowMs, engine.Number(23.1), ""}}},
		{"base name joins names", senmlRFCExamples[1], []senmlRow{
			{"urn:dev:ow:10e2073a01080063:voltage", "V", nowMs, engine.Number(120.1), ""},
			{"urn:dev:ow:10e2073a01080063:current", "A", nowMs, engine.Number(1.2), ""}}},
		{"base time plus relative time, base unit", senmlRFCExamples[2][:strings.Index(senmlRFCExamples[2], `{"n":"current","t":-4`)] + `{"n":"current","v":1.7}]`, []senmlRow{
			{"urn:dev:ow:10e2073a0108006:voltage", "V", 1276020076001, engine.Number(120.1), ""},
			{"urn:dev:ow:10e2073a0108006:current", "A", 1276020071001, engine.Number(1.2), ""},
			{"urn:dev:ow:10e2073a0108006:current", "A", 1276020076001, engine.Number(1.7), ""}}},
		{"data types", senmlRFCExamples[4], []senmlRow{
			{"urn:dev:ow:10e2073a01080063:temperature", "Cel", 1320078429000, engine.Number(27.2), ""},
			{"urn:dev:ow:10e2073a01080063:humidity", "%RH", 1320078429000, engine.Number(80), ""},
			{"urn:dev:ow:10e2073a01080063:open", "", 1320078429000, engine.Bool(false), ""},
			{"urn:dev:ow:10e2073a01080063:label", "", 1320078429000, engine.String("kitchen"), ""},
			{"urn:dev:ow:10e2073a01080063:data", "", 1320078429000, engine.String("aGkgCg"), ""}}},
		{"base value and base sum", senmlRFCExamples[6], []senmlRow{
			{"meter/energy", "J", nowMs, engine.Number(11), "105"},
			{"meter/only-sum", "", nowMs, engine.Null, "107"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeAll(t, tc.payload, now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records %+v; want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.name != w.name || g.unit != w.unit || g.ms != w.ms || !g.v.Equal(w.v) || g.sum != w.sum {
					t.Errorf("record %d: got %+v; want %+v", i, g, w)
				}
			}
		})
	}
}

func TestDecodeSenMLRejects(t *testing.T) {
	tests := []struct{ name, payload, want string }{
		{"not an array", `{"n":"a","v":1}`, "payload is not a JSON array"},
		{"empty payload", ``, "payload is not a JSON array"},
		{"bad json", `[{"n":"a","v":1}`, "bad JSON"},
		{"no value", `[{"n":"a"}]`, `record 0: no value`},
		{"two values", `[{"n":"a","v":1,"vs":"x"}]`, "record 0: more than one of v, vs, vb, vd"},
		{"empty name", `[{"v":1}]`, `record 0: field "n": empty name`},
		{"bad name char", `[{"n":"a b","v":1}]`, `not allowed`},
		{"name starts with dash", `[{"n":"-a","v":1}]`, "must start with a letter or digit"},
		{"string for number", `[{"n":"a","v":"1"}]`, `field "v": want a JSON number, got JSON string`},
		{"number for string", `[{"n":5,"v":1}]`, `field "n": want a JSON string, got JSON number`},
		{"must understand", `[{"n":"a","v":1,"x_" : 2}]`, "must-understand"},
		{"array of numbers", `[1,2]`, "record 0: want a JSON object, got JSON number"},
		{"bad bver", `[{"bver":0,"n":"a","v":1}]`, `field "bver"`},
		{"overflow", `[{"n":"a","bv":1e308,"v":1e308}]`, "overflows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := DecodeSenML([]byte(tc.payload), time.Unix(0, 0), func(*SenMLRecord) error { calls++; return nil })
			var se *SenMLError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want a *SenMLError containing %q", err, tc.want)
			}
			if calls != 0 {
				t.Errorf("fn called %d times before the error; want 0", calls)
			}
		})
	}
}

func TestDecodeSenMLStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := DecodeSenML([]byte(senmlRFCExamples[1]), time.Now(), func(*SenMLRecord) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("got err %v after %d calls; want the callback's error after 1", err, calls)
	}
}

func TestDecodeRaw(t *testing.T) {
	v, err := DecodeRaw([]byte("hello"), 0)
	if err != nil || !v.Equal(engine.String("hello")) {
		t.Errorf("got %v, %v; want string hello", v, err)
	}
	if _, err := DecodeRaw([]byte{0xff, 0xfe}, 0); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: got %v; want a UTF-8 error", err)
	}
	if _, err := DecodeRaw(make([]byte, 11), 10); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("oversized: got %v; want ErrPayloadTooLarge", err)
	}
}

func FuzzDecodeSenML(f *testing.F) {
	for _, s := range senmlRFCExamples {
		f.Add([]byte(s))
	}
	f.Add([]byte(`[{"n":"a","v":1,"x_":2}]`))
	f.Add([]byte(`[null,{}]`))
	now := time.Unix(1_700_000_000, 0)
	var d SenMLDecoder
	f.Fuzz(func(t *testing.T, p []byte) {
		err := d.Decode(p, now, func(r *SenMLRecord) error {
			if r.Name == "" {
				t.Fatalf("record with empty name accepted")
			}
			if r.Value.IsNull() && !r.HasSum {
				t.Fatalf("record with neither value nor sum accepted")
			}
			return nil
		})
		if err != nil {
			var se *SenMLError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SenMLError", err, err)
			}
		}
	})
}

func BenchmarkDecodeSenML(b *testing.B) {
	p := []byte(senmlRFCExamples[4])
	var d SenMLDecoder
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := d.Decode(p, now, func(*SenMLRecord) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
