package decode

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
)

// maxDepth bounds the nesting of skipped JSON values.
const maxDepth = 256

// JSONDecoder decodes flat JSON objects into records. It keeps scratch buffers
// and an intern table between calls, so it is not safe for concurrent use: use
// one decoder per goroutine (source partition).
type JSONDecoder struct {
	p    *plan
	seen []bool
	buf  []byte // unescaped string scratch
}

// NewJSON returns a decoder for cfg, or the error of cfg.Validate.
func NewJSON(cfg Config) (*JSONDecoder, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	return &JSONDecoder{p: p, seen: make([]bool, len(p.names))}, nil
}

// Decode parses payload, which must hold exactly one JSON object (surrounding
// white space allowed), and appends one record to dst. dst must have the
// decoder's schema. Keys that are not in the schema are skipped whatever their
// value (nested objects and arrays included) unless Config.Strict is set. On
// error it returns a *DecodeError and appends nothing. The caller may set
// Record.Origin on dst.Recs[dst.Len()-1] afterwards.
func (d *JSONDecoder) Decode(payload []byte, dst *engine.Batch) error {
	if err := d.p.checkBatch(dst); err != nil {
		return err
	}
	if e := d.decode(payload); e != nil {
		return e
	}
	if e := d.p.commit(dst); e != nil {
		return e
	}
	return nil
}

func skipWS(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func unexpected(p []byte, i int, want string) *DecodeError {
	r := "unexpected " + describeByte(p, i)
	if want != "" {
		r += ", want " + want
	}
	return &DecodeError{Offset: i, Reason: r}
}

// decode fills d.p.vals from p, which must hold exactly one object.
func (d *JSONDecoder) decode(p []byte) *DecodeError {
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '{' {
		return unexpected(p, i, "'{'")
	}
	i, e := d.object(p, i)
	if e != nil {
		return e
	}
	if i = skipWS(p, i); i < len(p) {
		return unexpected(p, i, "end of input after the object")
	}
	return nil
}

// decodeMessage appends the records of p, one JSON object or an array of
// objects, to dst. On error dst may hold some of them: the caller truncates.
func (d *JSONDecoder) decodeMessage(p []byte, dst *engine.Batch) *DecodeError {
	i := skipWS(p, 0)
	var e *DecodeError
	switch {
	case i < len(p) && p[i] == '{':
		if i, e = d.object(p, i); e != nil {
			return e
		}
		if e = d.p.commit(dst); e != nil {
			return e
		}
	case i < len(p) && p[i] == '[':
		i = skipWS(p, i+1)
		if i < len(p) && p[i] == ']' {
			i++
			break
		}
		for n := 1; ; n++ {
			if i >= len(p) || p[i] != '{' {
				e = unexpected(p, i, "'{' (an array element must be an object)")
			} else if i, e = d.object(p, i); e == nil {
				e = d.p.commit(dst)
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
	default:
		return unexpected(p, i, "'{' or '['")
	}
	if i = skipWS(p, i); i < len(p) {
		return unexpected(p, i, "end of input after the JSON value")
	}
	return nil
}

// object decodes the object at p[i] (a '{') into d.p.vals and returns the
// offset after it.
func (d *JSONDecoder) object(p []byte, i int) (int, *DecodeError) {
	pl := d.p
	clear(pl.vals)
	clear(d.seen)
	i = skipWS(p, i+1)
	if i < len(p) && p[i] == '}' {
		i++
	} else {
		for {
			if i >= len(p) || p[i] != '"' {
				return i, unexpected(p, i, "string key")
			}
			key, ni, e := d.scanString(p, i)
			if e != nil {
				return ni, e
			}
			i = skipWS(p, ni)
			if i >= len(p) || p[i] != ':' {
				return i, unexpected(p, i, "':'")
			}
			i = skipWS(p, i+1)
			if idx, ok := pl.index[string(key)]; ok {
				if d.seen[idx] {
					return i, pl.fieldErr(i, idx, "duplicate key")
				}
				d.seen[idx] = true
				if i, e = d.value(p, i, idx); e != nil {
					return i, e
				}
			} else {
				if pl.strict {
					return i, &DecodeError{Offset: i, Field: string(key), Reason: "unknown field (strict)"}
				}
				if i, e = d.skipValue(p, i, 0); e != nil {
					return i, e
				}
			}
			i = skipWS(p, i)
			if i < len(p) && p[i] == ',' {
				i = skipWS(p, i+1)
				continue
			}
			if i < len(p) && p[i] == '}' {
				i++
				break
			}
			return i, unexpected(p, i, "',' or '}'")
		}
	}
	if pl.strict {
		for idx, ok := range d.seen {
			if !ok {
				return i, pl.fieldErr(i, idx, "missing (strict)")
			}
		}
	}
	return i, nil
}

// value decodes the JSON value at p[i] into field idx and returns the offset
// after it.
func (d *JSONDecoder) value(p []byte, i, idx int) (int, *DecodeError) {
	pl := d.p
	if i >= len(p) {
		return i, unexpected(p, i, "a value")
	}
	kind := pl.kinds[idx]
	switch c := p[i]; {
	case c == '"':
		s, ni, e := d.scanString(p, i)
		if e != nil {
			if e.Err == ErrInvalidUTF8 {
				e.Field = pl.names[idx]
			}
			return ni, e
		}
		v, reason := fromText(pl, idx, s)
		if reason != "" {
			return ni, pl.fieldErr(i, idx, reason)
		}
		pl.vals[idx] = v
		return ni, nil
	case c == '-' || (c >= '0' && c <= '9'):
		f, ni, e := scanNumber(p, i)
		if e != nil {
			if e.Offset == i { // well-formed but out of range (syntax errors point past i)
				e.Field = pl.names[idx]
			}
			return ni, e
		}
		switch kind {
		case engine.KindNumber:
			v, reason := pl.number(idx, f)
			if reason != "" {
				return ni, pl.fieldErr(i, idx, reason)
			}
			pl.vals[idx] = v
		case engine.KindTime:
			v, reason := timeFromNumber(pl, f)
			if reason != "" {
				return ni, pl.fieldErr(i, idx, reason)
			}
			pl.vals[idx] = v
		default:
			return ni, pl.fieldErr(i, idx, "want "+kind.String()+", got number "+string(p[i:ni]))
		}
		return ni, nil
	case c == 't' || c == 'f' || c == 'n':
		lit, v := "null", engine.Null
		switch c {
		case 't':
			lit, v = "true", engine.Bool(true)
		case 'f':
			lit, v = "false", engine.Bool(false)
		}
		ni, e := expectLit(p, i, lit)
		if e != nil {
			return ni, e
		}
		if v.Kind == engine.KindBool && kind != engine.KindBool {
			return ni, pl.fieldErr(i, idx, "want "+kind.String()+", got bool "+lit)
		}
		pl.vals[idx] = v
		return ni, nil
	case c == '{':
		return i, pl.fieldErr(i, idx, "want "+kind.String()+", got object")
	case c == '[':
		return i, pl.fieldErr(i, idx, "want "+kind.String()+", got array")
	}
	return i, unexpected(p, i, "a value")
}

func expectLit(p []byte, i int, lit string) (int, *DecodeError) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(p) || p[i+k] != lit[k] {
			return i + k, unexpected(p, i+k, "'"+lit+"'")
		}
	}
	return i + len(lit), nil
}

// skipValue validates and skips the JSON value at p[i].
func (d *JSONDecoder) skipValue(p []byte, i, depth int) (int, *DecodeError) {
	if i >= len(p) {
		return i, unexpected(p, i, "a value")
	}
	switch c := p[i]; {
	case c == '"':
		_, ni, e := d.scanString(p, i)
		return ni, e
	case c == '-' || (c >= '0' && c <= '9'):
		ni, _, e := numberEnd(p, i)
		return ni, e
	case c == 't':
		return expectLit(p, i, "true")
	case c == 'f':
		return expectLit(p, i, "false")
	case c == 'n':
		return expectLit(p, i, "null")
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, &DecodeError{Offset: i, Reason: "nesting deeper than " + strconv.Itoa(maxDepth)}
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(p, i+1)
		if i < len(p) && p[i] == closer {
			return i + 1, nil
		}
		for {
			var e *DecodeError
			if c == '{' {
				if i >= len(p) || p[i] != '"' {
					return i, unexpected(p, i, "string key")
				}
				if _, i, e = d.scanString(p, i); e != nil {
					return i, e
				}
				i = skipWS(p, i)
				if i >= len(p) || p[i] != ':' {
					return i, unexpected(p, i, "':'")
				}
				i = skipWS(p, i+1)
			}
			if i, e = d.skipValue(p, i, depth+1); e != nil {
				return i, e
			}
			i = skipWS(p, i)
			if i < len(p) && p[i] == ',' {
				i = skipWS(p, i+1)
				continue
			}
			if i < len(p) && p[i] == closer {
				return i + 1, nil
			}
			return i, unexpected(p, i, "',' or '"+string(rune(closer))+"'")
		}
	}
	return i, unexpected(p, i, "a value")
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// numberEnd checks the JSON number grammar at p[i] and returns its end. fast
// reports a number of at most 15 significant digits without exponent, whose
// value is then mant / 10^frac (exact by Clinger's fast path).
func numberEnd(p []byte, i int) (end int, fast struct {
	ok   bool
	neg  bool
	mant uint64
	frac int
}, e *DecodeError) {
	j := i
	if j < len(p) && p[j] == '-' {
		fast.neg = true
		j++
	}
	digits := 0
	switch {
	case j < len(p) && p[j] == '0':
		j++
	case j < len(p) && p[j] >= '1' && p[j] <= '9':
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			fast.mant = fast.mant*10 + uint64(p[j]-'0')
			digits++
			j++
		}
	default:
		return j, fast, unexpected(p, j, "a digit")
	}
	if j < len(p) && p[j] == '.' {
		j++
		if j >= len(p) || p[j] < '0' || p[j] > '9' {
			return j, fast, unexpected(p, j, "a digit after '.'")
		}
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			fast.mant = fast.mant*10 + uint64(p[j]-'0')
			digits++
			fast.frac++
			j++
		}
	}
	fast.ok = digits <= 15
	if j < len(p) && (p[j] == 'e' || p[j] == 'E') {
		fast.ok = false
		j++
		if j < len(p) && (p[j] == '+' || p[j] == '-') {
			j++
		}
		if j >= len(p) || p[j] < '0' || p[j] > '9' {
			return j, fast, unexpected(p, j, "a digit in the exponent")
		}
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
	}
	return j, fast, nil
}

// scanNumber parses the JSON number at p[i]. Plain decimals of up to 15
// digits are computed directly; anything else goes through strconv.ParseFloat,
// whose string argument does not escape, so neither path allocates.
func scanNumber(p []byte, i int) (float64, int, *DecodeError) {
	j, fast, e := numberEnd(p, i)
	if e != nil {
		return 0, j, e
	}
	if fast.ok {
		f := float64(fast.mant) / pow10[fast.frac]
		if fast.neg {
			f = -f
		}
		return f, j, nil
	}
	f, err := strconv.ParseFloat(string(p[i:j]), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, j, &DecodeError{Offset: i, Reason: "number " + quoteSample(p[i:j]) + " out of range"}
	}
	return f, j, nil
}

// scanString reads the JSON string starting at the quote p[i] and returns its
// unescaped content, which aliases p when the string has no escapes and
// d.buf otherwise, and the offset after the closing quote. Invalid UTF-8 and
// a \u escape of a lone surrogate are errors wrapping ErrInvalidUTF8: text
// is never silently rewritten.
func (d *JSONDecoder) scanString(p []byte, i int) ([]byte, int, *DecodeError) {
	start := i + 1
	j := start
	for j < len(p) {
		c := p[j]
		if c == '"' {
			return p[start:j], j + 1, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(p[j:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			j += size
			continue
		}
		j++
	}
	buf := append(d.buf[:0], p[start:j]...)
	for j < len(p) {
		c := p[j]
		switch {
		case c == '"':
			d.buf = buf // keep the grown capacity; the next string overwrites it
			return buf, j + 1, nil
		case c < 0x20:
			return nil, j, &DecodeError{Offset: j, Reason: "control character " + describeByte(p, j) + " in string"}
		case c == '\\':
			if j+1 >= len(p) {
				return nil, j + 1, unexpected(p, j+1, "escape")
			}
			switch e := p[j+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(p, j+2)
				if !ok {
					return nil, j, &DecodeError{Offset: j, Reason: "invalid \\u escape"}
				}
				j += 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if j+1 < len(p) && p[j] == '\\' && p[j+1] == 'u' {
						r2, ok = hex4(p, j+2)
					}
					dr := utf16.DecodeRune(r, r2)
					if !ok || dr == utf8.RuneError {
						return nil, j - 6, &DecodeError{Offset: j - 6, Err: ErrInvalidUTF8,
							Reason: "\\u escape " + quoteSample(p[j-6:j]) + " is half of a UTF-16 surrogate pair"}
					}
					r = dr
					j += 6
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return nil, j, &DecodeError{Offset: j, Reason: "invalid escape " + quoteSample(p[j:j+2])}
			}
			j += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			j++
		default:
			r, size := utf8.DecodeRune(p[j:])
			if r == utf8.RuneError && size == 1 {
				return nil, j, &DecodeError{Offset: j, Err: ErrInvalidUTF8, Reason: invalidUTF8}
			}
			buf = append(buf, p[j:j+size]...)
			j += size
		}
	}
	return nil, j, &DecodeError{Offset: i, Reason: "unterminated string"}
}

func hex4(p []byte, i int) (rune, bool) {
	if i+4 > len(p) {
		return 0, false
	}
	var r rune
	for _, c := range p[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
