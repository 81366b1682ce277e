package engine

import "fmt"

// Filter keeps the records for which pred is true, in input order.
func Filter(pred func(r *Record) bool) Operator { return &filterOp{pred: pred} }

type filterOp struct {
	pred func(r *Record) bool
}

func (o *filterOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	return in[0], nil
}

func (o *filterOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		if o.pred(&b.Recs[i]) {
			out.AppendCopy(&b.Recs[i])
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// Map transforms each record into one record of schema s. fn fills dst (whose
// fields start null; Time, Key and Origin start as the input's). Order is kept.
func Map(s *Schema, fn func(src, dst *Record)) Operator { return &mapOp{s: s, fn: fn} }

type mapOp struct {
	s  *Schema
	fn func(src, dst *Record)
}

func (o *mapOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	return o.s, nil
}

func (o *mapOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		d := out.Append()
		d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
		o.fn(r, d)
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// FlatMap turns each record into zero or more records of schema s: fn appends
// them to out (with out.Append) in the order they should appear.
func FlatMap(s *Schema, fn func(src *Record, out *Batch)) Operator {
	return &flatMapOp{s: s, fn: fn}
}

type flatMapOp struct {
	s  *Schema
	fn func(src *Record, out *Batch)
}

func (o *flatMapOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	return o.s, nil
}

func (o *flatMapOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		n := out.Len()
		o.fn(&b.Recs[i], out)
		for j := n; j < out.Len(); j++ {
			d := &out.Recs[j]
			if d.Time == 0 {
				d.Time = b.Recs[i].Time
			}
			d.Origin = b.Recs[i].Origin
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// Union concatenates its inputs, in input order (first input first). All inputs
// must have the same field names and kinds.
func Union() Operator { return unionOp{} }

type unionOp struct{}

func (unionOp) Open(in []*Schema) (*Schema, error) {
	if len(in) < 1 {
		return nil, fmt.Errorf("union needs at least one input")
	}
	for i := 1; i < len(in); i++ {
		if !SameFields(in[0], in[i]) {
			return nil, fmt.Errorf("union: input %d has fields (%s), input 0 has (%s)", i, in[i], in[0])
		}
	}
	return in[0], nil
}

func (unionOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	n := 0
	for _, b := range in {
		n += len(b.Recs)
		for i := range b.Recs {
			out.AppendCopy(&b.Recs[i])
		}
	}
	ep.Stats.add(n, out.Len())
	return nil
}

// SameFields reports whether two schemas have the same field names and kinds in
// the same order.
func SameFields(a, b *Schema) bool {
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.fields {
		if a.fields[i] != b.fields[i] {
			return false
		}
	}
	return true
}

func wantInputs(in []*Schema, n int) error {
	if len(in) != n {
		return fmt.Errorf("%w: want %d input(s), have %d", ErrInvalidPlan, n, len(in))
	}
	return nil
}

// Per-record operators are ChunkSafe: a record's outputs do not depend on the
// other records of its epoch.
func (o *filterOp) ChunkSafe() bool  { return true }
func (o *mapOp) ChunkSafe() bool     { return true }
func (o *flatMapOp) ChunkSafe() bool { return true }
func (unionOp) ChunkSafe() bool      { return true }
