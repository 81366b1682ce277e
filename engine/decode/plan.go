package decode

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
)

// text is the input of the shared conversions: JSON bytes or CSV strings.
type text interface{ ~string | ~[]byte }

// maxSafeMs bounds time values so that they stay exact in a float64.
const maxSafeMs = 1 << 53

// plan is a validated Config resolved to field positions; the JSON and CSV
// decoders share it. It owns scratch state and is not safe for concurrent use.
type plan struct {
	schema  *engine.Schema
	names   []string
	kinds   []engine.Kind
	ints    []bool // number fields marked integral (engine.Schema.Integer)
	index   map[string]int
	timeIdx int // -1 when there is no time field
	keyIdx  []int
	// captured marks the fields a topic template captures.
	captured []bool
	unitMs   float64 // milliseconds per numeric time unit
	strict   bool
	maxLine  int

	vals   []engine.Value // scratch record, appended to the batch once valid
	keyBuf []byte
	intern interner
	// caps are the values a topic template captured for the current
	// message; commit lays them over vals.
	caps []capture
}

// capture is one field value taken from a message's topic.
type capture struct {
	idx int
	v   engine.Value
}

func newPlan(cfg Config) (*plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := cfg.Schema
	p := &plan{
		schema:  s,
		names:   make([]string, s.Len()),
		kinds:   make([]engine.Kind, s.Len()),
		ints:    make([]bool, s.Len()),
		index:   make(map[string]int, s.Len()),
		timeIdx: -1,
		unitMs:  1,
		strict:  cfg.Strict,
		maxLine: cfg.MaxLineBytes,
		vals:    make([]engine.Value, s.Len()),
		intern:  interner{m: make(map[string]string)},
	}
	if p.maxLine == 0 {
		p.maxLine = DefaultMaxLineBytes
	}
	for i := 0; i < s.Len(); i++ {
		f := s.Field(i)
		p.names[i], p.kinds[i], p.index[f.Name] = f.Name, f.Kind, i
		p.ints[i] = s.Integer(i)
	}
	if cfg.TimeField != "" {
		p.timeIdx = p.index[cfg.TimeField]
	}
	for _, k := range cfg.KeyFields {
		p.keyIdx = append(p.keyIdx, p.index[k])
	}
	p.captured = make([]bool, s.Len())
	for _, t := range cfg.Topics {
		for _, f := range t.Fields() {
			if i, ok := p.index[f]; ok {
				p.captured[i] = true
			}
		}
	}
	if cfg.TimeFormat == TimeUnixS {
		p.unitMs = 1000
	}
	return p, nil
}

// checkBatch reports an error when dst cannot hold records of the plan's schema.
func (p *plan) checkBatch(dst *engine.Batch) error {
	if dst.Schema == p.schema {
		return nil
	}
	if dst.Schema == nil || dst.Schema.Len() != p.schema.Len() {
		return &DecodeError{Offset: -1, Reason: "batch schema does not match the decoder's schema (" + p.schema.String() + ")"}
	}
	for i := range p.names {
		if f := dst.Schema.Field(i); f.Name != p.names[i] || f.Kind != p.kinds[i] {
			return &DecodeError{Offset: -1, Reason: "batch schema does not match the decoder's schema (" + p.schema.String() + ")"}
		}
	}
	return nil
}

// commit appends the scratch record to dst, filling Record.Time and
// Record.Key, after laying the topic captures over it. A record without its
// event time is not appended: the error wraps ErrNoEventTime.
func (p *plan) commit(dst *engine.Batch) *DecodeError {
	for _, c := range p.caps {
		p.vals[c.idx] = c.v
	}
	var t int64
	if p.timeIdx >= 0 {
		if p.vals[p.timeIdx].Kind != engine.KindTime {
			return &DecodeError{Offset: -1, Field: p.names[p.timeIdx], Err: ErrNoEventTime,
				Reason: "no event time: the field is missing or empty, and the pipeline reads its event time from it"}
		}
		t = int64(p.vals[p.timeIdx].Num)
	}
	var key string
	if len(p.keyIdx) > 0 {
		b := p.keyBuf[:0]
		for i, k := range p.keyIdx {
			if i > 0 {
				b = append(b, '/')
			}
			if v := p.vals[k]; v.Kind != engine.KindNull {
				b = v.AppendText(b)
			}
		}
		p.keyBuf = b
		key = p.intern.get(b)
	}
	r := dst.Append()
	copy(r.Vals, p.vals)
	r.Time, r.Key, r.Origin = t, key, engine.Origin{}
	return nil
}

// truncate drops the records dst holds after its first n, clearing them so
// that a later Append does not inherit their time, key or origin.
func truncate(dst *engine.Batch, n int) {
	clear(dst.Recs[n:])
	dst.Recs = dst.Recs[:n]
}

// fieldErr returns a DecodeError for field i.
func (p *plan) fieldErr(off, i int, reason string) *DecodeError {
	return &DecodeError{Offset: off, Field: p.names[i], Reason: reason, Err: reasonErr(reason)}
}

// fromText converts the text s (an unescaped JSON string or a CSV cell) into a
// value for field i. It returns a non-empty reason when s does not fit.
func fromText[T text](p *plan, i int, s T) (engine.Value, string) {
	switch p.kinds[i] {
	case engine.KindString:
		if !validUTF8(s) {
			return engine.Null, invalidUTF8
		}
		return engine.String(internGet(&p.intern, s)), ""
	case engine.KindNumber:
		if f, ok := parseNumberText(s); ok {
			return p.number(i, f)
		}
		return engine.Null, "want number, got string " + quoteSample(s)
	case engine.KindBool:
		if b, err := strconv.ParseBool(string(trimSpace(s))); err == nil {
			return engine.Bool(b), ""
		}
		return engine.Null, "want bool, got string " + quoteSample(s)
	case engine.KindTime:
		return timeFromText(p, s)
	}
	return engine.Null, "BUG: field kind " + p.kinds[i].String()
}

// invalidUTF8 is the reason given for a string that is not valid UTF-8.
const invalidUTF8 = "text is not valid UTF-8"

// reasonErr returns ErrInvalidUTF8 for the invalidUTF8 reason, else nil.
func reasonErr(reason string) error {
	if reason == invalidUTF8 {
		return ErrInvalidUTF8
	}
	return nil
}

// validUTF8 reports whether s is valid UTF-8 (no surrogates, no overlong
// forms), as utf8.Valid does, for either text type without a conversion.
func validUTF8[T text](s T) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		var n int
		lo, hi := byte(0x80), byte(0xBF) // range of the second byte
		switch {
		case c >= 0xC2 && c <= 0xDF:
			n = 2
		case c == 0xE0:
			n, lo = 3, 0xA0
		case c == 0xED:
			n, hi = 3, 0x9F
		case c >= 0xE1 && c <= 0xEF:
			n = 3
		case c == 0xF0:
			n, lo = 4, 0x90
		case c >= 0xF1 && c <= 0xF3:
			n = 4
		case c == 0xF4:
			n, hi = 4, 0x8F
		default:
			return false
		}
		if i+n > len(s) || s[i+1] < lo || s[i+1] > hi {
			return false
		}
		for k := 2; k < n; k++ {
			if s[i+k] < 0x80 || s[i+k] > 0xBF {
				return false
			}
		}
		i += n
	}
	return true
}

// number returns f as the value of number field i, or a reason when the
// field is an integer field and f has a fraction.
func (p *plan) number(i int, f float64) (engine.Value, string) {
	if p.ints[i] && f != math.Trunc(f) {
		return engine.Null, "want an integer, got " + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return engine.Number(f), ""
}

// timeFromText reads a time from a numeric string (in the configured unit) or
// an RFC 3339 string.
func timeFromText[T text](p *plan, s T) (engine.Value, string) {
	t := trimSpace(s)
	if looksNumeric(t) {
		f, ok := parseNumberText(t)
		if !ok {
			return engine.Null, "want time, got string " + quoteSample(s)
		}
		return timeFromNumber(p, f)
	}
	tm, err := time.Parse(time.RFC3339Nano, string(t))
	if err != nil {
		return engine.Null, "want time (RFC 3339 or a number), got string " + quoteSample(s)
	}
	return engine.Time(tm.UnixMilli()), ""
}

// timeFromNumber converts a number in the configured unit to a time value,
// rounding to the nearest millisecond.
func timeFromNumber(p *plan, f float64) (engine.Value, string) {
	ms := math.Round(f * p.unitMs)
	if !(ms >= -maxSafeMs && ms <= maxSafeMs) {
		return engine.Null, "time " + strconv.FormatFloat(f, 'g', -1, 64) + " out of range"
	}
	return engine.Time(int64(ms)), ""
}

func trimSpace[T text](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// looksNumeric reports whether s is non-empty and made only of the bytes a
// decimal number uses. It keeps "NaN", "Inf", hex and underscores away from
// strconv.ParseFloat.
func looksNumeric[T text](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// parseNumberText parses a decimal number written as text (surrounding spaces
// allowed); infinities, NaN and hex floats are rejected.
func parseNumberText[T text](s T) (float64, bool) {
	s = trimSpace(s)
	if !looksNumeric(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Interning bounds: see the package documentation.
const (
	internMaxEntries = 4096
	internMaxLen     = 64
)

// interner returns one shared string per distinct short value so that repeated
// sensor ids and keys do not allocate. It holds at most internMaxEntries
// strings of at most internMaxLen bytes and is emptied when full.
type interner struct{ m map[string]string }

func (in *interner) get(b []byte) string { return internGet(in, b) }

func internGet[T text](in *interner, b T) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if len(in.m) >= internMaxEntries {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// required reports whether field idx must have a CSV column: every field
// when strict, else the time and key fields; a field a topic template
// captures never is.
func (p *plan) required(idx int) bool {
	if p.captured[idx] {
		return false
	}
	if p.strict || idx == p.timeIdx {
		return true
	}
	for _, k := range p.keyIdx {
		if k == idx {
			return true
		}
	}
	return false
}
