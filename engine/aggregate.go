package engine

import (
	"fmt"
	"slices"
	"strings"
)

// AggregateConfig configures Aggregate.
type AggregateConfig struct {
	Keys []string
	Aggs []AggSpec
	// Mode is OutputUpdate (emit the keys changed by each pass) or
	// OutputComplete (emit every key when ep.Final). Append is rejected: a
	// running aggregate is never final.
	Mode OutputMode
}

// Aggregate keeps running aggregates per key (zero or more key fields), with
// no window and no eviction. Output rows: key fields, then the aggregates.
func Aggregate(cfg AggregateConfig) Operator { return &aggOp{cfg: cfg} }

type aggOp struct {
	grouping
	cfg     AggregateConfig
	st      accStore
	slotOf  []int32 // key id -> slot+1
	keyOf   []int32 // slot -> key id
	dirty   []int32 // slots changed since SaveState
	isDirty []bool
	chg     []int32 // slots changed in this pass
	isChg   []bool
	kbuf    []byte
	vbuf    []byte
}

func (o *aggOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if o.cfg.Mode == OutputAppend {
		return nil, fmt.Errorf("output mode append: a non-windowed aggregate needs update or complete")
	}
	if err := o.openGrouping(in[0], o.cfg.Keys, o.cfg.Aggs); err != nil {
		return nil, err
	}
	o.st.w = o.plan.ncol()
	return o.out, nil
}

func (o *aggOp) slot(id int32) int32 {
	for int(id) >= len(o.slotOf) {
		o.slotOf = append(o.slotOf, 0)
	}
	s := o.slotOf[id] - 1
	if s < 0 {
		s = o.st.newSlot(o.plan)
		o.slotOf[id] = s + 1
		o.keyOf = append(o.keyOf, id)
		o.isDirty = append(o.isDirty, false)
		o.isChg = append(o.isChg, false)
		o.dict.ref(id)
	}
	return s
}

func (o *aggOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		if err := o.plan.check(b.Schema, r); err != nil {
			ep.DeadLetter(r, b.Schema, err)
			continue
		}
		s := o.slot(o.dict.lookup(r, o.keyIdx))
		o.plan.add(&o.st, s, r)
		if !o.isDirty[s] {
			o.isDirty[s] = true
			o.dirty = append(o.dirty, s)
		}
		if !o.isChg[s] {
			o.isChg[s] = true
			o.chg = append(o.chg, s)
		}
	}
	var emit []int32
	switch {
	case o.cfg.Mode == OutputUpdate:
		emit = o.chg
	case ep.Final:
		emit = make([]int32, len(o.keyOf))
		for i := range emit {
			emit[i] = int32(i)
		}
	}
	slices.SortFunc(emit, func(a, b int32) int {
		return strings.Compare(o.dict.enc[o.keyOf[a]], o.dict.enc[o.keyOf[b]])
	})
	for _, s := range emit {
		d := out.Append()
		j := copy(d.Vals, o.dict.vals[o.keyOf[s]])
		for i := range o.plan.fn {
			d.Vals[j+i] = o.plan.result(i, &o.st, s)
		}
		d.Time = ep.Watermark
		if d.Time == NoWatermark {
			d.Time = 0
		}
	}
	for _, s := range o.chg {
		o.isChg[s] = false
	}
	o.chg = o.chg[:0]
	ep.Stats.add(len(b.Recs), len(emit))
	return nil
}

// SaveState implements Stateful: one entry per key changed since the last call.
func (o *aggOp) SaveState(w *StateWriter) error {
	for _, s := range o.dirty {
		o.isDirty[s] = false
		o.kbuf = append(append(o.kbuf[:0], 'k'), o.dict.enc[o.keyOf[s]]...)
		o.vbuf = o.plan.appendAccs(o.vbuf[:0], &o.st, s)
		w.Put(o.kbuf, o.vbuf)
	}
	o.dirty = o.dirty[:0]
	return nil
}

// LoadState implements Stateful.
func (o *aggOp) LoadState(key, val []byte) error {
	if len(key) < 1 || key[0] != 'k' {
		return ErrCorruptState
	}
	id, err := o.dict.insertEncoded(key[1:], len(o.keyIdx))
	if err != nil {
		return err
	}
	_, err = o.plan.readAccs(val, &o.st, o.slot(id))
	return err
}

// StateRows implements Stateful: the number of keys.
func (o *aggOp) StateRows() int { return len(o.keyOf) }

// QuerySchema implements Queryable.
func (o *aggOp) QuerySchema() *Schema { return o.out }

// QueryState implements Queryable: every key with its current aggregates.
func (o *aggOp) QueryState(fn func(r *Record) bool) {
	slots := make([]int32, len(o.keyOf))
	for i := range slots {
		slots[i] = int32(i)
	}
	slices.SortFunc(slots, func(a, b int32) int {
		return strings.Compare(o.dict.enc[o.keyOf[a]], o.dict.enc[o.keyOf[b]])
	})
	b := NewBatch(o.out)
	for _, s := range slots {
		b.Reset(o.out)
		d := b.Append()
		j := copy(d.Vals, o.dict.vals[o.keyOf[s]])
		for i := range o.plan.fn {
			d.Vals[j+i] = o.plan.result(i, &o.st, s)
		}
		if !fn(d) {
			return
		}
	}
}
