package decode

import (
	"encoding/csv"
	"errors"
	"io"
	"strconv"

	"github.com/edgedio/edged/engine"
)

// CSVDecoder decodes CSV (RFC 4180) with a header line into records. Like
// JSONDecoder it keeps scratch state and is not safe for concurrent use.
type CSVDecoder struct {
	p   *plan
	raw []byte
}

// NewCSV returns a CSV decoder for cfg, or the error of cfg.Validate.
func NewCSV(cfg Config) (*CSVDecoder, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	return &CSVDecoder{p: p}, nil
}

// DecodeCSV decodes CSV from r with a new CSVDecoder for cfg; see
// CSVDecoder.Decode.
func DecodeCSV(r io.Reader, cfg Config, dst *engine.Batch, onErr func(line int, raw []byte, err error)) error {
	d, err := NewCSV(cfg)
	if err != nil {
		return err
	}
	return d.Decode(r, dst, onErr)
}

// Decode reads CSV from r and appends one record per data row to dst. The
// first row is the header: columns are matched to schema fields by name
// (surrounding spaces and a UTF-8 byte order mark ignored), columns not in the
// schema are ignored. A schema field without a column is an error that stops
// decoding when it is required: every field when Config.Strict is set, the
// time field and the key fields otherwise; other missing fields are null. An
// empty cell is null whatever the field's kind (CSV cannot tell an empty
// string from a missing value). Numbers, bools ("true", "false", "1", "0",
// ...) and times (a number in the configured unit or RFC 3339) are converted
// per field kind.
//
// A bad row is passed to onErr with its line number, its cells re-encoded as
// CSV (nil when the row could not be parsed; valid only during the call) and a
// *DecodeError naming the line and column; decoding then continues. If onErr
// is nil, the first bad row stops decoding and its error is returned. Errors
// from r are returned as they are. Empty input is not an error.
func (d *CSVDecoder) Decode(r io.Reader, dst *engine.Batch, onErr func(line int, raw []byte, err error)) error {
	p := d.p
	if err := p.checkBatch(dst); err != nil {
		return err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return csvErr(err)
	}
	cols, derr := headerCols(p, header, nil)
	if derr != nil {
		return derr
	}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		var derr *DecodeError
		line := 0
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return err
			}
			derr = csvErr(err)
			line = derr.Line
		} else {
			line, _ = cr.FieldPos(0)
			if derr = csvCells(p, row, cols, false); derr == nil {
				derr = p.commit(dst)
			}
		}
		if derr == nil {
			continue
		}
		derr.Line = line
		if onErr == nil {
			return derr
		}
		var raw []byte
		if err == nil {
			raw = d.raw[:0]
			for i, cell := range row {
				if i > 0 {
					raw = append(raw, ',')
				}
				raw = appendCSVString(raw, cell)
			}
			d.raw = raw
		}
		onErr(line, raw, derr)
	}
}

func csvErr(err error) *DecodeError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &DecodeError{Line: pe.StartLine, Offset: -1, Reason: pe.Err.Error() + " (column " + strconv.Itoa(pe.Column) + ")"}
	}
	return &DecodeError{Offset: -1, Reason: err.Error()}
}
