package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// countKey is the state of one key of a count window: a ring of panes of
// gcd(Count, CountSlide) records each.
type countKey struct {
	seen     int64
	st       accStore // one slot per wpane
	min, max []int64  // event-time range per wpane
	dirty    bool
}

// countWinOp implements count windows (WindowConfig.Count): per key, every
// CountSlide records it emits the aggregate of the last Count records (fewer
// before Count records were seen). Output rows: key fields, window_start (the
// smallest event time in the window), window_end (the largest + 1 ms), then the
// aggregates. Count windows do not use the watermark; the output mode is
// ignored (each window is emitted once, when it fills).
type countWinOp struct {
	grouping
	cfg   WindowConfig
	keys  []*countKey
	order []int32 // key ids in first-seen order, for StateRows and queries
	g     int64
	panes int64
	slide int64
	dirty []int32
	scr   accStore
	kbuf  []byte
	vbuf  []byte
}

func (o *countWinOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	c := &o.cfg
	o.slide = c.CountSlide
	if o.slide <= 0 {
		o.slide = c.Count
	}
	if o.slide > c.Count {
		return nil, fmt.Errorf("count window slide %d: must be <= count %d", o.slide, c.Count)
	}
	o.g = gcd(c.Count, o.slide)
	o.panes = c.Count / o.g
	start, end := c.boundFields("window_start", "window_end")
	if err := o.openGrouping(in[0], c.Keys, c.Aggs, start, end); err != nil {
		return nil, err
	}
	o.scr.w = o.plan.ncol()
	return o.out, nil
}

func (o *countWinOp) key(id int32) *countKey {
	for int(id) >= len(o.keys) {
		o.keys = append(o.keys, nil)
	}
	k := o.keys[id]
	if k == nil {
		k = &countKey{min: make([]int64, o.panes), max: make([]int64, o.panes)}
		k.st.w = o.plan.ncol()
		for i := int64(0); i < o.panes; i++ {
			k.st.newSlot(o.plan)
		}
		o.keys[id] = k
		o.dict.ref(id)
		o.order = append(o.order, id)
	}
	return k
}

func (o *countWinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	n := 0
	for i := range b.Recs {
		r := &b.Recs[i]
		if err := o.plan.check(b.Schema, r); err != nil {
			ep.DeadLetter(r, b.Schema, err)
			continue
		}
		id := o.dict.lookup(r, o.keyIdx)
		k := o.key(id)
		p := int32((k.seen / o.g) % o.panes)
		if k.seen%o.g == 0 {
			clearSlot(o.plan, &k.st, p)
			k.min[p], k.max[p] = math.MaxInt64, math.MinInt64
		}
		o.plan.add(&k.st, p, r)
		k.min[p], k.max[p] = min(k.min[p], r.Time), max(k.max[p], r.Time)
		k.seen++
		if !k.dirty {
			k.dirty = true
			o.dirty = append(o.dirty, id)
		}
		if k.seen%o.slide == 0 {
			o.emit(out, id, k)
			n++
		}
	}
	ep.Stats.add(len(b.Recs), n)
	return nil
}

// emit appends the window of the last Count records of k.
func (o *countWinOp) emit(out *Batch, id int32, k *countKey) {
	o.scr.reset()
	d := o.scr.newSlot(o.plan)
	full := k.seen / o.g // complete panes so far
	np := min(full, o.panes)
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for j := full - np; j < full; j++ {
		p := int32(j % o.panes)
		o.plan.merge(&o.scr, d, &k.st, p)
		lo, hi = min(lo, k.min[p]), max(hi, k.max[p])
	}
	r := out.Append()
	j := copy(r.Vals, o.dict.vals[id])
	r.Vals[j], r.Vals[j+1] = Time(lo), Time(hi+1)
	j += 2
	for i := range o.plan.fn {
		r.Vals[j+i] = o.plan.result(i, &o.scr, d)
	}
	r.Time = hi
}

// SaveState implements Stateful: one entry per changed key (its ring of panes).
func (o *countWinOp) SaveState(w *StateWriter) error {
	for _, id := range o.dirty {
		k := o.keys[id]
		k.dirty = false
		o.kbuf = append(append(o.kbuf[:0], 'c'), o.dict.enc[id]...)
		v := AppendVarint(o.vbuf[:0], k.seen)
		for p := int32(0); p < int32(o.panes); p++ {
			v = AppendVarint(v, k.min[p])
			v = AppendVarint(v, k.max[p])
			v = o.plan.appendAccs(v, &k.st, p)
		}
		o.vbuf = v
		w.Put(o.kbuf, v)
	}
	o.dirty = o.dirty[:0]
	return nil
}

// LoadState implements Stateful.
func (o *countWinOp) LoadState(key, val []byte) error {
	if len(key) < 1 || key[0] != 'c' {
		return ErrCorruptState
	}
	id, err := o.dict.insertEncoded(key[1:], len(o.keyIdx))
	if err != nil {
		return err
	}
	k := o.key(id)
	b := val
	if k.seen, b, err = ReadVarint(b); err != nil {
		return err
	}
	for p := int32(0); p < int32(o.panes); p++ {
		if k.min[p], b, err = ReadVarint(b); err != nil {
			return err
		}
		if k.max[p], b, err = ReadVarint(b); err != nil {
			return err
		}
		if b, err = o.plan.readAccs(b, &k.st, p); err != nil {
			return err
		}
	}
	return nil
}

// StateRows implements Stateful: the number of keys with a count window.
func (o *countWinOp) StateRows() int { return len(o.order) }

// QuerySchema implements Queryable.
func (o *countWinOp) QuerySchema() *Schema { return o.out }

// QueryState implements Queryable: the current (partial) window of every key.
func (o *countWinOp) QueryState(fn func(r *Record) bool) {
	ids := slices.Clone(o.order)
	slices.SortFunc(ids, func(a, b int32) int { return strings.Compare(o.dict.enc[a], o.dict.enc[b]) })
	b := NewBatch(o.out)
	for _, id := range ids {
		k := o.keys[id]
		if k.seen%o.g != 0 {
			// include the partial wpane in the view
			saved := k.seen
			k.seen += o.g - k.seen%o.g
			b.Reset(o.out)
			o.emit(b, id, k)
			k.seen = saved
		} else {
			b.Reset(o.out)
			o.emit(b, id, k)
		}
		if !fn(&b.Recs[0]) {
			return
		}
	}
}
