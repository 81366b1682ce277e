package uplink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ParquetEncoder writes Apache Parquet files: one row group per object, a
// flat schema, v1 data pages compressed with zstd, column statistics (min,
// max, null count) and a footer written with the Thrift compact protocol.
// It is edged's own small writer (a general Parquet library would add
// megabytes to the binary); parquet-go and DuckDB read its files in tests.
//
// With a Schema (the pipeline's declared output, the normal case) every
// object of the output has exactly its columns, in its order, with its
// types and optionality:
//
//   - TypeString    → BYTE_ARRAY (STRING), PLAIN
//   - TypeDouble    → DOUBLE, PLAIN
//   - TypeInt64     → INT64, DELTA_BINARY_PACKED
//   - TypeTimestamp → INT64 TIMESTAMP(MILLIS, UTC), DELTA_BINARY_PACKED
//   - TypeBool      → BOOLEAN, PLAIN
//   - TypeJSON      → BYTE_ARRAY (JSON), the value's JSON text
//
// A row that does not fit the schema (a member of another JSON type, a
// fraction in an integer column, a member the schema lacks, a required
// column missing) is returned as a BadRow and left out, never widened into
// a new column type.
//
// Without a Schema the columns are inferred from the batch (for embedders
// that declare none): in order of first appearance, all OPTIONAL; numbers
// DOUBLE, strings STRING, booleans BOOLEAN, nested values JSON, mixed kinds
// STRING (non-strings as their JSON text).
//
// The id column, when IDColumn is set, is a REQUIRED STRING after the
// schema's columns; a schema column of the same name is replaced by it.
// The file's key-value metadata holds "edged.schema" (the columns as JSON)
// and "edged.schema_version" (Schema.Version).
type ParquetEncoder struct {
	IDColumn string
	// PageSize is the uncompressed size at which a column chunk starts a new
	// data page. 0: 1 MiB.
	PageSize int

	zenc   *zstd.Encoder
	cols   []pqColumn
	byName map[string]int
	fields []field
	slot   []int32 // per column: index in fields of the current row's member, -1 if none
	cells  []pqCell
	file   []byte
	page   []byte
	comp   []byte
	tw     thriftWriter
	chunks []pqChunk
}

// pqColumn is one column and the values of the batch.
type pqColumn struct {
	Column
	anyText bool // inferred mixed column: non-strings as JSON text

	defs  []byte // per row, 1 if a value is present (optional columns)
	ints  []int64
	dbls  []float64
	bools []bool
	data  []byte // byte arrays, concatenated
	ends  []int  // end of each byte array in data
	nulls int
}

// pqCell is one converted value of the current row.
type pqCell struct {
	null bool
	i    int64
	f    float64
	b    bool
	s    []byte
}

// pqChunk is what the footer needs of a written column chunk.
type pqChunk struct {
	offset, comp, uncomp int64
	min, max             []byte
	hasStats             bool
}

// Parquet enums.
const (
	pqBoolean   = 0
	pqInt64     = 2
	pqDouble    = 5
	pqByteArray = 6

	pqPlain = 0
	pqRLE   = 3
	pqDelta = 5 // DELTA_BINARY_PACKED

	pqZstd = 6

	pqUTF8            = 0 // converted types
	pqTimestampMillis = 9
	pqJSON            = 19

	pqRequired = 0
	pqOptional = 1
)

// Ext implements Encoder.
func (e *ParquetEncoder) Ext() string { return "parquet" }

// Encode implements Encoder.
func (e *ParquetEncoder) Encode(w io.Writer, schema *Schema, rows []Row) ([]BadRow, error) {
	if e.zenc == nil {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		e.zenc = z
	}
	e.setColumns(schema, rows)
	var bad []BadRow
	n := 0
	for _, r := range rows {
		if reason := e.addRow(r); reason != "" {
			bad = append(bad, BadRow{Row: r, Reason: reason})
			continue
		}
		n++
	}
	e.file = append(e.file[:0], "PAR1"...)
	e.chunks = e.chunks[:0]
	if n > 0 {
		for i := range e.cols {
			e.writeChunk(&e.cols[i], n)
		}
	}
	js, _ := e.schemaJSON(schema)
	e.writeFooter(n, js, schema)
	_, err := w.Write(e.file)
	return bad, err
}

// setColumns prepares the columns of schema (or inferred from rows) plus
// the id column, with empty value buffers.
func (e *ParquetEncoder) setColumns(schema *Schema, rows []Row) {
	if e.byName == nil {
		e.byName = map[string]int{}
	}
	clear(e.byName)
	e.cols = e.cols[:0]
	add := func(c Column, anyText bool) {
		if _, dup := e.byName[c.Name]; dup {
			return
		}
		e.byName[c.Name] = len(e.cols)
		if len(e.cols) < cap(e.cols) { // reuse the value buffers of the last batch
			e.cols = e.cols[:len(e.cols)+1]
			pc := &e.cols[len(e.cols)-1]
			pc.Column, pc.anyText, pc.nulls = c, anyText, 0
			pc.defs, pc.ints, pc.dbls, pc.bools = pc.defs[:0], pc.ints[:0], pc.dbls[:0], pc.bools[:0]
			pc.data, pc.ends = pc.data[:0], pc.ends[:0]
		} else {
			e.cols = append(e.cols, pqColumn{Column: c, anyText: anyText})
		}
	}
	if e.IDColumn != "" {
		e.byName[e.IDColumn] = -1 // the rows' members of that name are ignored
	}
	if schema != nil {
		for _, c := range schema.cols {
			add(c, false)
		}
	} else {
		for _, c := range inferColumns(rows, e.IDColumn) {
			add(c.Column, c.anyText)
		}
	}
	if e.IDColumn != "" {
		delete(e.byName, e.IDColumn)
		add(Column{Name: e.IDColumn, Type: TypeString}, false)
		e.byName[e.IDColumn] = -1
	}
	e.slot = slicesGrow(e.slot, len(e.cols))
	e.cells = slicesGrow(e.cells, len(e.cols))
}

func slicesGrow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// inferColumns derives columns from a batch with no declared schema.
func inferColumns(rows []Row, idColumn string) []pqColumn {
	var cols []pqColumn
	kinds := map[string]int{}
	var mask []uint8
	for _, r := range rows {
		_ = scanObject(r.Data, func(f field) { // rows that are not objects are bad rows later
			if idColumn != "" && string(f.name) == idColumn {
				return
			}
			i, ok := kinds[string(f.name)]
			if !ok {
				i = len(cols)
				kinds[string(f.name)] = i
				cols = append(cols, pqColumn{Column: Column{Name: string(f.name)}})
				mask = append(mask, 0)
			}
			if f.kind != kindNull {
				mask[i] |= 1 << f.kind
			}
		})
	}
	for i := range cols {
		c := &cols[i]
		c.Optional = true
		switch mask[i] {
		case 1 << kindNumber:
			c.Type = TypeDouble
		case 1 << kindBool:
			c.Type = TypeBool
		case 1 << kindRaw:
			c.Type = TypeJSON
		case 1 << kindString, 0:
			c.Type = TypeString
		default:
			c.Type, c.anyText = TypeString, true
		}
	}
	return cols
}

// addRow converts r's members to the columns' types and appends them, or
// returns why the row does not fit (nothing appended then).
func (e *ParquetEncoder) addRow(r Row) string {
	e.fields = e.fields[:0]
	if err := scanObject(r.Data, func(f field) { e.fields = append(e.fields, f) }); err != nil {
		return err.Error()
	}
	for i := range e.slot {
		e.slot[i] = -1
	}
	for fi := range e.fields {
		f := &e.fields[fi]
		c, ok := e.byName[string(f.name)]
		if !ok {
			return fmt.Sprintf("member %q is not a column of the output schema (%s)", f.name, e.colNames())
		}
		if c >= 0 {
			e.slot[c] = int32(fi)
		}
	}
	idc := -1
	if e.IDColumn != "" {
		idc = len(e.cols) - 1
	}
	for c := range e.cols {
		col := &e.cols[c]
		cell := &e.cells[c]
		*cell = pqCell{}
		if c == idc {
			continue
		}
		if e.slot[c] < 0 || e.fields[e.slot[c]].kind == kindNull {
			if !col.Optional {
				return fmt.Sprintf("member %q is missing or null; the output schema requires it", col.Name)
			}
			cell.null = true
			continue
		}
		if reason := convert(col, &e.fields[e.slot[c]], cell); reason != "" {
			return fmt.Sprintf("member %q: %s", col.Name, reason)
		}
	}
	for c := range e.cols {
		col, cell := &e.cols[c], &e.cells[c]
		if c == idc {
			col.data = append(col.data, r.ID...)
			col.ends = append(col.ends, len(col.data))
			continue
		}
		if col.Optional {
			if cell.null {
				col.defs = append(col.defs, 0)
				col.nulls++
				continue
			}
			col.defs = append(col.defs, 1)
		}
		switch col.Type {
		case TypeInt64, TypeTimestamp:
			col.ints = append(col.ints, cell.i)
		case TypeDouble:
			col.dbls = append(col.dbls, cell.f)
		case TypeBool:
			col.bools = append(col.bools, cell.b)
		default:
			col.data = append(col.data, cell.s...)
			col.ends = append(col.ends, len(col.data))
		}
	}
	return ""
}

func (e *ParquetEncoder) colNames() string {
	var b []byte
	for i, c := range e.cols {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c.Name...)
	}
	return string(b)
}

var kindNames = [...]string{kindNull: "null", kindBool: "a boolean", kindNumber: "a number",
	kindString: "a string", kindRaw: "an object or array"}

// convert sets cell from f for col's type, or says why it does not fit.
func convert(col *pqColumn, f *field, cell *pqCell) string {
	want := func() string {
		return fmt.Sprintf("is %s, the output schema says %s", kindNames[f.kind], col.Type)
	}
	switch col.Type {
	case TypeString:
		switch {
		case f.kind == kindString:
			cell.s = f.str
		case col.anyText:
			cell.s = f.raw
		default:
			return want()
		}
	case TypeJSON:
		cell.s = f.raw
	case TypeBool:
		if f.kind != kindBool {
			return want()
		}
		cell.b = f.b
	case TypeDouble:
		if f.kind != kindNumber {
			return want()
		}
		v, err := strconv.ParseFloat(string(f.raw), 64)
		if err != nil { // out of range: ParseFloat returns ±Inf with an error
			v = math.Copysign(math.Inf(1), v)
		}
		cell.f = v
	case TypeInt64, TypeTimestamp:
		switch f.kind {
		case kindNumber:
			v, ok := parseInt(f.raw)
			if !ok {
				return fmt.Sprintf("%s is not an integer in the int64 range, the output schema says %s", f.raw, col.Type)
			}
			cell.i = v
		case kindString:
			if col.Type != TypeTimestamp {
				return want()
			}
			t, err := time.Parse(time.RFC3339Nano, string(f.str))
			if err != nil {
				return fmt.Sprintf("%q is not unix milliseconds or an RFC 3339 time", f.str)
			}
			cell.i = t.UnixMilli()
		default:
			return want()
		}
	}
	return ""
}

// parseInt parses a JSON number that must be integral ("12", "1e+15").
func parseInt(raw []byte) (int64, bool) {
	if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// physical returns the Parquet physical type of a column type.
func physical(t ColumnType) int32 {
	switch t {
	case TypeInt64, TypeTimestamp:
		return pqInt64
	case TypeDouble:
		return pqDouble
	case TypeBool:
		return pqBoolean
	}
	return pqByteArray
}

func valueEncoding(t ColumnType) int32 {
	if t == TypeInt64 || t == TypeTimestamp {
		return pqDelta
	}
	return pqPlain
}

// writeChunk appends the pages of column c (n rows) to the file.
func (e *ParquetEncoder) writeChunk(c *pqColumn, n int) {
	pageSize := e.PageSize
	if pageSize <= 0 {
		pageSize = 1 << 20
	}
	ch := pqChunk{offset: int64(len(e.file))}
	vi := 0 // index of the first value of the page
	for row := 0; row < n; {
		// Rows of this page: up to pageSize bytes of values.
		end, nv, size := row, 0, 0
		for end < n && (size < pageSize || end == row) {
			if c.Optional && c.defs[end] == 0 {
				end++
				continue
			}
			switch c.Type {
			case TypeBool:
				size++
			case TypeString, TypeJSON:
				size += 4 + c.ends[vi+nv] - c.start(vi+nv)
			default:
				size += 8
			}
			end++
			nv++
		}
		e.page = e.page[:0]
		if c.Optional {
			e.page = appendLevels(e.page, c.defs[row:end])
		}
		switch c.Type {
		case TypeInt64, TypeTimestamp:
			e.page = appendDeltaBinaryPacked(e.page, c.ints[vi:vi+nv])
		case TypeDouble:
			for _, v := range c.dbls[vi : vi+nv] {
				e.page = binary.LittleEndian.AppendUint64(e.page, math.Float64bits(v))
			}
		case TypeBool:
			e.page = appendBools(e.page, c.bools[vi:vi+nv])
		default:
			for k := vi; k < vi+nv; k++ {
				v := c.data[c.start(k):c.ends[k]]
				e.page = binary.LittleEndian.AppendUint32(e.page, uint32(len(v)))
				e.page = append(e.page, v...)
			}
		}
		e.comp = e.zenc.EncodeAll(e.page, e.comp[:0])
		start := len(e.file)
		e.tw.reset(e.file)
		e.tw.begin()
		e.tw.i32(1, 0) // DATA_PAGE
		e.tw.i32(2, int32(len(e.page)))
		e.tw.i32(3, int32(len(e.comp)))
		e.tw.structField(5) // DataPageHeader
		e.tw.i32(1, int32(end-row))
		e.tw.i32(2, valueEncoding(c.Type))
		e.tw.i32(3, pqRLE)
		e.tw.i32(4, pqRLE)
		e.tw.end()
		e.tw.end()
		e.file = e.tw.b
		hdr := len(e.file) - start
		e.file = append(e.file, e.comp...)
		ch.uncomp += int64(hdr + len(e.page))
		ch.comp += int64(hdr + len(e.comp))
		row, vi = end, vi+nv
	}
	ch.hasStats, ch.min, ch.max = c.stats()
	e.chunks = append(e.chunks, ch)
}

func (c *pqColumn) start(i int) int {
	if i == 0 {
		return 0
	}
	return c.ends[i-1]
}

// maxStatBytes bounds the byte-array min/max kept in the statistics.
const maxStatBytes = 256

// stats returns the PLAIN-encoded min and max of the column's values, in
// memory of their own (byte arrays longer than maxStatBytes: none).
func (c *pqColumn) stats() (bool, []byte, []byte) {
	switch c.Type {
	case TypeInt64, TypeTimestamp:
		if len(c.ints) == 0 {
			return false, nil, nil
		}
		lo, hi := c.ints[0], c.ints[0]
		for _, v := range c.ints {
			lo, hi = min(lo, v), max(hi, v)
		}
		return true, binary.LittleEndian.AppendUint64(nil, uint64(lo)), binary.LittleEndian.AppendUint64(nil, uint64(hi))
	case TypeDouble:
		if len(c.dbls) == 0 {
			return false, nil, nil
		}
		lo, hi := c.dbls[0], c.dbls[0]
		for _, v := range c.dbls {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo == 0 { // the spec: a zero min is written as -0, a zero max as +0
			lo = math.Copysign(0, -1)
		}
		if hi == 0 {
			hi = 0
		}
		return true, binary.LittleEndian.AppendUint64(nil, math.Float64bits(lo)), binary.LittleEndian.AppendUint64(nil, math.Float64bits(hi))
	case TypeBool:
		if len(c.bools) == 0 {
			return false, nil, nil
		}
		lo, hi := byte(1), byte(0)
		for _, v := range c.bools {
			if v {
				hi = 1
			} else {
				lo = 0
			}
		}
		return true, []byte{lo}, []byte{hi}
	}
	if c.Type == TypeJSON || len(c.ends) == 0 { // JSON has no useful order
		return false, nil, nil
	}
	lo, hi := c.data[:c.ends[0]], c.data[:c.ends[0]]
	for k := range c.ends {
		v := c.data[c.start(k):c.ends[k]]
		if bytes.Compare(v, lo) < 0 {
			lo = v
		}
		if bytes.Compare(v, hi) > 0 {
			hi = v
		}
	}
	if len(lo) > maxStatBytes || len(hi) > maxStatBytes {
		return false, nil, nil
	}
	return true, bytes.Clone(lo), bytes.Clone(hi)
}

// appendLevels appends definition levels (bit width 1) in the RLE/bit-packed
// hybrid encoding with its 4-byte length prefix: one RLE run when every row
// has a value, else bit-packed groups of 8.
func appendLevels(dst []byte, defs []byte) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	all := true
	for _, d := range defs {
		if d == 0 {
			all = false
			break
		}
	}
	if all {
		dst = binary.AppendUvarint(dst, uint64(len(defs))<<1)
		dst = append(dst, 1)
	} else {
		groups := (len(defs) + 7) / 8
		dst = binary.AppendUvarint(dst, uint64(groups)<<1|1)
		for g := 0; g < groups; g++ {
			var b byte
			for k := 0; k < 8 && g*8+k < len(defs); k++ {
				b |= defs[g*8+k] << k
			}
			dst = append(dst, b)
		}
	}
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst
}

// appendBools appends PLAIN booleans: one bit each, least significant first.
func appendBools(dst []byte, vs []bool) []byte {
	for i := 0; i < len(vs); i += 8 {
		var b byte
		for k := 0; k < 8 && i+k < len(vs); k++ {
			if vs[i+k] {
				b |= 1 << k
			}
		}
		dst = append(dst, b)
	}
	return dst
}

// DELTA_BINARY_PACKED layout: blocks of 128 values in 4 miniblocks of 32.
const (
	deltaBlock = 128
	deltaMinis = 4
	deltaMini  = deltaBlock / deltaMinis
)

// appendDeltaBinaryPacked appends vs in the DELTA_BINARY_PACKED encoding:
// a header (block size, miniblocks per block, count, first value), then per
// block the minimum delta, the bit width of each miniblock and the
// miniblocks, each holding its 32 deltas minus the minimum bit-packed
// (padded with zeros to 32 values). Deltas wrap around like the spec's
// two's-complement arithmetic.
func appendDeltaBinaryPacked(dst []byte, vs []int64) []byte {
	dst = binary.AppendUvarint(dst, deltaBlock)
	dst = binary.AppendUvarint(dst, deltaMinis)
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	if len(vs) == 0 {
		return binary.AppendVarint(dst, 0)
	}
	dst = binary.AppendVarint(dst, vs[0])
	var deltas [deltaBlock]uint64
	for i := 1; i < len(vs); i += deltaBlock {
		n := min(deltaBlock, len(vs)-i)
		minD := int64(math.MaxInt64)
		for k := 0; k < n; k++ {
			d := vs[i+k] - vs[i+k-1]
			deltas[k] = uint64(d)
			minD = min(minD, d)
		}
		for k := 0; k < n; k++ {
			deltas[k] -= uint64(minD)
		}
		clear(deltas[n:])
		dst = binary.AppendVarint(dst, minD)
		widths := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		for m := 0; m*deltaMini < n; m++ {
			var or uint64
			for _, d := range deltas[m*deltaMini : (m+1)*deltaMini] {
				or |= d
			}
			w := uint(bits.Len64(or))
			dst[widths+m] = byte(w)
			dst = packBits(dst, deltas[m*deltaMini:(m+1)*deltaMini], w)
		}
	}
	return dst
}

// packBits appends vs packed w bits each, least significant bit first.
func packBits(dst []byte, vs []uint64, w uint) []byte {
	if w == 0 {
		return dst
	}
	var acc uint64
	var n uint // bits in acc
	for _, v := range vs {
		acc |= v << n
		if n+w >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			acc = v >> (64 - n) // Go: a shift by 64 gives 0
			n = n + w - 64
		} else {
			n += w
		}
	}
	for ; n > 0; n -= min(n, 8) {
		dst = append(dst, byte(acc))
		acc >>= 8
	}
	return dst
}

func (e *ParquetEncoder) schemaJSON(s *Schema) ([]byte, error) {
	if s != nil {
		return s.MarshalJSON()
	}
	cols := make([]Column, 0, len(e.cols))
	for _, c := range e.cols {
		if c.Name != e.IDColumn || e.IDColumn == "" {
			cols = append(cols, c.Column)
		}
	}
	return (&Schema{cols: cols}).MarshalJSON() // inferred names need not be valid schema names ("")
}

// writeFooter appends FileMetaData, its length and the magic.
func (e *ParquetEncoder) writeFooter(nrows int, schemaJSON []byte, schema *Schema) {
	start := len(e.file)
	w := &e.tw
	w.reset(e.file)
	w.begin()
	w.i32(1, 1) // version
	w.list(2, tStruct, len(e.cols)+1)
	w.begin() // root
	w.str(4, "schema")
	w.i32(5, int32(len(e.cols)))
	w.end()
	for i := range e.cols {
		c := &e.cols[i]
		w.begin()
		w.i32(1, physical(c.Type))
		rep := int32(pqRequired)
		if c.Optional {
			rep = pqOptional
		}
		w.i32(3, rep)
		w.str(4, c.Name)
		switch c.Type {
		case TypeString:
			w.i32(6, pqUTF8)
			w.structField(10)
			w.structField(1) // STRING
			w.end()
			w.end()
		case TypeJSON:
			w.i32(6, pqJSON)
			w.structField(10)
			w.structField(12) // JSON
			w.end()
			w.end()
		case TypeTimestamp:
			w.i32(6, pqTimestampMillis)
			w.structField(10)
			w.structField(8) // TIMESTAMP
			w.boolean(1, true)
			w.structField(2) // unit
			w.structField(1) // MILLIS
			w.end()
			w.end()
			w.end()
			w.end()
		}
		w.end()
	}
	w.i64(3, int64(nrows))
	if len(e.chunks) == 0 {
		w.list(4, tStruct, 0)
	} else {
		w.list(4, tStruct, 1)
		w.begin() // RowGroup
		w.list(1, tStruct, len(e.chunks))
		var total, totalComp int64
		for i := range e.chunks {
			ch, c := &e.chunks[i], &e.cols[i]
			total += ch.uncomp
			totalComp += ch.comp
			w.begin() // ColumnChunk
			w.i64(2, ch.offset)
			w.structField(3) // ColumnMetaData
			w.i32(1, physical(c.Type))
			if c.Optional {
				w.list(2, tI32, 2)
				w.listI32(pqRLE)
			} else {
				w.list(2, tI32, 1)
			}
			w.listI32(valueEncoding(c.Type))
			w.list(3, tBinary, 1)
			w.listString(c.Name)
			w.i32(4, pqZstd)
			w.i64(5, int64(nrows))
			w.i64(6, ch.uncomp)
			w.i64(7, ch.comp)
			w.i64(9, ch.offset)
			w.structField(12) // Statistics
			w.i64(3, int64(c.nulls))
			if ch.hasStats {
				w.binary(5, ch.max)
				w.binary(6, ch.min)
			}
			w.end()
			w.end()
			w.end()
		}
		w.i64(2, total)
		w.i64(3, int64(nrows))
		w.i64(5, e.chunks[0].offset)
		w.i64(6, totalComp)
		w.end()
	}
	w.list(5, tStruct, 2) // key_value_metadata
	w.begin()
	w.str(1, "edged.schema")
	w.binary(2, schemaJSON)
	w.end()
	w.begin()
	w.str(1, "edged.schema_version")
	version := "inferred"
	if schema != nil {
		version = schema.Version()
	}
	w.str(2, version)
	w.end()
	w.str(6, "edged")
	w.list(7, tStruct, len(e.cols)) // column_orders: TypeDefinedOrder for every column
	for range e.cols {
		w.begin()
		w.structField(1)
		w.end()
		w.end()
	}
	w.end()
	e.file = w.b
	e.file = binary.LittleEndian.AppendUint32(e.file, uint32(len(e.file)-start))
	e.file = append(e.file, "PAR1"...)
}
