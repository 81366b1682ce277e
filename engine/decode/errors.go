package decode

import (
	"strconv"
	"unicode/utf8"
)

// DecodeError describes why a payload, a line or a CSV row did not decode. It
// is the only error type the decoders return for bad input; I/O errors from a
// reader are returned as they are.
type DecodeError struct {
	// Line is the 1-based line of the bad record in DecodeLines and CSV input
	// (the row's first line for a multi-line CSV record); 0 for Decode.
	Line int
	// Offset is the 0-based byte offset in the payload (or line) where the
	// problem was found; -1 when unknown (CSV).
	Offset int
	// Field is the schema field (or CSV column) at fault; empty for syntax
	// errors.
	Field string
	// Reason says what is wrong, e.g. `want number, got string "abc"`.
	Reason string
}

// Error returns a message such as
// `decode: field "temp": want number, got string "abc"` or
// `decode: line 4: byte 17: unexpected '}'`.
func (e *DecodeError) Error() string {
	b := make([]byte, 0, 64+len(e.Reason))
	b = append(b, "decode: "...)
	if e.Line > 0 {
		b = append(b, "line "...)
		b = strconv.AppendInt(b, int64(e.Line), 10)
		b = append(b, ": "...)
	}
	if e.Field != "" {
		b = append(b, "field "...)
		b = strconv.AppendQuote(b, e.Field)
		b = append(b, ": "...)
	} else if e.Offset >= 0 {
		b = append(b, "byte "...)
		b = strconv.AppendInt(b, int64(e.Offset), 10)
		b = append(b, ": "...)
	}
	b = append(b, e.Reason...)
	return string(b)
}

// quoteSample quotes at most 40 bytes of b for an error message.
func quoteSample[T text](b T) string {
	const max = 40
	if len(b) <= max {
		return strconv.Quote(string(b))
	}
	n := max
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return strconv.Quote(string(b[:n])) + "..."
}

// describeByte names the byte at p[i] for an "unexpected" message.
func describeByte(p []byte, i int) string {
	if i >= len(p) {
		return "end of input"
	}
	c := p[i]
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}
