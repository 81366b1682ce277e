package engine

import "fmt"

// StaticJoin enriches each record with the rows of a static table (an inner
// join within each batch): every record whose keyField equals a row's
// tableKeyField is emitted once per such row, in input then table order. The
// output has the input fields followed by the table fields; a table field
// whose name clashes with an input field is renamed "t.<name>". rows are
// copied at construction.
func StaticJoin(keyField string, tableSchema *Schema, rows [][]Value, tableKeyField string) Operator {
	return newStaticJoin(keyField, tableSchema, rows, tableKeyField, false)
}

// StaticLeftJoin is StaticJoin that also keeps the records with no matching
// row, with the table fields null (a left outer join).
func StaticLeftJoin(keyField string, tableSchema *Schema, rows [][]Value, tableKeyField string) Operator {
	return newStaticJoin(keyField, tableSchema, rows, tableKeyField, true)
}

func newStaticJoin(keyField string, tableSchema *Schema, rows [][]Value, tableKeyField string, left bool) Operator {
	o := &staticJoinOp{key: keyField, ts: tableSchema, tkey: tableKeyField, left: left}
	for _, r := range rows {
		o.rows = append(o.rows, append([]Value(nil), r...))
	}
	return o
}

type staticJoinOp struct {
	key, tkey string
	ts        *Schema
	rows      [][]Value
	ki, width int
	left      bool
	index     map[string][]int32
	buf       []byte
}

func (o *staticJoinOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	var err error
	if o.ki, err = in[0].Lookup(o.key); err != nil {
		return nil, fmt.Errorf("staticJoin key: %w", err)
	}
	if o.ts == nil {
		return nil, fmt.Errorf("staticJoin: no table schema")
	}
	tk, err := o.ts.Lookup(o.tkey)
	if err != nil {
		return nil, fmt.Errorf("staticJoin table key: %w", err)
	}
	if kk, tkk := in[0].Field(o.ki).Kind, o.ts.Field(tk).Kind; kk != tkk {
		return nil, fmt.Errorf("staticJoin: field %q is a %s but table key %q is a %s", o.key, kk, o.tkey, tkk)
	}
	fields := in[0].Fields()
	o.width = len(fields)
	for _, f := range o.ts.Fields() {
		if _, dup := in[0].Index(f.Name); dup {
			f.Name = "t." + f.Name
		}
		fields = append(fields, f)
	}
	o.index = make(map[string][]int32, len(o.rows))
	for i, r := range o.rows {
		if len(r) != o.ts.Len() {
			return nil, fmt.Errorf("staticJoin: table row %d has %d values, table schema %d", i, len(r), o.ts.Len())
		}
		k := string(r[tk].AppendKey(nil))
		o.index[k] = append(o.index[k], int32(i))
	}
	return NewSchema(fields...)
}

func (o *staticJoinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		o.buf = r.Vals[o.ki].AppendKey(o.buf[:0])
		rows := o.index[string(o.buf)]
		if len(rows) == 0 {
			if o.left {
				out.AppendCopy(r) // the table fields stay null
			} else {
				ep.Stats.Unmatched++
			}
			continue
		}
		for _, ri := range rows {
			d := out.Append()
			copy(d.Vals, r.Vals)
			copy(d.Vals[o.width:], o.rows[ri])
			d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
		}
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}

// ChunkSafe: each record is joined against the static table alone.
func (o *staticJoinOp) ChunkSafe() bool { return true }
