package decode

import "bytes"

// SplitFile calls fn with each message of a recorded input file in format,
// the messages Decoder.Decode takes, and the 1-based line each starts on:
//
//	json, senml  each line that is not blank: a JSON object or array, a pack
//	raw          each line that is not empty
//	csv          each row (a quoted cell may span lines), the header included
//
// Line ends ("\n" or "\r\n") are not part of a message. A CSV row that does
// not split (a quote never closed) is passed up to its line end, so that
// decoding it reports the error, and splitting goes on at the next line. An
// error from fn stops SplitFile and is returned. msg aliases data.
func SplitFile(data []byte, format string, fn func(line int, msg []byte) error) error {
	line := 1
	if format == FormatCSV {
		var c csvState
		for i := 0; i < len(data); {
			j := skipBlankLines(data, i)
			line += bytes.Count(data[i:j], nl)
			if i = j; i >= len(data) {
				break
			}
			end, e := c.row(data, i)
			if e != nil {
				if k := bytes.IndexByte(data[i:], '\n'); k >= 0 {
					end = i + k + 1
				} else {
					end = len(data)
				}
			}
			if msg := trimEOL(data[i:end]); len(msg) > 0 {
				if err := fn(line, msg); err != nil {
					return err
				}
			}
			line += bytes.Count(data[i:end], nl)
			i = end
		}
		return nil
	}
	for len(data) > 0 {
		l := data
		if k := bytes.IndexByte(data, '\n'); k >= 0 {
			l, data = data[:k], data[k+1:]
		} else {
			data = nil
		}
		l = trimEOL(l)
		blank := len(l) == 0
		if format != FormatRaw {
			blank = skipWS(l, 0) == len(l)
		}
		if !blank {
			if err := fn(line, l); err != nil {
				return err
			}
		}
		line++
	}
	return nil
}

var nl = []byte{'\n'}

// WithCSVHeader returns c, a CSV Config whose payloads start with a header
// row, turned into the Config of the data rows that follow header: its
// CSVColumns name the header's columns in order (SkipColumn for a column
// that is not a field). Batch mode reads a CSV file so: the header once,
// then every row as one message. The header is checked as Decode checks the
// header row of a payload.
func (c Config) WithCSVHeader(header []byte) (Config, error) {
	p, err := newPlan(c)
	if err != nil {
		return c, err
	}
	var s csvState
	if _, e := s.row(header, 0); e != nil {
		e.Line, e.Reason = 1, "header row: "+e.Reason
		return c, e
	}
	cols, e := headerCols(p, s.cells, nil)
	if e != nil {
		return c, e
	}
	c.CSVColumns = make([]string, len(cols))
	for i, idx := range cols {
		c.CSVColumns[i] = SkipColumn
		if idx >= 0 {
			c.CSVColumns[i] = p.names[idx]
		}
	}
	return c, nil
}
