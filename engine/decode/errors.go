package decode

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors wrapped by a *DecodeError whose record is invalid although
// the payload parsed; test for them with errors.Is (for example to count dead
// letters by reason).
var (
	// ErrNoEventTime: the pipeline declares an event-time field and the
	// record has none (the field is missing, null or an empty CSV cell). Such
	// a record is rejected instead of being placed at 1970.
	ErrNoEventTime = errors.New("no event time")
	// ErrInvalidUTF8: a string in the payload (or a topic capture) is not
	// valid UTF-8, or a JSON \u escape is a lone surrogate. The text is
	// rejected, never rewritten with replacement characters.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
)

// DecodeError describes why a payload, a line or a CSV row did not decode. It
// is the only error type the decoders return for bad input; I/O errors from a
// reader are returned as they are.
type DecodeError struct {
	// Line is the 1-based line of the bad record in DecodeLines and CSV input
	// (the row's first line for a multi-line CSV record); 0 for Decode.
	Line int
	// Index is the 1-based position of the bad record in a message that
	// holds several (an element of a JSON array, a record of a SenML pack, a
	// data row of a CSV payload); 0 when the message as a whole is at fault
	// or holds one record.
	Index int
	// Offset is the 0-based byte offset in the payload (or line) where the
	// problem was found; -1 when unknown (CSV).
	Offset int
	// Field is the schema field (or CSV column) at fault; empty for syntax
	// errors.
	Field string
	// Reason says what is wrong, e.g. `want number, got string "abc"`.
	Reason string
	// Err is ErrNoEventTime or ErrInvalidUTF8 when the error is one of
	// those cases, else nil. Unwrap returns it.
	Err error
}

// Unwrap returns e.Err, so errors.Is(err, ErrNoEventTime) works.
func (e *DecodeError) Unwrap() error { return e.Err }

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
	if e.Index > 0 {
		b = append(b, "record "...)
		b = strconv.AppendInt(b, int64(e.Index), 10)
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
