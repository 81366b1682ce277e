package uplink

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
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
	// Encode writes rows as one object to w. Rows that do not fit are left
	// out and returned in bad; err is an I/O or encoder failure.
	Encode(w io.Writer, rows []Row) (bad []BadRow, err error)
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

// Encode implements Encoder.
func (e *JSONLEncoder) Encode(w io.Writer, rows []Row) ([]BadRow, error) {
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

// ParquetEncoder writes Apache Parquet files with zstd-compressed column
// chunks, one row group per object. The schema is a flat group inferred
// from the batch's rows, one column per top-level member name, sorted by
// name:
//
//   - only numbers               → DOUBLE
//   - only strings               → BYTE_ARRAY (STRING), dictionary-encoded
//   - only true/false            → BOOLEAN
//   - only objects/arrays        → BYTE_ARRAY (JSON), the value's JSON text
//   - mixed kinds                → BYTE_ARRAY (STRING): strings as is, other
//     values as their JSON text
//   - a member missing or null in some row makes its column OPTIONAL (null
//     there); a column that is null everywhere is an OPTIONAL STRING.
//
// Numbers are doubles so that one pipeline's files share a schema whatever
// values a batch holds; integers up to 2^53 (unix milliseconds included)
// are exact. The id column, when set, is a REQUIRED STRING.
type ParquetEncoder struct {
	IDColumn string

	fields []field
	ends   []int // ends[i]: end of row i's fields in fields
	cols   []pqCol
	byName map[string]int
	order  []int
	rows   []parquet.Row
	bw     *bufio.Writer
	idBuf  []byte
}

type pqCol struct {
	name    string
	kinds   uint8 // bit per kind, kindNull excluded
	nonNull int
	seen    int   // 1 + index of the last row that counted in nonNull
	leaf    int   // index in the sorted schema
	typ     uint8 // kind of the column; kindString for mixed
	opt     bool
}

// Ext implements Encoder.
func (e *ParquetEncoder) Ext() string { return "parquet" }

// Encode implements Encoder.
func (e *ParquetEncoder) Encode(w io.Writer, rows []Row) ([]BadRow, error) {
	e.fields, e.ends, e.cols = e.fields[:0], e.ends[:0], e.cols[:0]
	if want := len(rows) * 8; cap(e.fields) < want { // ~8 members per row: grow once
		e.fields = make([]field, 0, want)
	}
	clear(e.byName)
	if e.byName == nil {
		e.byName = map[string]int{}
	}
	var bad []BadRow
	good := make([]int, 0, len(rows))
	for i, r := range rows {
		n := len(e.fields)
		err := scanObject(r.Data, func(f field) {
			if e.IDColumn != "" && string(f.name) == e.IDColumn {
				return
			}
			e.fields = append(e.fields, f)
		})
		if err != nil {
			e.fields = e.fields[:n]
			bad = append(bad, BadRow{Row: r, Reason: err.Error()})
			continue
		}
		for _, f := range e.fields[n:] {
			c, ok := e.byName[string(f.name)]
			if !ok {
				c = len(e.cols)
				e.byName[string(f.name)] = c
				e.cols = append(e.cols, pqCol{name: string(f.name)})
			}
			if f.kind != kindNull {
				e.cols[c].kinds |= 1 << f.kind
				if e.cols[c].seen != i+1 { // count rows, not duplicate members
					e.cols[c].seen = i + 1
					e.cols[c].nonNull++
				}
			}
		}
		e.ends = append(e.ends, len(e.fields))
		good = append(good, i)
	}
	nrows := len(good)
	if e.IDColumn != "" {
		e.byName[e.IDColumn] = len(e.cols)
		e.cols = append(e.cols, pqCol{name: e.IDColumn, kinds: 1 << kindString, nonNull: nrows})
	}
	// Schema.
	group := parquet.Group{}
	for i := range e.cols {
		c := &e.cols[i]
		var node parquet.Node
		switch c.kinds {
		case 1 << kindNumber:
			c.typ, node = kindNumber, parquet.Leaf(parquet.DoubleType)
		case 1 << kindBool:
			c.typ, node = kindBool, parquet.Leaf(parquet.BooleanType)
		case 1 << kindRaw:
			c.typ, node = kindRaw, parquet.JSON()
		default:
			c.typ, node = kindString, parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
		}
		if e.IDColumn != "" && i == len(e.cols)-1 { // unique ids sharing prefixes
			node = parquet.Encoded(parquet.String(), &parquet.DeltaByteArray)
		}
		if c.opt = c.nonNull < nrows; c.opt {
			node = parquet.Optional(node)
		}
		group[c.name] = node
	}
	e.order = e.order[:0]
	for i := range e.cols {
		e.order = append(e.order, i)
	}
	sort.Slice(e.order, func(a, b int) bool { return e.cols[e.order[a]].name < e.cols[e.order[b]].name })
	for leaf, c := range e.order {
		e.cols[c].leaf = leaf
	}
	schema := parquet.NewSchema("edged", group)
	if e.bw == nil {
		e.bw = bufio.NewWriterSize(w, 64<<10)
	} else {
		e.bw.Reset(w)
	}
	pw := parquet.NewWriter(e.bw, schema, parquet.Compression(&parquet.Zstd),
		parquet.PageBufferSize(256<<10))
	ncol := len(e.cols)
	const chunk = 512
	if cap(e.rows) < chunk {
		e.rows = make([]parquet.Row, chunk)
	}
	e.rows = e.rows[:chunk]
	start := 0
	for k := 0; k < nrows; k += chunk {
		m := min(chunk, nrows-k)
		e.idBuf = e.idBuf[:0]
		for j := 0; j < m; j++ {
			ri := k + j
			row := e.rows[j][:0]
			for _, c := range e.order {
				row = append(row, parquet.Value{}.Level(0, 0, e.cols[c].leaf))
			}
			end := e.ends[ri]
			if ri > 0 {
				start = e.ends[ri-1]
			} else {
				start = 0
			}
			for _, f := range e.fields[start:end] {
				c := &e.cols[e.byName[string(f.name)]]
				if f.kind == kindNull {
					continue
				}
				row[c.leaf] = pqValue(c, &f).Level(0, b2i(c.opt), c.leaf)
			}
			if e.IDColumn != "" {
				c := &e.cols[ncol-1]
				at := len(e.idBuf)
				e.idBuf = append(e.idBuf, rows[good[ri]].ID...)
				row[c.leaf] = parquet.ByteArrayValue(e.idBuf[at:len(e.idBuf):len(e.idBuf)]).Level(0, 0, c.leaf)
			}
			e.rows[j] = row
		}
		if _, err := pw.WriteRows(e.rows[:m]); err != nil {
			return nil, err
		}
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	return bad, e.bw.Flush()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func pqValue(c *pqCol, f *field) parquet.Value {
	switch c.typ {
	case kindNumber:
		v, err := strconv.ParseFloat(string(f.raw), 64)
		if err != nil { // out of range: ParseFloat returns ±Inf with an error
			v = math.Copysign(math.Inf(1), v)
		}
		return parquet.DoubleValue(v)
	case kindBool:
		return parquet.BooleanValue(f.b)
	case kindRaw:
		return parquet.ByteArrayValue(f.raw)
	}
	if f.kind == kindString {
		return parquet.ByteArrayValue(f.str)
	}
	return parquet.ByteArrayValue(f.raw)
}
