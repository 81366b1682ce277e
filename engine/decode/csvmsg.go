package decode

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/edgedio/edged/engine"
)

// csvState is the CSV part of a msgDecoder: an RFC 4180 row splitter over a
// payload in memory that allocates nothing in steady state.
type csvState struct {
	cells [][]byte // the cells of the last row; alias the payload or unq
	unq   []byte   // unescaped quoted cells
	fixed []int    // column -> field (-1: ignored) from Config.CSVColumns; nil: header rows
	cols  []int    // column -> field of header, the last header row decoded
	hdr   []byte   // that header row, as received
}

// decodeCSV appends one record per data row of payload: after a header row,
// or in the declared column order.
func (d *msgDecoder) decodeCSV(payload []byte, dst *engine.Batch) *DecodeError {
	c := &d.csv
	i := skipBlankLines(payload, 0)
	cols := c.fixed
	if cols == nil {
		if i >= len(payload) {
			return nil
		}
		start := i
		var e *DecodeError
		if i, e = c.row(payload, i); e != nil {
			e.Reason = "header row: " + e.Reason
			return e
		}
		if hdr := payload[start:i]; c.hdr == nil || !bytes.Equal(hdr, c.hdr) {
			cols, e := headerCols(d.p, c.cells, c.cols[:0])
			if e != nil {
				c.hdr = nil
				return e
			}
			c.cols, c.hdr = cols, append(c.hdr[:0], hdr...)
		}
		cols = c.cols
	}
	for n := 1; ; n++ {
		if i = skipBlankLines(payload, i); i >= len(payload) {
			return nil
		}
		var e *DecodeError
		if i, e = c.row(payload, i); e == nil {
			if e = csvCells(d.p, c.cells, cols, c.fixed != nil); e == nil {
				e = d.p.commit(dst)
			}
		}
		if e != nil {
			e.Index = n
			return e
		}
	}
}

// csvCells converts the cells of one row into p.vals.
func csvCells[T text](p *plan, cells []T, cols []int, declared bool) *DecodeError {
	clear(p.vals)
	if len(cells) != len(cols) {
		from := "header has "
		if declared {
			from = "csv.columns declares "
		}
		return &DecodeError{Offset: -1, Reason: "row has " + strconv.Itoa(len(cells)) + " columns; " + from + strconv.Itoa(len(cols))}
	}
	for c, cell := range cells {
		idx := cols[c]
		if idx < 0 || len(cell) == 0 {
			continue
		}
		v, reason := fromText(p, idx, cell)
		if reason != "" {
			return &DecodeError{Offset: -1, Field: p.names[idx], Reason: reason, Err: reasonErr(reason)}
		}
		p.vals[idx] = v
	}
	return nil
}

// headerCols maps the columns of a header row to fields (-1: not in the
// schema), appending to cols. Names are trimmed of spaces, the first of a
// UTF-8 byte order mark. A column named twice is an error, and so is a
// required field without a column: every field when strict, else the time
// and key fields (unless a topic template captures them).
func headerCols[T text](p *plan, header []T, cols []int) ([]int, *DecodeError) {
	have := make([]bool, len(p.names))
	for c, cell := range header {
		name := string(cell)
		if c == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		name = strings.TrimSpace(name)
		idx, ok := p.index[name]
		if !ok {
			cols = append(cols, -1)
			continue
		}
		if have[idx] {
			return nil, &DecodeError{Line: 1, Offset: -1, Field: name, Reason: "column appears twice in the header"}
		}
		have[idx] = true
		cols = append(cols, idx)
	}
	for idx, ok := range have {
		if !ok && p.required(idx) {
			names := make([]string, len(header))
			for c, cell := range header {
				names[c] = string(cell)
			}
			return nil, &DecodeError{Line: 1, Offset: -1, Field: p.names[idx],
				Reason: "missing column in the header (have " + strings.Join(names, ", ") + ")"}
		}
	}
	return cols, nil
}

// skipBlankLines skips empty lines ("\n" or "\r\n") at p[i:].
func skipBlankLines(p []byte, i int) int {
	for i < len(p) {
		switch {
		case p[i] == '\n':
			i++
		case p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n':
			i += 2
		default:
			return i
		}
	}
	return i
}

// row splits the CSV row at p[i] into c.cells and returns the offset after
// its line end. A quoted cell may hold commas, line breaks and doubled
// quotes; a quote inside an unquoted cell, or text after a closing quote, is
// an error.
func (c *csvState) row(p []byte, i int) (int, *DecodeError) {
	c.cells, c.unq = c.cells[:0], c.unq[:0]
	for {
		if i < len(p) && p[i] == '"' {
			start, j := i, i+1
			seg, from := j, -1 // from: start of the cell in unq once it has an escape
			for {
				k := bytes.IndexByte(p[j:], '"')
				if k < 0 {
					return len(p), &DecodeError{Offset: start, Reason: "quoted cell is never closed"}
				}
				j += k
				if j+1 < len(p) && p[j+1] == '"' {
					if from < 0 {
						from = len(c.unq)
					}
					c.unq = append(c.unq, p[seg:j+1]...)
					j += 2
					seg = j
					continue
				}
				break
			}
			if from < 0 {
				c.cells = append(c.cells, p[seg:j])
			} else {
				c.unq = append(c.unq, p[seg:j]...)
				c.cells = append(c.cells, c.unq[from:len(c.unq):len(c.unq)])
			}
			i = j + 1
		} else {
			j := i
			for j < len(p) && p[j] != ',' && p[j] != '\n' {
				if p[j] == '"' {
					return j, &DecodeError{Offset: j, Reason: "quote in an unquoted cell (quote the whole cell and double the quote)"}
				}
				j++
			}
			end := j
			if end > i && p[end-1] == '\r' && (j == len(p) || p[j] == '\n') {
				end--
			}
			c.cells = append(c.cells, p[i:end])
			i = j
		}
		switch {
		case i >= len(p):
			return i, nil
		case p[i] == ',':
			i++
		case p[i] == '\n':
			return i + 1, nil
		case p[i] == '\r' && (i+1 == len(p) || p[i+1] == '\n'):
			return min(i+2, len(p)), nil
		default:
			return i, &DecodeError{Offset: i, Reason: "unexpected " + describeByte(p, i) + " after a quoted cell, want ',' or a line end"}
		}
	}
}
