package uplink

import "encoding/binary"

// Thrift compact protocol type ids (the subset the Parquet footer needs).
const (
	tTrue   = 1
	tFalse  = 2
	tByte   = 3
	tI32    = 5
	tI64    = 6
	tBinary = 8
	tList   = 9
	tStruct = 12
)

// thriftWriter appends the Thrift compact encoding of structs to b. Callers
// write fields in increasing id order inside each struct; begin/end calls
// nest. It is the writing half of the protocol only, enough for Parquet's
// FileMetaData and PageHeader.
type thriftWriter struct {
	b     []byte
	last  int16   // id of the last field written in the current struct
	stack []int16 // last of the enclosing structs
}

func (w *thriftWriter) reset(b []byte) {
	w.b, w.last, w.stack = b, 0, w.stack[:0]
}

func (w *thriftWriter) fieldHeader(id int16, typ byte) {
	if d := id - w.last; d > 0 && d <= 15 {
		w.b = append(w.b, byte(d)<<4|typ)
	} else {
		w.b = append(w.b, typ)
		w.b = binary.AppendVarint(w.b, int64(id))
	}
	w.last = id
}

func (w *thriftWriter) i32(id int16, v int32) {
	w.fieldHeader(id, tI32)
	w.b = binary.AppendVarint(w.b, int64(v))
}

func (w *thriftWriter) i64(id int16, v int64) {
	w.fieldHeader(id, tI64)
	w.b = binary.AppendVarint(w.b, v)
}

func (w *thriftWriter) i8(id int16, v int8) {
	w.fieldHeader(id, tByte)
	w.b = append(w.b, byte(v))
}

func (w *thriftWriter) boolean(id int16, v bool) {
	if v {
		w.fieldHeader(id, tTrue)
	} else {
		w.fieldHeader(id, tFalse)
	}
}

func (w *thriftWriter) binary(id int16, v []byte) {
	w.fieldHeader(id, tBinary)
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}

func (w *thriftWriter) str(id int16, v string) {
	w.fieldHeader(id, tBinary)
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}

// structField opens a struct-valued field; close it with end.
func (w *thriftWriter) structField(id int16) {
	w.fieldHeader(id, tStruct)
	w.begin()
}

// begin opens a struct that is a list element (or the top-level struct).
func (w *thriftWriter) begin() {
	w.stack = append(w.stack, w.last)
	w.last = 0
}

// end writes the stop byte of the current struct and returns to its parent.
func (w *thriftWriter) end() {
	w.b = append(w.b, 0)
	w.last = w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
}

// list writes a list field header for n elements of type elem; the caller
// then writes the elements (listI32, listBinary, or begin/end per struct).
func (w *thriftWriter) list(id int16, elem byte, n int) {
	w.fieldHeader(id, tList)
	if n < 15 {
		w.b = append(w.b, byte(n)<<4|elem)
	} else {
		w.b = append(w.b, 0xf0|elem)
		w.b = binary.AppendUvarint(w.b, uint64(n))
	}
}

func (w *thriftWriter) listI32(v int32) { w.b = binary.AppendVarint(w.b, int64(v)) }

func (w *thriftWriter) listString(v string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}
