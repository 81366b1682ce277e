package decode

import (
	"bufio"
	"errors"
	"io"
	"strconv"

	"github.com/edgedio/edged/engine"
)

// DecodeLines decodes JSON Lines from r: one object per line ("\n" or "\r\n"
// endings), blank lines skipped. Each good line appends one record to dst. A
// bad line (including one longer than Config.MaxLineBytes) is passed to onErr
// with its 1-based number, its bytes (valid only during the call; copy them to
// keep them) and a *DecodeError whose Line is set, and decoding continues. If
// onErr is nil, the first bad line stops decoding and its error is returned.
// Otherwise DecodeLines returns only errors from r (nil at io.EOF).
func (d *JSONDecoder) DecodeLines(r io.Reader, dst *engine.Batch, onErr func(line int, raw []byte, err error)) error {
	if err := d.p.checkBatch(dst); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		long    []byte // a line that did not fit in br's buffer
		inLong  bool
		tooLong bool
		line    int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(long)+len(chunk) <= d.p.maxLine+2 { // +2: the line terminator does not count
				long = append(long, chunk...)
			} else if !tooLong {
				tooLong = true
				long = append(long[:0], chunk[:min(len(chunk), 256)]...)
			}
			inLong = true
			continue
		}
		if len(chunk) == 0 && !inLong && err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		line++
		raw := chunk
		if inLong && !tooLong {
			long = append(long, chunk...)
			raw = long
		} else if tooLong {
			raw = long
		}
		var derr *DecodeError
		switch {
		case tooLong:
			derr = &DecodeError{Offset: d.p.maxLine, Reason: "line longer than " + strconv.Itoa(d.p.maxLine) + " bytes"}
		case len(trimEOL(raw)) > d.p.maxLine:
			derr = &DecodeError{Offset: d.p.maxLine, Reason: "line longer than " + strconv.Itoa(d.p.maxLine) + " bytes"}
		default:
			payload := trimEOL(raw)
			if skipWS(payload, 0) == len(payload) {
				break
			}
			if derr = d.decode(payload); derr == nil {
				derr = d.p.commit(dst)
			}
		}
		if derr != nil {
			derr.Line = line
			if onErr == nil {
				return derr
			}
			onErr(line, trimEOL(raw), derr)
		}
		long, inLong, tooLong = long[:0], false, false
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// DecodeLines decodes JSON Lines from r with a new JSONDecoder for cfg; see
// JSONDecoder.DecodeLines.
func DecodeLines(r io.Reader, cfg Config, dst *engine.Batch, onErr func(line int, raw []byte, err error)) error {
	d, err := NewJSON(cfg)
	if err != nil {
		return err
	}
	return d.DecodeLines(r, dst, onErr)
}

func trimEOL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}
