package decode

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
)

const hexDigits = "0123456789abcdef"

// AppendJSON appends r as a flat JSON object with the fields of s in schema
// order and returns the extended buffer (no trailing newline). Numbers are
// compact (integral values without fraction or exponent), non-finite numbers
// are written as null, times as unix milliseconds, bools as true/false, null
// as null and lists as arrays. Strings are escaped per RFC 8259; invalid UTF-8
// is replaced by U+FFFD. It allocates nothing when dst has enough capacity.
// Decoding the output with a TimeUnixMs decoder for s gives back equal values.
func AppendJSON(dst []byte, s *engine.Schema, r *engine.Record) []byte {
	dst = append(dst, '{')
	for i := 0; i < s.Len(); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s.Field(i).Name)
		dst = append(dst, ':')
		var v engine.Value
		if i < len(r.Vals) {
			v = r.Vals[i]
		}
		dst = appendJSONValue(dst, v)
	}
	return append(dst, '}')
}

func appendJSONValue(dst []byte, v engine.Value) []byte {
	switch v.Kind {
	case engine.KindNumber:
		if math.IsInf(v.Num, 0) || math.IsNaN(v.Num) {
			return append(dst, "null"...)
		}
		return engine.AppendNumber(dst, v.Num)
	case engine.KindString:
		return appendJSONString(dst, v.Str)
	case engine.KindBool:
		return strconv.AppendBool(dst, v.Num != 0)
	case engine.KindTime:
		return strconv.AppendInt(dst, int64(v.Num), 10)
	case engine.KindList:
		dst = append(dst, '[')
		for i, e := range v.Items() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONValue(dst, e)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

// appendJSONString appends s as a quoted JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendCSVHeader appends the field names of s as a CSV header row (no line
// terminator).
func AppendCSVHeader(dst []byte, s *engine.Schema) []byte {
	for i := 0; i < s.Len(); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendCSVString(dst, s.Field(i).Name)
	}
	return dst
}

// AppendCSV appends r as one CSV row (no line terminator) with the fields of
// s in schema order: numbers compact, non-finite numbers and nulls as empty
// cells, times as unix milliseconds, lists in their text form. Cells are
// quoted per RFC 4180 when needed. Note that CSV cannot tell an empty string
// from null: CSVDecoder reads both as null.
func AppendCSV(dst []byte, s *engine.Schema, r *engine.Record) []byte {
	for i := 0; i < s.Len(); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		var v engine.Value
		if i < len(r.Vals) {
			v = r.Vals[i]
		}
		switch v.Kind {
		case engine.KindNull:
		case engine.KindString:
			dst = appendCSVString(dst, v.Str)
		case engine.KindNumber:
			if !math.IsInf(v.Num, 0) && !math.IsNaN(v.Num) {
				dst = engine.AppendNumber(dst, v.Num)
			}
		case engine.KindList:
			start := len(dst)
			dst = v.AppendText(dst)
			if needsCSVQuotes(string(dst[start:])) {
				// Rare: quote in place through a copy of the text.
				txt := string(dst[start:])
				dst = appendCSVString(dst[:start], txt)
			}
		default:
			dst = v.AppendText(dst)
		}
	}
	return dst
}

func needsCSVQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t' {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// appendCSVString appends s as a CSV cell, quoted when needed.
func appendCSVString(dst []byte, s string) []byte {
	if !needsCSVQuotes(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}
