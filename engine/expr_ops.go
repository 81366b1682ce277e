package engine

import (
	"errors"
	"fmt"
)

// ErrMissingField is the reason Require gives for a record that lacks a
// required field; the dead-letter reason reads `missing field "temp"`.
var ErrMissingField = errors.New("missing field")

// NamedExpr is an output column computed by an expression.
type NamedExpr struct {
	Name string // output field name
	Expr string // expression source, see Expr
}

// FilterExpr keeps the records for which the bool expression src is true (null
// counts as false), in input order. src is compiled in Open against the input
// schema; the output schema is the input schema.
func FilterExpr(src string) Operator { return &filterExprOp{src: src} }

type filterExprOp struct {
	src string
	e   *Expr
}

func (o *filterExprOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	e, err := CompileExpr(o.src, in[0])
	if err != nil {
		return nil, err
	}
	if e.Kind() != KindBool {
		return nil, &ExprError{Expr: o.src, Msg: "filter condition must be bool, have " + e.Kind().String(), kind: ErrType}
	}
	o.e = e
	return in[0], nil
}

func (o *filterExprOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	pred := o.e.pred
	for i := range b.Recs {
		r := &b.Recs[i]
		if v, ok := pred(r); ok && v {
			out.AppendCopy(r)
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// compiledCol is one output column of a projection.
type compiledCol struct {
	out int // position in the output record
	set setFn
}

// compileCols compiles named expressions against s. It checks names are set
// and unique.
func compileCols(cols []NamedExpr, s *Schema) ([]*Expr, error) {
	seen := make(map[string]bool, len(cols))
	es := make([]*Expr, len(cols))
	for i, c := range cols {
		if c.Name == "" {
			return nil, fmt.Errorf("field %d (%q): empty name", i+1, c.Expr)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("field %q: declared twice", c.Name)
		}
		seen[c.Name] = true
		e, err := CompileExpr(c.Expr, s)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", c.Name, err)
		}
		es[i] = e
	}
	return es, nil
}

// Project computes one output record per input record with the given columns
// and only those; each column's kind is its expression's static kind. Time, Key
// and Origin are kept.
func Project(cols []NamedExpr) Operator { return &projectOp{cols: cols} }

// Extend keeps every input field and adds the given columns; a column named like
// an input field replaces it in place (possibly with another kind). All
// expressions read the input record, so `temp = temp * 2, t2 = temp` gives t2
// the original temp.
func Extend(cols []NamedExpr) Operator { return &projectOp{cols: cols, extend: true} }

type projectOp struct {
	cols   []NamedExpr
	extend bool
	s      *Schema
	ecols  []compiledCol
	keep   bool // extend: copy the input values first
}

func (o *projectOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	es, err := compileCols(o.cols, in[0])
	if err != nil {
		return nil, err
	}
	var fields []Field
	var ints []bool
	if o.extend {
		fields = in[0].Fields()
		for j := range fields {
			ints = append(ints, in[0].Integer(j))
		}
		o.keep = true
	}
	o.ecols = o.ecols[:0]
	for i, c := range o.cols {
		f := Field{Name: c.Name, Kind: es[i].Kind()}
		// A plain reference to an integer field stays an integer.
		isInt := es[i].node.plain && in[0].Integer(es[i].node.fieldIdx)
		pos := -1
		if o.extend {
			if j, ok := in[0].Index(c.Name); ok {
				pos = j
				fields[j], ints[j] = f, isInt
			}
		}
		if pos < 0 {
			pos = len(fields)
			fields = append(fields, f)
			ints = append(ints, isInt)
		}
		o.ecols = append(o.ecols, compiledCol{out: pos, set: es[i].node.setf()})
	}
	s, err := NewSchema(fields...)
	if err != nil {
		return nil, err
	}
	o.s = s.withInts(ints)
	return o.s, nil
}

func (o *projectOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		d := out.Append()
		d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
		if o.keep {
			copy(d.Vals, r.Vals)
		}
		for _, c := range o.ecols {
			c.set(r, &d.Vals[c.out])
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// FlatMapExprs turns each input record into len(rows) records, in row order,
// the j-th computed by the expressions of rows[j]. Every row must name the same
// columns in the same order, with the same kinds (a null literal fits any kind).
// It turns one reading with temp and hum into two metric rows:
//
//	FlatMapExprs([][]NamedExpr{
//		{{"metric", "'temp'"}, {"value", "temp"}},
//		{{"metric", "'hum'"}, {"value", "hum"}},
//	})
func FlatMapExprs(rows [][]NamedExpr) Operator { return &flatMapExprOp{rows: rows} }

type flatMapExprOp struct {
	rows [][]NamedExpr
	s    *Schema
	vals [][]setFn
}

func (o *flatMapExprOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if len(o.rows) == 0 {
		return nil, errors.New("flatMap: no rows")
	}
	var fields []Field
	o.vals = make([][]setFn, len(o.rows))
	for j, row := range o.rows {
		es, err := compileCols(row, in[0])
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", j+1, err)
		}
		if j == 0 {
			fields = make([]Field, len(row))
			for i, c := range row {
				fields[i] = Field{Name: c.Name, Kind: es[i].Kind()}
			}
		} else if len(row) != len(fields) {
			return nil, fmt.Errorf("row %d has %d columns, row 1 has %d", j+1, len(row), len(fields))
		}
		o.vals[j] = make([]setFn, len(row))
		for i, c := range row {
			if c.Name != fields[i].Name {
				return nil, fmt.Errorf("row %d: column %d is %q, row 1 has %q", j+1, i+1, c.Name, fields[i].Name)
			}
			k := es[i].Kind()
			switch {
			case fields[i].Kind == KindNull:
				fields[i].Kind = k
			case k != KindNull && k != fields[i].Kind:
				return nil, fmt.Errorf("row %d: column %q is %s, an earlier row has %s", j+1, c.Name, k, fields[i].Kind)
			}
			o.vals[j][i] = es[i].node.setf()
		}
	}
	s, err := NewSchema(fields...)
	if err != nil {
		return nil, err
	}
	o.s = s
	return s, nil
}

func (o *flatMapExprOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		for _, row := range o.vals {
			d := out.Append()
			d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
			for j, f := range row {
				f(r, &d.Vals[j])
			}
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// KeyBy sets each record's Key to the text of the given fields joined with "/"
// (a null field contributes an empty part) and keeps the fields. A single string
// field is used as is; composite keys are interned so that a steady set of keys
// costs no allocation per record.
func KeyBy(fields ...string) Operator { return &keyByOp{fields: fields} }

type keyByOp struct {
	fields []string
	idx    []int
	single bool
	buf    []byte
	intern map[string]string
}

// maxInternedKeys bounds KeyBy's key cache; it is cleared when full.
const maxInternedKeys = 4096

func (o *keyByOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if len(o.fields) == 0 {
		return nil, errors.New("keyBy: no key fields")
	}
	o.idx = make([]int, len(o.fields))
	for i, f := range o.fields {
		j, err := in[0].Lookup(f)
		if err != nil {
			return nil, fmt.Errorf("key field: %w", err)
		}
		o.idx[i] = j
	}
	o.single = len(o.idx) == 1 && in[0].Field(o.idx[0]).Kind == KindString
	o.intern = make(map[string]string)
	return in[0], nil
}

func (o *keyByOp) key(r *Record) string {
	if o.single {
		return r.Vals[o.idx[0]].Str // "" when null
	}
	b := o.buf[:0]
	for i, j := range o.idx {
		if i > 0 {
			b = append(b, '/')
		}
		if v := r.Vals[j]; v.Kind != KindNull {
			b = v.AppendText(b)
		}
	}
	o.buf = b
	if k, ok := o.intern[string(b)]; ok {
		return k
	}
	if len(o.intern) >= maxInternedKeys {
		clear(o.intern)
	}
	k := string(b)
	o.intern[k] = k
	return k
}

func (o *keyByOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		d := out.AppendCopy(&b.Recs[i])
		d.Key = o.key(d)
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// Require passes the records whose given fields are all non-null and sends the
// others to the dead-letter store with the reason `missing field "temp"` (the
// first missing field). The output schema is the input schema.
func Require(fields ...string) Operator { return &requireOp{fields: fields} }

type requireOp struct {
	fields  []string
	idx     []int
	reasons []error
	s       *Schema
}

func (o *requireOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if len(o.fields) == 0 {
		return nil, errors.New("require: no fields")
	}
	o.idx = make([]int, len(o.fields))
	o.reasons = make([]error, len(o.fields))
	for i, f := range o.fields {
		j, err := in[0].Lookup(f)
		if err != nil {
			return nil, fmt.Errorf("required field: %w", err)
		}
		o.idx[i] = j
		o.reasons[i] = fmt.Errorf("%w %q", ErrMissingField, f)
	}
	o.s = in[0]
	return in[0], nil
}

func (o *requireOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
next:
	for i := range b.Recs {
		r := &b.Recs[i]
		for j, k := range o.idx {
			if r.Vals[k].Kind == KindNull {
				ep.DeadLetter(r, o.s, o.reasons[j])
				continue next
			}
		}
		out.AppendCopy(r)
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// The expression operators work record by record: ChunkSafe.
func (o *filterExprOp) ChunkSafe() bool  { return true }
func (o *projectOp) ChunkSafe() bool     { return true }
func (o *flatMapExprOp) ChunkSafe() bool { return true }
func (o *keyByOp) ChunkSafe() bool       { return true }
func (o *requireOp) ChunkSafe() bool     { return true }
