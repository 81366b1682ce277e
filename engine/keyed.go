package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// errNullValue is the dead-letter reason for a record whose reduced field is null.
var errNullValue = errors.New("null value in reduced field")

// aggSpec configures the keyed aggregation core shared by the per-batch keyed
// operators (ReduceByKey, CountByValue, GroupByKey, Count, Reduce) and the
// pane-sliced processing-time window forms (ReduceByKeyAndWindow, ...).
type aggSpec struct {
	name     string // operator name for errors
	key      string // "" = one global group (no key field in the output)
	value    string // "" = count: each record contributes Number(1)
	fn, inv  ReduceFunc
	filter   func(key, v Value) bool
	group    bool // collect values into a list instead of reducing
	keepZero bool // keyless per-batch: emit identity (count 0) for an empty batch
	outVal   string
	window   int64 // ms; 0 = per batch
	slide    int64 // ms
}

type pane struct {
	t     int64
	ids   []int32
	vals  []Value
	added bool // folded into the inverse state
	saved bool // written by SaveState with its current flags
}

// keyedAgg is the core: it reduces each batch into a pane of per-key partial
// aggregates, keeps the panes of the open windows, and combines them at output
// times (or folds them incrementally into a per-key state with an inverse).
type keyedAgg struct {
	spec    aggSpec
	ki, vi  int
	out     *Schema
	d       *keyDict
	panes   []*pane
	free    []*pane
	evicted []int64
	table   keyTable

	// scratch, indexed by key id
	stamp []uint32
	slot  []int32
	acc   []Value
	order []int32
	gen   uint32
	buf   []byte
}

func newKeyedAgg(s aggSpec) *keyedAgg {
	a := &keyedAgg{spec: s, d: newKeyDict()}
	a.table.d = a.d
	return a
}

func (a *keyedAgg) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	s := a.spec
	if s.window < 0 || s.slide < 0 || (s.window > 0) != (s.slide > 0) {
		return nil, fmt.Errorf("%s: window %dms and slide %dms must both be positive", s.name, s.window, s.slide)
	}
	if s.inv != nil && s.window%s.slide != 0 {
		return nil, fmt.Errorf("%s: with an inverse function the window (%dms) must be a multiple of the slide (%dms)", s.name, s.window, s.slide)
	}
	if !s.group && s.value != "" && s.fn == nil {
		return nil, fmt.Errorf("%s: no reduce function", s.name)
	}
	a.ki, a.vi = -1, -1
	var fields []Field
	if s.key != "" {
		i, err := in[0].Lookup(s.key)
		if err != nil {
			return nil, fmt.Errorf("%s: key: %w", s.name, err)
		}
		a.ki = i
		fields = append(fields, in[0].Field(i))
	}
	vk := KindNumber
	if s.value != "" {
		i, err := in[0].Lookup(s.value)
		if err != nil {
			return nil, fmt.Errorf("%s: value: %w", s.name, err)
		}
		a.vi = i
		vk = in[0].Field(i).Kind
	}
	if s.group {
		vk = KindList
	}
	name := s.outVal
	if name == "" {
		name = "value"
		if s.value != "" {
			name = s.value
		}
	}
	if s.key == name {
		name = "value"
	}
	fields = append(fields, Field{name, vk})
	out, err := NewSchema(fields...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	a.out = out
	return out, nil
}

func (a *keyedAgg) growScratch() {
	n := a.d.size()
	a.stamp = growU32(a.stamp, n)
	a.slot = growI32(a.slot, n)
	a.acc = growValues(a.acc, n)
}

func (a *keyedAgg) nextGen() {
	a.gen++
	if a.gen == 0 { // wrapped: reset stamps
		clear(a.stamp)
		a.gen = 1
	}
}

func (a *keyedAgg) newPane(t int64) *pane {
	if n := len(a.free); n > 0 {
		p := a.free[n-1]
		a.free = a.free[:n-1]
		p.t, p.added, p.saved = t, false, false
		return p
	}
	return &pane{t: t}
}

func (a *keyedAgg) releasePane(p *pane) {
	for _, id := range p.ids {
		a.d.unref(id)
	}
	p.ids = p.ids[:0]
	clear(p.vals)
	p.vals = p.vals[:0]
	a.free = append(a.free, p)
}

// buildPane reduces one batch into a pane.
func (a *keyedAgg) buildPane(ep *Epoch, b *Batch) *pane {
	p := a.newPane(ep.Time)
	a.nextGen()
	for i := range b.Recs {
		r := &b.Recs[i]
		var k, v Value
		if a.ki >= 0 {
			k = r.Vals[a.ki]
		}
		if a.vi >= 0 {
			v = r.Vals[a.vi]
			if v.IsNull() && !a.spec.group {
				ep.DeadLetter(r, b.Schema, fmt.Errorf("%w %q", errNullValue, a.spec.value))
				continue
			}
		} else {
			v = Value{Kind: KindNumber, Num: 1}
		}
		id := a.d.id(k)
		a.growScratch()
		if a.stamp[id] != a.gen {
			a.stamp[id] = a.gen
			a.slot[id] = int32(len(p.ids))
			a.d.ref(id)
			p.ids = append(p.ids, id)
			if a.spec.group {
				if v.Kind == KindList {
					v = List(slices.Clone(v.Items())...)
				}
				v = List(v)
			}
			p.vals = append(p.vals, v)
			continue
		}
		s := a.slot[id]
		if a.spec.group {
			p.vals[s].appendItems(v) // the pane's own list, not handed out yet
		} else {
			p.vals[s] = a.spec.fn(p.vals[s], v)
		}
	}
	return p
}

// combine folds one pane value into the scratch accumulator of id.
func (a *keyedAgg) combine(id int32, v Value) {
	if a.stamp[id] != a.gen {
		a.stamp[id] = a.gen
		a.order = append(a.order, id)
		if a.spec.group {
			v = List(slices.Clone(v.Items())...)
		}
		a.acc[id] = v
		return
	}
	if a.spec.group {
		a.acc[id].appendItems(v.Items()...) // a clone made above, not handed out yet
	} else {
		a.acc[id] = a.spec.fn(a.acc[id], v)
	}
}

func (a *keyedAgg) emit(out *Batch, id int32, v Value) {
	if a.spec.filter != nil && !a.spec.filter(a.d.keys[id], v) {
		return
	}
	r := out.Append()
	if a.ki >= 0 {
		r.Vals[0] = a.d.keys[id]
		r.Vals[1] = v
	} else {
		r.Vals[0] = v
	}
}

func (a *keyedAgg) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.NoData { // processing-time operator: a no-data pass changes nothing
		return nil
	}
	b := in[0]
	t := ep.Time
	p := a.buildPane(ep, b)
	if a.spec.window == 0 { // per batch
		for i, id := range p.ids {
			a.emit(out, id, p.vals[i])
		}
		if len(p.ids) == 0 && a.spec.keepZero {
			out.Append().Vals[0] = Value{Kind: KindNumber}
		}
		a.releasePane(p)
		ep.Stats.add(b.Len(), out.Len())
		return nil
	}
	w, s := a.spec.window, a.spec.slide
	// The first output time at or after t; the pane is kept only if that window
	// (or a later one) covers it: with slide > window some batches are never seen.
	next := ceilDiv(t, s) * s
	if len(p.ids) > 0 && t > next-w {
		a.insertPane(p)
	} else {
		a.releasePane(p)
	}
	if t%s == 0 {
		if a.spec.inv != nil {
			a.emitIncremental(t, out)
		} else {
			a.emitWindow(t, out)
		}
		a.evict(t - w)
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

func (a *keyedAgg) insertPane(p *pane) {
	i := len(a.panes)
	for i > 0 && a.panes[i-1].t > p.t {
		i--
	}
	a.panes = slices.Insert(a.panes, i, p)
}

// evict drops the panes with time <= upTo.
func (a *keyedAgg) evict(upTo int64) {
	n := 0
	for n < len(a.panes) && a.panes[n].t <= upTo {
		p := a.panes[n]
		if p.saved {
			a.evicted = append(a.evicted, p.t)
		}
		a.releasePane(p)
		n++
	}
	if n > 0 {
		m := copy(a.panes, a.panes[n:])
		clear(a.panes[m:])
		a.panes = a.panes[:m]
	}
}

// emitWindow combines the panes in (t-window, t]: O(panes x keys per pane),
// never the raw records.
func (a *keyedAgg) emitWindow(t int64, out *Batch) {
	a.nextGen()
	a.growScratch()
	a.order = a.order[:0]
	for _, p := range a.panes {
		if p.t <= t-a.spec.window || p.t > t {
			continue
		}
		for i, id := range p.ids {
			a.combine(id, p.vals[i])
		}
	}
	for _, id := range a.order {
		a.emit(out, id, a.acc[id])
		a.acc[id] = Value{}
	}
	if len(a.order) == 0 && a.ki < 0 && a.spec.keepZero {
		out.Append().Vals[0] = Value{Kind: KindNumber}
	}
}

// emitIncremental updates the per-key window state: the inverse function
// removes the panes that left the window, the reduce function adds the ones
// that entered it; then the filter (if any) prunes the state, and the whole
// state is emitted. Keys are never removed otherwise.
func (a *keyedAgg) emitIncremental(t int64, out *Batch) {
	w := a.spec.window
	tb := &a.table
	tb.grow()
	// Old values: panes already folded in that are now out of the window.
	a.nextGen()
	a.growScratch()
	a.order = a.order[:0]
	for _, p := range a.panes {
		if p.added && p.t <= t-w {
			for i, id := range p.ids {
				a.combine(id, p.vals[i])
			}
		}
	}
	for _, id := range a.order {
		if tb.has[id] {
			tb.set(id, a.spec.inv(tb.val[id], a.acc[id]))
		}
		a.acc[id] = Value{}
	}
	// New values: panes in the window not yet folded in.
	a.nextGen()
	a.order = a.order[:0]
	for _, p := range a.panes {
		if !p.added && p.t > t-w && p.t <= t {
			p.added, p.saved = true, false
			for i, id := range p.ids {
				a.combine(id, p.vals[i])
			}
		}
	}
	tb.grow()
	for _, id := range a.order {
		if tb.has[id] {
			tb.set(id, a.spec.fn(tb.val[id], a.acc[id]))
		} else {
			tb.set(id, a.acc[id])
		}
		a.acc[id] = Value{}
	}
	tb.order()
	for _, id := range tb.list {
		if !tb.has[id] {
			continue
		}
		v := tb.val[id]
		if a.spec.filter != nil && !a.spec.filter(a.d.keys[id], v) {
			tb.remove(id)
			continue
		}
		r := out.Append()
		if a.ki >= 0 {
			r.Vals[0], r.Vals[1] = a.d.keys[id], v
		} else {
			r.Vals[0] = v
		}
	}
}

// windowedAgg is the Stateful, Queryable face of keyedAgg for the window forms.
type windowedAgg struct{ *keyedAgg }

// SaveState implements Stateful: new or changed panes, evicted panes, and the
// changed keys of the incremental state.
func (w windowedAgg) SaveState(sw *StateWriter) error {
	a := w.keyedAgg
	for _, t := range a.evicted {
		a.buf = appendTimeKey(a.buf[:0], 'p', t)
		sw.Delete(a.buf)
	}
	a.evicted = a.evicted[:0]
	for _, p := range a.panes {
		if p.saved {
			continue
		}
		p.saved = true
		a.buf = appendTimeKey(a.buf[:0], 'p', p.t)
		n := len(a.buf)
		flag := byte(0)
		if p.added {
			flag = 1
		}
		a.buf = append(a.buf, flag)
		a.buf = binary.AppendUvarint(a.buf, uint64(len(p.ids)))
		for i, id := range p.ids {
			a.buf = AppendValue(a.buf, a.d.keys[id])
			a.buf = AppendValue(a.buf, p.vals[i])
		}
		sw.Put(a.buf[:n], a.buf[n:])
	}
	a.table.save(sw, 'k')
	return nil
}

// LoadState implements Stateful.
func (w windowedAgg) LoadState(key, val []byte) error {
	a := w.keyedAgg
	if len(key) == 0 {
		return ErrCorruptState
	}
	switch key[0] {
	case 'k':
		return a.table.load(val)
	case 'p':
		t, ok := readTimeKey(key)
		if !ok || len(val) < 1 {
			return ErrCorruptState
		}
		p := a.newPane(t)
		p.added, p.saved = val[0] == 1, true
		n, sz := binary.Uvarint(val[1:])
		if sz <= 0 {
			return ErrCorruptState
		}
		rest := val[1+sz:]
		for i := uint64(0); i < n; i++ {
			var k, v Value
			var err error
			if k, rest, err = ReadValue(rest); err != nil {
				return err
			}
			if v, rest, err = ReadValue(rest); err != nil {
				return err
			}
			id := a.d.id(k)
			a.d.ref(id)
			p.ids = append(p.ids, id)
			p.vals = append(p.vals, v)
		}
		a.insertPane(p)
		return nil
	}
	return ErrCorruptState
}

// StateRows implements Stateful: retained panes plus incremental keys.
func (w windowedAgg) StateRows() int { return len(w.panes) + w.table.nlive }

// QuerySchema implements Queryable: the output schema.
func (w windowedAgg) QuerySchema() *Schema { return w.out }

// QueryState implements Queryable: the incremental state, or for the naive
// forms the aggregate over every retained pane (the open windows).
func (w windowedAgg) QueryState(fn func(r *Record) bool) {
	a := w.keyedAgg
	b := NewBatch(a.out)
	if a.spec.inv != nil {
		a.table.order()
		for _, id := range a.table.list {
			if a.table.has[id] {
				a.emit(b, id, a.table.val[id])
			}
		}
	} else if len(a.panes) > 0 {
		a.emitWindow(a.panes[len(a.panes)-1].t, b)
	}
	for i := range b.Recs {
		if !fn(&b.Recs[i]) {
			return
		}
	}
}

func windowMs(window, slide time.Duration) (int64, int64) {
	return window.Milliseconds(), slide.Milliseconds()
}

// ReduceByKey reduces, per batch, the value field of the records of each key
// with fn. Output: (key, value), one row per key in first-seen order.
func ReduceByKey(key, value string, fn ReduceFunc) Operator {
	return newKeyedAgg(aggSpec{name: "reduceByKey", key: key, value: value, fn: fn})
}

// CountByValue counts, per batch, the records of each distinct value of field.
// Output: (field, count).
func CountByValue(field string) Operator {
	return newKeyedAgg(aggSpec{name: "countByValue", key: field, fn: Sum, outVal: "count"})
}

// GroupByKey collects, per batch, the value field of each key into a list in
// input order. Output: (key, values).
func GroupByKey(key, value string) Operator {
	return newKeyedAgg(aggSpec{name: "groupByKey", key: key, value: value, group: true, outVal: "values"})
}

// Count emits one row (count) per batch: the number of records, 0 for an
// empty batch.
func Count() Operator {
	return newKeyedAgg(aggSpec{name: "count", fn: Sum, outVal: "count", keepZero: true})
}

// Reduce reduces all values of field in a batch with fn: one row, or none for
// an empty batch.
func Reduce(field string, fn ReduceFunc) Operator {
	return newKeyedAgg(aggSpec{name: "reduce", value: field, fn: fn})
}

// ReduceByKeyAndWindow reduces the value field per key over a sliding
// processing-time window (see Window for the time model), combining per-batch
// pane partials: O(panes x keys) per output, never re-reading records.
// Output: (key, value); keys without values in the window are absent.
func ReduceByKeyAndWindow(key, value string, fn ReduceFunc, window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "reduceByKeyAndWindow", key: key, value: value, fn: fn, window: w, slide: s})}
}

// ReduceByKeyAndWindowInv is the incremental form: at each output time the
// previous window's per-key values are updated with inv (values that left)
// and fn (values that entered). Keys are never removed unless filter (may be
// nil) rejects them, in which case the filtered state is the next window's
// previous state. The window must be a multiple of the slide.
func ReduceByKeyAndWindowInv(key, value string, fn, inv ReduceFunc, filter func(key, v Value) bool, window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "reduceByKeyAndWindow", key: key, value: value, fn: fn, inv: inv, filter: filter, window: w, slide: s})}
}

// ReduceByWindow reduces all values of field over the window. With inv nil it
// emits one row per non-empty window; with inv it is incremental and, once
// data has been seen, emits the identity for an empty window.
func ReduceByWindow(field string, fn, inv ReduceFunc, window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "reduceByWindow", value: field, fn: fn, inv: inv, window: w, slide: s})}
}

// CountByWindow counts the records in the window (incremental form): one row
// (count) per output time once data has been seen, 0 for an empty window.
func CountByWindow(window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "countByWindow", fn: Sum, inv: Subtract, outVal: "count", window: w, slide: s})}
}

// CountByValueAndWindow counts each distinct value of field over the window
// (incremental form); values whose count dropped to 0 are removed.
// Output: (field, count).
func CountByValueAndWindow(field string, window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "countByValueAndWindow", key: field, fn: Sum, inv: Subtract,
		filter: func(_, v Value) bool { return v.Num != 0 }, outVal: "count", window: w, slide: s})}
}

// GroupByKeyAndWindow collects the value field per key over the window, in
// batch then input order. Output: (key, values).
func GroupByKeyAndWindow(key, value string, window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return windowedAgg{newKeyedAgg(aggSpec{name: "groupByKeyAndWindow", key: key, value: value, group: true, outVal: "values", window: w, slide: s})}
}
