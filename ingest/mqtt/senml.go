package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/edgedio/edged/engine"
)

// SenMLRecord is one resolved SenML record (RFC 8428 §4.6): the base
// fields of the pack are already applied.
type SenMLRecord struct {
	// Name is the base name followed by the name; never empty, and made of
	// the characters RFC 8428 §4.5.1 allows.
	Name string
	// Unit is the unit, or the base unit when the record has none; "" if
	// neither is given.
	Unit string
	// Time is the absolute time in seconds since the Unix epoch (base time
	// plus time; values below 2**28 are relative to now, §4.5.3).
	Time float64
	// Value is the record's value: a number (base value plus "v"), a string
	// ("vs"), a bool ("vb"), or a string holding the base64 text of "vd" as
	// sent. It is null when the record carries only a sum.
	Value engine.Value
	// Sum is base sum plus "s" when HasSum.
	Sum    float64
	HasSum bool
}

// Millis returns Time as unix milliseconds, rounded to the nearest.
func (r *SenMLRecord) Millis() int64 { return int64(math.Round(r.Time * 1000)) }

// SenMLError describes a SenML payload that could not be decoded. Record is
// the 0-based index of the record at fault, or -1 for the pack as a whole.
type SenMLError struct {
	Record int
	Field  string // the JSON field at fault, "" if none in particular
	Msg    string
}

func (e *SenMLError) Error() string {
	switch {
	case e.Record < 0:
		return "senml: " + e.Msg
	case e.Field == "":
		return fmt.Sprintf("senml: record %d: %s", e.Record, e.Msg)
	}
	return fmt.Sprintf("senml: record %d: field %q: %s", e.Record, e.Field, e.Msg)
}

// SenMLDecoder decodes SenML JSON packs (RFC 8428 §5). It keeps scratch
// space between calls, so one decoder must not be used by two goroutines at
// once. The zero value is ready to use.
type SenMLDecoder struct {
	raws []json.RawMessage
	recs []senmlRaw
	rec  SenMLRecord
}

// DecodeSenML decodes payload with a fresh SenMLDecoder; see
// SenMLDecoder.Decode.
func DecodeSenML(payload []byte, now time.Time, fn func(*SenMLRecord) error) error {
	var d SenMLDecoder
	return d.Decode(payload, now, fn)
}

// relativeLimit is 2**28 seconds: RFC 8428 §4.5.3 reads smaller times as
// relative to the current time.
const relativeLimit = 1 << 28

// Decode parses a SenML JSON pack and calls fn once per record, in order,
// with the base fields resolved. now resolves relative times. The record
// passed to fn is reused: fn must copy what it keeps (its strings may be
// kept). The whole pack is validated before fn is first called, so on a
// *SenMLError no record has been passed; an error returned by fn stops
// decoding and is returned as is.
//
// Accepted: a JSON array of objects with the fields bn, bt, bu, bv, bs,
// bver, n, u, v, vs, vb, vd, s, t, ut. Unknown fields are ignored, except
// those ending in '_', which RFC 8428 §4.4 says must be understood, and
// which are therefore rejected. A record must have exactly one of v, vs, vb
// and vd, or a sum. Note that encoding/json matches field names without
// regard to case.
func (d *SenMLDecoder) Decode(payload []byte, now time.Time, fn func(*SenMLRecord) error) error {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return &SenMLError{Record: -1, Msg: "payload is not a JSON array"}
	}
	if hasMustUnderstandKey(payload) {
		return &SenMLError{Record: -1, Msg: "field ending in '_' (must-understand, RFC 8428 §4.4) is not supported"}
	}
	clear(d.raws)
	d.raws = d.raws[:0]
	if err := json.Unmarshal(payload, &d.raws); err != nil {
		return jsonToSenML(err)
	}
	clear(d.recs)
	d.recs = append(d.recs[:0], make([]senmlRaw, len(d.raws))...)
	for i, raw := range d.raws {
		if len(raw) == 0 || raw[0] != '{' {
			return &SenMLError{Record: i, Msg: fmt.Sprintf("want a JSON object, got JSON %s", jsonValueKind(raw))}
		}
		if err := json.Unmarshal(raw, &d.recs[i]); err != nil {
			return diagnoseRecord(i, raw, err)
		}
	}
	nowSec := float64(now.UnixNano()) / 1e9

	// Validate the whole pack first, then call fn.
	for pass := 0; pass < 2; pass++ {
		var bn, bu string
		var bt, bv, bs float64
		for i := range d.recs {
			r := &d.recs[i]
			if r.BaseName.ok {
				bn = r.BaseName.v
			}
			if r.BaseUnit.ok {
				bu = r.BaseUnit.v
			}
			if r.BaseTime.ok {
				bt = r.BaseTime.v
			}
			if r.BaseValue.ok {
				bv = r.BaseValue.v
			}
			if r.BaseSum.ok {
				bs = r.BaseSum.v
			}
			if r.BaseVersion.ok && (r.BaseVersion.v < 1 || r.BaseVersion.v != math.Trunc(r.BaseVersion.v)) {
				return &SenMLError{Record: i, Field: "bver", Msg: fmt.Sprintf("want a positive integer, got %v", r.BaseVersion.v)}
			}
			out := &d.rec
			*out = SenMLRecord{}
			out.Name = bn + r.Name.v
			if err := checkSenMLName(out.Name); err != nil {
				return &SenMLError{Record: i, Field: "n", Msg: err.Error()}
			}
			out.Unit = bu
			if r.Unit.ok {
				out.Unit = r.Unit.v
			}
			t := bt + r.Time.v
			if math.Abs(t) < relativeLimit {
				t += nowSec
			}
			out.Time = t
			nvals := 0
			if r.Value.ok {
				nvals++
				out.Value = engine.Number(bv + r.Value.v)
			}
			if r.StringValue.ok {
				nvals++
				out.Value = engine.String(r.StringValue.v)
			}
			if r.BoolValue.ok {
				nvals++
				out.Value = engine.Bool(r.BoolValue.v)
			}
			if r.DataValue.ok {
				nvals++
				out.Value = engine.String(r.DataValue.v)
			}
			if r.Sum.ok || (r.BaseSum.ok && nvals == 0) {
				out.Sum, out.HasSum = bs+r.Sum.v, true
			}
			if nvals > 1 {
				return &SenMLError{Record: i, Msg: "more than one of v, vs, vb, vd"}
			}
			if nvals == 0 && !out.HasSum {
				return &SenMLError{Record: i, Msg: "no value (v, vs, vb, vd) and no sum (s)"}
			}
			if math.IsInf(out.Time, 0) || math.IsInf(out.Value.Num, 0) || math.IsInf(out.Sum, 0) {
				return &SenMLError{Record: i, Msg: "value or time overflows"}
			}
			if pass == 1 {
				if err := fn(out); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkSenMLName applies RFC 8428 §4.5.1: the first character is a letter
// or digit, the rest letters, digits, '-', ':', '.', '/', '_'.
func checkSenMLName(n string) error {
	if n == "" {
		return errors.New("empty name (no bn and no n)")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("name %q must start with a letter or digit", n)
		}
		if !alnum && c != '-' && c != ':' && c != '.' && c != '/' && c != '_' {
			return fmt.Errorf("name %q: character %q not allowed", n, c)
		}
	}
	return nil
}

// hasMustUnderstandKey reports whether the JSON text has a key ending in
// '_'. Inside JSON strings a '"' is always escaped, so an unescaped `_"`
// followed by ':' can only end a key.
func hasMustUnderstandKey(p []byte) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] != '_' || p[i+1] != '"' {
			continue
		}
		j := i + 2
		for j < len(p) && (p[j] == ' ' || p[j] == '\t' || p[j] == '\r' || p[j] == '\n') {
			j++
		}
		if j < len(p) && p[j] == ':' {
			return true
		}
	}
	return false
}

func jsonToSenML(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SenMLError{Record: -1, Msg: fmt.Sprintf("bad JSON at offset %d: %v", se.Offset, se)}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &SenMLError{Record: -1, Msg: fmt.Sprintf("want an array of objects, got JSON %s", te.Value)}
	}
	return &SenMLError{Record: -1, Msg: err.Error()}
}

// senmlFieldKinds is the JSON type of each SenML field.
var senmlFieldKinds = map[string]string{
	"bn": "string", "bu": "string", "n": "string", "u": "string", "vs": "string", "vd": "string",
	"bt": "number", "bv": "number", "bs": "number", "bver": "number", "v": "number", "s": "number",
	"t": "number", "ut": "number", "vb": "bool",
}

// diagnoseRecord names the field of record i that failed to decode (error
// path only, so it may allocate).
func diagnoseRecord(i int, raw []byte, err error) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) == nil {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			want, known := senmlFieldKinds[k]
			got := jsonValueKind(fields[k])
			if known && got != want && got != "null" {
				return &SenMLError{Record: i, Field: k, Msg: fmt.Sprintf("want a JSON %s, got JSON %s", want, got)}
			}
		}
	}
	return &SenMLError{Record: i, Msg: err.Error()}
}

type senmlRaw struct {
	BaseName    optString `json:"bn"`
	BaseTime    optFloat  `json:"bt"`
	BaseUnit    optString `json:"bu"`
	BaseValue   optFloat  `json:"bv"`
	BaseSum     optFloat  `json:"bs"`
	BaseVersion optFloat  `json:"bver"`
	Name        optString `json:"n"`
	Unit        optString `json:"u"`
	Value       optFloat  `json:"v"`
	StringValue optString `json:"vs"`
	BoolValue   optBool   `json:"vb"`
	DataValue   optString `json:"vd"`
	Sum         optFloat  `json:"s"`
	Time        optFloat  `json:"t"`
	UpdateTime  optFloat  `json:"ut"`
}

type optString struct {
	v  string
	ok bool
}

func (o *optString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, &o.v); err != nil {
		return &json.UnmarshalTypeError{Value: jsonValueKind(b), Type: reflect.TypeFor[optString]()}
	}
	o.ok = true
	return nil
}

type optFloat struct {
	v  float64
	ok bool
}

func (o *optFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, &o.v); err != nil {
		return &json.UnmarshalTypeError{Value: jsonValueKind(b), Type: reflect.TypeFor[optFloat]()}
	}
	o.ok = true
	return nil
}

type optBool struct {
	v  bool
	ok bool
}

func (o *optBool) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, &o.v); err != nil {
		return &json.UnmarshalTypeError{Value: jsonValueKind(b), Type: reflect.TypeFor[optBool]()}
	}
	o.ok = true
	return nil
}

func jsonValueKind(b []byte) string {
	if len(b) == 0 {
		return "value"
	}
	if string(b) == "null" {
		return "null"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}
