package engine

import "fmt"

// JoinKind selects which unmatched keys a Join keeps.
type JoinKind uint8

// The join kinds of Spark's pair DStreams.
const (
	InnerJoin      JoinKind = iota // keys present on both sides
	LeftOuterJoin                  // every left record; right null when unmatched
	RightOuterJoin                 // every right record; left null when unmatched
	FullOuterJoin                  // both; the missing side null
)

var joinNames = [...]string{"join", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin"}

func (k JoinKind) String() string {
	if int(k) < len(joinNames) {
		return joinNames[k]
	}
	return fmt.Sprintf("JoinKind(%d)", k)
}

// Join joins two keyed streams within each batch: for every key, every pair
// of a left and a right value. Both inputs must have the fields key and value.
// Output: (key, left, right), in left input order, then (for right and full
// outer joins) the unmatched right records in right input order.
func Join(kind JoinKind, key, value string) Operator {
	return &joinOp{kind: kind, key: key, value: value, d: newKeyDict()}
}

// Cogroup groups two keyed streams within each batch: one row per key seen on
// either side (left keys first, in first-seen order), with the lists of its
// left and right values in input order. Output: (key, left, right).
func Cogroup(key, value string) Operator {
	return &joinOp{cogroup: true, key: key, value: value, d: newKeyDict()}
}

type joinOp struct {
	kind       JoinKind
	cogroup    bool
	key, value string
	lk, lv     int
	rk, rv     int
	d          *keyDict
	// per batch, by key id: head of the chain of right records, stamped
	head    []int32
	stamp   []uint32
	gen     uint32
	next    []int32 // per right record: the next right record of the same key
	matched []bool  // per right record
	order   []int32 // cogroup: key ids in first-seen order
	lists   [][2][]Value
}

func (o *joinOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	var err error
	if o.lk, err = in[0].Lookup(o.key); err != nil {
		return nil, fmt.Errorf("left key: %w", err)
	}
	if o.lv, err = in[0].Lookup(o.value); err != nil {
		return nil, fmt.Errorf("left value: %w", err)
	}
	if o.rk, err = in[1].Lookup(o.key); err != nil {
		return nil, fmt.Errorf("right key: %w", err)
	}
	if o.rv, err = in[1].Lookup(o.value); err != nil {
		return nil, fmt.Errorf("right value: %w", err)
	}
	lk, rk := in[0].Field(o.lv).Kind, in[1].Field(o.rv).Kind
	if o.cogroup {
		lk, rk = KindList, KindList
	}
	return NewSchema(in[0].Field(o.lk), Field{"left", lk}, Field{"right", rk})
}

func (o *joinOp) reset() {
	// The dictionary only lives for one batch.
	clear(o.d.ids)
	o.d.keys, o.d.enc, o.d.refs, o.d.free = o.d.keys[:0], o.d.enc[:0], o.d.refs[:0], o.d.free[:0]
	o.gen++
	if o.gen == 0 {
		clear(o.stamp)
		o.gen = 1
	}
}

func (o *joinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.NoData {
		return nil
	}
	l, r := in[0], in[1]
	o.reset()
	if o.cogroup {
		o.processCogroup(l, r, out)
		ep.Stats.add(l.Len()+r.Len(), out.Len())
		return nil
	}
	o.next = growI32(o.next[:0], r.Len())
	o.matched = growBool(o.matched[:0], r.Len())
	clear(o.matched)
	// Chain right records per key, keeping input order (insert from the back).
	for i := r.Len() - 1; i >= 0; i-- {
		id := o.d.id(r.Recs[i].Vals[o.rk])
		o.head = growI32(o.head, o.d.size())
		o.stamp = growU32(o.stamp, o.d.size())
		if o.stamp[id] != o.gen {
			o.stamp[id] = o.gen
			o.head[id] = -1
		}
		o.next[i] = o.head[id]
		o.head[id] = int32(i)
	}
	for i := range l.Recs {
		lr := &l.Recs[i]
		o.d.buf = lr.Vals[o.lk].AppendKey(o.d.buf[:0])
		id, ok := o.d.ids[string(o.d.buf)]
		if ok && o.stamp[id] == o.gen && o.head[id] >= 0 {
			for j := o.head[id]; j >= 0; j = o.next[j] {
				o.matched[j] = true
				d := out.Append()
				d.Vals[0], d.Vals[1], d.Vals[2] = lr.Vals[o.lk], lr.Vals[o.lv], r.Recs[j].Vals[o.rv]
			}
			continue
		}
		if o.kind == LeftOuterJoin || o.kind == FullOuterJoin {
			d := out.Append()
			d.Vals[0], d.Vals[1] = lr.Vals[o.lk], lr.Vals[o.lv]
		}
	}
	if o.kind == RightOuterJoin || o.kind == FullOuterJoin {
		for j := range r.Recs {
			if !o.matched[j] {
				d := out.Append()
				d.Vals[0], d.Vals[2] = r.Recs[j].Vals[o.rk], r.Recs[j].Vals[o.rv]
			}
		}
	}
	ep.Stats.add(l.Len()+r.Len(), out.Len())
	return nil
}

func (o *joinOp) processCogroup(l, r *Batch, out *Batch) {
	o.order = o.order[:0]
	add := func(b *Batch, ki, vi, side int) {
		for i := range b.Recs {
			id := o.d.id(b.Recs[i].Vals[ki])
			o.stamp = growU32(o.stamp, o.d.size())
			if len(o.lists) < o.d.size() {
				o.lists = append(o.lists, make([][2][]Value, o.d.size()-len(o.lists))...)
			}
			if o.stamp[id] != o.gen {
				o.stamp[id] = o.gen
				o.order = append(o.order, id)
				o.lists[id] = [2][]Value{}
			}
			o.lists[id][side] = append(o.lists[id][side], b.Recs[i].Vals[vi])
		}
	}
	add(l, o.lk, o.lv, 0)
	add(r, o.rk, o.rv, 1)
	for _, id := range o.order {
		d := out.Append()
		d.Vals[0] = o.d.keys[id]
		d.Vals[1] = List(o.lists[id][0]...)
		d.Vals[2] = List(o.lists[id][1]...)
		o.lists[id] = [2][]Value{}
	}
}
