package decode

import (
	"math"
	"math/bits"
	"strconv"

	"github.com/edgedio/edged/engine"
)

// senmlState is the SenML part of a msgDecoder: the target fields and the
// scratch of the pack being decoded.
type senmlState struct {
	name, unit, value, sum int // target fields, -1 when not in the schema

	bn, bu       []byte // base name and unit, in force for the following records
	n, u, vs, nm []byte // the record's name, unit, string value; nm = bn+n
}

// senmlRelative is 2**28 seconds: RFC 8428 §4.5.3 reads smaller times as
// relative to the time the pack was received.
const senmlRelative = 1 << 28

// senml field bits, to detect duplicates.
const (
	sBN = 1 << iota
	sBT
	sBU
	sBV
	sBS
	sBVer
	sN
	sU
	sV
	sVS
	sVB
	sVD
	sS
	sT
	sUT
)

// senmlRec is one SenML record as written, before the base fields apply.
type senmlRec struct {
	has                       int // sBN... of the fields present (not null)
	seen                      int // fields present, null or not
	bt, bv, bs, bver, v, s, t float64
	ut                        float64 // read and ignored
	vb                        bool
}

// decodeSenML appends one record per record of the SenML JSON pack p
// (RFC 8428 §5): the fields named name, unit, value and sum take the
// record's resolved name, unit, value (when its kind is the field's kind)
// and sum, the event-time field its time. Relative times are resolved
// against received (unix ms).
func (d *msgDecoder) decodeSenML(p []byte, received int64, dst *engine.Batch) *DecodeError {
	s := &d.senml
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '[' {
		return &DecodeError{Offset: i, Reason: "a SenML pack must be a JSON array of records, got " + describeByte(p, i)}
	}
	s.bn, s.bu = s.bn[:0], s.bu[:0]
	var bt, bv, bs float64
	i = skipWS(p, i+1)
	if i < len(p) && p[i] == ']' {
		i++
	} else {
		for n := 1; ; n++ {
			var r senmlRec
			var e *DecodeError
			if i >= len(p) || p[i] != '{' {
				e = unexpected(p, i, "'{' (a SenML record is an object)")
			} else if i, e = d.senmlObject(p, i, &r); e == nil {
				if r.has&sBT != 0 {
					bt = r.bt
				}
				if r.has&sBV != 0 {
					bv = r.bv
				}
				if r.has&sBS != 0 {
					bs = r.bs
				}
				e = d.senmlRecord(&r, bt, bv, bs, received, dst)
			}
			if e != nil {
				e.Index = n
				return e
			}
			i = skipWS(p, i)
			if i < len(p) && p[i] == ',' {
				i = skipWS(p, i+1)
				continue
			}
			if i < len(p) && p[i] == ']' {
				i++
				break
			}
			return unexpected(p, i, "',' or ']'")
		}
	}
	if i = skipWS(p, i); i < len(p) {
		return unexpected(p, i, "end of input after the SenML pack")
	}
	return nil
}

// senmlObject reads the SenML record at p[i] into r and the string fields
// into d.senml, and returns the offset after it.
func (d *msgDecoder) senmlObject(p []byte, i int, r *senmlRec) (int, *DecodeError) {
	s, j := &d.senml, &d.json
	s.n, s.u, s.vs = s.n[:0], s.u[:0], s.vs[:0]
	i = skipWS(p, i+1)
	if i < len(p) && p[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(p) || p[i] != '"' {
			return i, unexpected(p, i, "string key")
		}
		key, ni, e := j.scanString(p, i)
		if e != nil {
			return ni, e
		}
		i = skipWS(p, ni)
		if i >= len(p) || p[i] != ':' {
			return i, unexpected(p, i, "':'")
		}
		i = skipWS(p, i+1)
		var bit int
		var num *float64
		var str *[]byte
		switch string(key) {
		case "bn":
			bit, str = sBN, &s.bn
		case "bu":
			bit, str = sBU, &s.bu
		case "n":
			bit, str = sN, &s.n
		case "u":
			bit, str = sU, &s.u
		case "vs":
			bit, str = sVS, &s.vs
		case "vd":
			bit, str = sVD, &s.vs
		case "bt":
			bit, num = sBT, &r.bt
		case "bv":
			bit, num = sBV, &r.bv
		case "bs":
			bit, num = sBS, &r.bs
		case "bver":
			bit, num = sBVer, &r.bver
		case "v":
			bit, num = sV, &r.v
		case "s":
			bit, num = sS, &r.s
		case "t":
			bit, num = sT, &r.t
		case "ut":
			bit, num = sUT, &r.ut
		case "vb":
			bit = sVB
		default:
			if len(key) > 0 && key[len(key)-1] == '_' {
				return i, &DecodeError{Offset: i, Field: string(key),
					Reason: "a label ending in '_' must be understood (RFC 8428 §4.4), and edged does not know it"}
			}
			if i, e = j.skipValue(p, i, 0); e != nil {
				return i, e
			}
		}
		if bit != 0 {
			if r.seen&bit != 0 {
				return i, &DecodeError{Offset: i, Field: string(key), Reason: "label appears twice in the record"}
			}
			r.seen |= bit
			if ni, ok := literal(p, i, "null"); ok {
				i = ni
			} else {
				r.has |= bit
				switch {
				case str != nil:
					if i >= len(p) || p[i] != '"' {
						return i, &DecodeError{Offset: i, Field: string(key), Reason: "want a JSON string, got " + jsonKind(p, i)}
					}
					v, ni, e := j.scanString(p, i)
					if e != nil {
						e.Field = string(key)
						return ni, e
					}
					*str = append((*str)[:0], v...)
					i = ni
				case num != nil:
					if i >= len(p) || (p[i] != '-' && (p[i] < '0' || p[i] > '9')) {
						return i, &DecodeError{Offset: i, Field: string(key), Reason: "want a JSON number, got " + jsonKind(p, i)}
					}
					f, ni, e := scanNumber(p, i)
					if e != nil {
						e.Field = string(key)
						return ni, e
					}
					*num, i = f, ni
				default: // vb
					if ni, ok := literal(p, i, "true"); ok {
						r.vb, i = true, ni
					} else if ni, ok := literal(p, i, "false"); ok {
						r.vb, i = false, ni
					} else {
						return i, &DecodeError{Offset: i, Field: string(key), Reason: "want a JSON bool, got " + jsonKind(p, i)}
					}
				}
			}
		}
		i = skipWS(p, i)
		if i < len(p) && p[i] == ',' {
			i = skipWS(p, i+1)
			continue
		}
		if i < len(p) && p[i] == '}' {
			return i + 1, nil
		}
		return i, unexpected(p, i, "',' or '}'")
	}
}

// senmlRecord resolves r against the base values and appends its record.
func (d *msgDecoder) senmlRecord(r *senmlRec, bt, bv, bs float64, received int64, dst *engine.Batch) *DecodeError {
	s, p := &d.senml, d.p
	if r.has&sBVer != 0 && (r.bver < 1 || r.bver != math.Trunc(r.bver)) {
		return &DecodeError{Offset: -1, Field: "bver", Reason: "want a positive integer, got " + strconv.FormatFloat(r.bver, 'g', -1, 64)}
	}
	s.nm = append(append(s.nm[:0], s.bn...), s.n...)
	if reason := senmlName(s.nm); reason != "" {
		return &DecodeError{Offset: -1, Field: "n", Reason: reason}
	}
	unit := s.bu
	if r.has&sU != 0 {
		unit = s.u
	}
	nvals := bits.OnesCount(uint(r.has & (sV | sVS | sVB | sVD)))
	if nvals > 1 {
		return &DecodeError{Offset: -1, Reason: "more than one of v, vs, vb, vd"}
	}
	hasSum := r.has&sS != 0 || (r.has&sBS != 0 && nvals == 0)
	if nvals == 0 && !hasSum {
		return &DecodeError{Offset: -1, Reason: "no value (v, vs, vb, vd) and no sum (s)"}
	}
	value, sum := bv+r.v, bs+r.s
	if math.IsInf(value, 0) || math.IsInf(sum, 0) {
		return &DecodeError{Offset: -1, Reason: "value or sum overflows"}
	}

	clear(p.vals)
	if s.name >= 0 {
		v, reason := fromText(p, s.name, s.nm)
		if reason != "" {
			return p.fieldErr(-1, s.name, reason)
		}
		p.vals[s.name] = v
	}
	if s.unit >= 0 && len(unit) > 0 {
		v, reason := fromText(p, s.unit, unit)
		if reason != "" {
			return p.fieldErr(-1, s.unit, reason)
		}
		p.vals[s.unit] = v
	}
	if s.value >= 0 {
		switch k := p.kinds[s.value]; {
		case r.has&sV != 0 && k == engine.KindNumber:
			p.vals[s.value] = engine.Number(value)
		case r.has&sVB != 0 && k == engine.KindBool:
			p.vals[s.value] = engine.Bool(r.vb)
		case r.has&(sVS|sVD) != 0 && k == engine.KindString:
			v, reason := fromText(p, s.value, s.vs)
			if reason != "" {
				return p.fieldErr(-1, s.value, reason)
			}
			p.vals[s.value] = v
		}
	}
	if s.sum >= 0 && hasSum && p.kinds[s.sum] == engine.KindNumber {
		p.vals[s.sum] = engine.Number(sum)
	}
	if p.timeIdx >= 0 {
		t := bt + r.t
		var ms float64
		if math.Abs(t) < senmlRelative {
			if received == 0 {
				return &DecodeError{Offset: -1, Field: "t", Err: ErrNoEventTime,
					Reason: "relative time " + strconv.FormatFloat(t, 'g', -1, 64) + " s needs the time the message was received, which is unknown"}
			}
			ms = float64(received) + math.Round(t*1000)
		} else {
			ms = math.Round(t * 1000)
		}
		if !(ms >= -maxSafeMs && ms <= maxSafeMs) {
			return &DecodeError{Offset: -1, Field: "t", Reason: "time " + strconv.FormatFloat(t, 'g', -1, 64) + " out of range"}
		}
		p.vals[p.timeIdx] = engine.Time(int64(ms))
	}
	return p.commit(dst)
}

// senmlName applies RFC 8428 §4.5.1 to a resolved name: the first
// character is a letter or digit, the rest letters, digits, '-', ':', '.',
// '/', '_'. It returns the reason when n breaks it.
func senmlName(n []byte) string {
	if len(n) == 0 {
		return "empty name (no bn and no n)"
	}
	for i, c := range n {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return "name " + quoteSample(n) + " must start with a letter or digit"
		}
		if !alnum && c != '-' && c != ':' && c != '.' && c != '/' && c != '_' {
			return "name " + quoteSample(n) + ": character " + strconv.QuoteRune(rune(c)) + " not allowed"
		}
	}
	return ""
}

// literal reports whether p[i:] starts with lit and returns the offset after it.
func literal(p []byte, i int, lit string) (int, bool) {
	if len(p)-i >= len(lit) && string(p[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return i, false
}

// jsonKind names the JSON value at p[i] for an error message.
func jsonKind(p []byte, i int) string {
	if i >= len(p) {
		return "end of input"
	}
	switch c := p[i]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a bool"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return describeByte(p, i)
}
