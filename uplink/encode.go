package uplink

import (
	"fmt"
	"io"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

// Row is one spooled output: its deterministic id and its data, a JSON
// object.
type Row struct {
	ID   string
	Data []byte
}

// BadRow is a row an Encoder could not encode (not a JSON object); it goes
// to the dead-letter store with Reason instead of into the object.
type BadRow struct {
	Row
	Reason string
}

// An Encoder turns a batch of rows into the bytes of one object. Encoders
// are not safe for concurrent use; they reuse buffers between calls. The
// output depends only on the rows, so a retried batch gives the same bytes.
type Encoder interface {
	// Ext is the file extension of the objects, without the dot.
	Ext() string
	// Encode writes rows as one object to w, with the columns of schema
	// (nil: inferred from the rows, where the format has columns). Rows that
	// do not fit are left out and returned in bad; err is an I/O or encoder
	// failure.
	Encode(w io.Writer, schema *Schema, rows []Row) (bad []BadRow, err error)
}

// NewEncoder returns the encoder of format (FormatParquet or FormatJSONL).
// idColumn, when not empty, adds each row's output id as a string column of
// that name (it replaces a member of the same name in the row).
func NewEncoder(format, idColumn string) (Encoder, error) {
	switch format {
	case FormatParquet:
		return &ParquetEncoder{IDColumn: idColumn}, nil
	case FormatJSONL:
		return &JSONLEncoder{IDColumn: idColumn}, nil
	}
	return nil, fmt.Errorf("uplink: unknown format %q", format)
}

// JSONLEncoder writes one JSON object per line, the whole stream compressed
// with zstd (a standard .zst frame: `zstd -d` or any zstd library reads it).
// Rows are copied verbatim, except that the id column is inserted first.
type JSONLEncoder struct {
	IDColumn string
	zw       *zstd.Encoder
	line     []byte
}

// Ext implements Encoder.
func (e *JSONLEncoder) Ext() string { return "jsonl.zst" }

// Encode implements Encoder. JSON Lines carry their own types: schema is
// not used.
func (e *JSONLEncoder) Encode(w io.Writer, _ *Schema, rows []Row) ([]BadRow, error) {
	if e.zw == nil {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		e.zw = zw
	} else {
		e.zw.Reset(w)
	}
	var bad []BadRow
	for _, r := range rows {
		skipID := false
		if err := scanObject(r.Data, func(f field) {
			if e.IDColumn != "" && string(f.name) == e.IDColumn {
				skipID = true
			}
		}); err != nil {
			bad = append(bad, BadRow{Row: r, Reason: err.Error()})
			continue
		}
		e.line = e.line[:0]
		if e.IDColumn == "" || skipID {
			// Verbatim (a row that carries the id column itself keeps its own).
			e.line = append(e.line, r.Data...)
		} else {
			i := skipWS(r.Data, 0) + 1
			e.line = append(e.line, '{')
			e.line = strconv.AppendQuote(e.line, e.IDColumn)
			e.line = append(e.line, ':')
			e.line = appendJSONString(e.line, r.ID)
			if j := skipWS(r.Data, i); r.Data[j] != '}' {
				e.line = append(e.line, ',')
			}
			e.line = append(e.line, r.Data[i:]...)
		}
		e.line = append(e.line, '\n')
		if _, err := e.zw.Write(e.line); err != nil {
			return nil, err
		}
	}
	return bad, e.zw.Close()
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
