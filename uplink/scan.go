package uplink

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Kinds of JSON values in a row.
const (
	kindNull uint8 = iota
	kindBool
	kindNumber
	kindString
	kindRaw // a nested object or array, kept as its JSON text
)

// field is one top-level member of a JSON object. name, str and raw alias
// the scanned row (name and str are unescaped copies when they had escapes).
type field struct {
	name []byte
	kind uint8
	b    bool
	str  []byte // kindString: the unescaped value
	raw  []byte // the value's JSON text
}

var errNotObject = errors.New("row is not a JSON object")

// scanObject calls fn for each top-level member of the JSON object in data.
// It validates the whole text; nested values are reported as kindRaw.
func scanObject(data []byte, fn func(field)) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		if skipWS(data, i+1) != len(data) {
			return errors.New("trailing data after the JSON object")
		}
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return synErr(i, "want a member name")
		}
		name, j, err := scanString(data, i)
		if err != nil {
			return err
		}
		i = skipWS(data, j)
		if i >= len(data) || data[i] != ':' {
			return synErr(i, "want ':'")
		}
		i = skipWS(data, i+1)
		f := field{name: name}
		start := i
		if i >= len(data) {
			return synErr(i, "want a value")
		}
		switch c := data[i]; {
		case c == '"':
			f.kind = kindString
			f.str, i, err = scanString(data, i)
		case c == 't' || c == 'f' || c == 'n':
			lit := "null"
			if c == 't' {
				lit, f.kind, f.b = "true", kindBool, true
			} else if c == 'f' {
				lit, f.kind = "false", kindBool
			}
			if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
				return synErr(i, "bad literal")
			}
			i += len(lit)
		case c == '-' || (c >= '0' && c <= '9'):
			f.kind = kindNumber
			for i < len(data) && isNumByte(data[i]) {
				i++
			}
			if !validNumber(data[start:i]) {
				return synErr(start, "bad number")
			}
		case c == '{' || c == '[':
			f.kind = kindRaw
			i, err = skipNested(data, i)
		default:
			return synErr(i, "unexpected character")
		}
		if err != nil {
			return err
		}
		f.raw = data[start:i]
		if f.kind == kindRaw && !json.Valid(f.raw) {
			return synErr(start, "invalid nested value")
		}
		fn(f)
		i = skipWS(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipWS(data, i+1)
			continue
		}
		if i < len(data) && data[i] == '}' {
			if skipWS(data, i+1) != len(data) {
				return errors.New("trailing data after the JSON object")
			}
			return nil
		}
		return synErr(i, "want ',' or '}'")
	}
}

func synErr(i int, msg string) error {
	return errors.New("JSON at offset " + strconv.Itoa(i) + ": " + msg)
}

func isNumByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// validNumber reports whether b is a JSON number (RFC 8259 grammar).
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func skipWS(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// scanString scans the string starting at d[i] == '"' and returns its
// unescaped value and the index after the closing quote.
func scanString(d []byte, i int) ([]byte, int, error) {
	j := i + 1
	esc := false
	for j < len(d) {
		switch c := d[j]; {
		case c == '\\':
			esc = true
			j += 2
			continue
		case c == '"':
			if !esc {
				return d[i+1 : j], j + 1, nil
			}
			var s string
			if err := json.Unmarshal(d[i:j+1], &s); err != nil {
				return nil, 0, synErr(i, "bad string")
			}
			return []byte(s), j + 1, nil
		case c < 0x20:
			return nil, 0, synErr(j, "control character in string")
		}
		j++
	}
	return nil, 0, synErr(i, "unterminated string")
}

// skipNested skips a balanced object or array (validated later).
func skipNested(d []byte, i int) (int, error) {
	depth := 0
	for i < len(d) {
		switch d[i] {
		case '"':
			_, j, err := scanString(d, i)
			if err != nil {
				return 0, err
			}
			i = j
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return 0, synErr(i, "unterminated nested value")
}
