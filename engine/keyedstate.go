package engine

import (
	"fmt"
	"time"
)

// release frees an id that nothing references (a key seen only in passing).
func (d *keyDict) release(id int32) {
	if d.refs[id] == 0 {
		d.refs[id] = 1
		d.unref(id)
	}
}

// UpdateFunc computes the new state of a key from the values it received in
// the batch (in input order; empty for a key without new values) and its
// current state (hasState false when there is none), at batch time batchMs.
// Returning ok=false removes the key. values is only valid during the call.
type UpdateFunc func(key Value, values []Value, state Value, hasState bool, batchMs int64) (next Value, ok bool)

// UpdateStateConfig configures UpdateStateByKey.
type UpdateStateConfig struct {
	// Key and Value name the input fields.
	Key, Value string
	// Update is called, every batch, for every key in state and every key with
	// new values (state keys first, in insertion order, then new keys in
	// first-seen order).
	Update UpdateFunc
	// Initial is the state before the first batch, as (key, state) pairs.
	Initial [][2]Value
	// StateKind is the kind of the emitted state field; zero means number.
	StateKind Kind
	// Output maps a state to the emitted value; nil emits the state itself.
	Output func(state Value) Value
}

// UpdateStateByKey keeps one state per key, updated every batch by cfg.Update,
// and emits the whole state, (key, state), every batch.
func UpdateStateByKey(cfg UpdateStateConfig) Operator {
	o := &updateStateOp{cfg: cfg}
	o.newDict()
	return o
}

type updateStateOp struct {
	keyedState
	cfg UpdateStateConfig

	stamp  []uint32
	done   []uint32
	cnt    []int32
	off    []int32
	gen    uint32
	recID  []int32
	flat   []Value
	newIDs []int32
}

func stateKind(k Kind) Kind {
	if k == KindNull {
		return KindNumber
	}
	return k
}

func (o *updateStateOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if o.cfg.Update == nil {
		return nil, fmt.Errorf("updateStateByKey: Update function is nil")
	}
	if err := o.openFields(in[0], "updateStateByKey", o.cfg.Key, o.cfg.Value, o.cfg.StateKind); err != nil {
		return nil, err
	}
	return o.qs, nil
}

func (o *updateStateOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.NoData {
		return nil
	}
	tb := &o.table
	if !o.init {
		o.init, o.initW = true, true
		for _, kv := range o.cfg.Initial {
			tb.set(o.d.id(kv[0]), kv[1])
		}
	}
	b := in[0]
	o.gen++
	// Group the batch's values per key without per-record allocation.
	o.newIDs = o.newIDs[:0]
	o.recID = growI32(o.recID[:0], b.Len())
	for i := range b.Recs {
		id := o.d.id(b.Recs[i].Vals[o.ki])
		n := o.d.size()
		o.stamp, o.done = growU32(o.stamp, n), growU32(o.done, n)
		o.cnt, o.off = growI32(o.cnt, n), growI32(o.off, n)
		if o.stamp[id] != o.gen {
			o.stamp[id] = o.gen
			o.cnt[id] = 0
			o.newIDs = append(o.newIDs, id)
		}
		o.cnt[id]++
		o.recID[i] = id
	}
	pos := int32(0)
	for _, id := range o.newIDs {
		o.off[id] = pos
		pos += o.cnt[id]
		o.cnt[id] = 0
	}
	o.flat = growValues(o.flat[:0], int(pos))
	for i := range b.Recs {
		id := o.recID[i]
		o.flat[o.off[id]+o.cnt[id]] = b.Recs[i].Vals[o.vi]
		o.cnt[id]++
	}
	tb.grow()
	tb.order()
	nd := o.d.size()
	o.stamp, o.done = growU32(o.stamp, nd), growU32(o.done, nd)
	o.cnt, o.off = growI32(o.cnt, nd), growI32(o.off, nd)
	n := len(tb.list)
	for _, id := range tb.list[:n] {
		if tb.has[id] {
			o.update(ep.Time, id)
		}
	}
	for _, id := range o.newIDs {
		if o.done[id] != o.gen {
			o.update(ep.Time, id)
		}
		o.d.release(id)
	}
	clear(o.flat)
	for _, id := range tb.list {
		if !tb.has[id] {
			continue
		}
		r := out.Append()
		r.Vals[0] = o.d.keys[id]
		if o.cfg.Output != nil {
			r.Vals[1] = o.cfg.Output(tb.val[id])
		} else {
			r.Vals[1] = tb.val[id]
		}
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}

func (o *updateStateOp) update(t int64, id int32) {
	tb := &o.table
	o.done[id] = o.gen
	var vals []Value
	if o.stamp[id] == o.gen {
		vals = o.flat[o.off[id] : o.off[id]+o.cnt[id]]
	}
	next, ok := o.cfg.Update(o.d.keys[id], vals, tb.val[id], tb.has[id], t)
	if ok {
		tb.set(id, next)
	} else {
		tb.remove(id)
	}
}

// keyedState is what UpdateStateByKey and MapWithState share: the key and
// value fields, the per-key state table, whether the initial state was applied
// and its checkpointing and query methods.
type keyedState struct {
	ki, vi int
	qs     *Schema // query schema: (key, state)
	d      *keyDict
	table  keyTable
	init   bool
	initW  bool // the initialized marker is to be written
}

func (o *keyedState) newDict() {
	o.d = newKeyDict()
	o.table.d = o.d
}

// openFields resolves the key and value fields (op names the operator in
// errors) and builds the query schema (key, state), the state field named
// "value" when the key is named "state".
func (o *keyedState) openFields(in *Schema, op, key, value string, kind Kind) error {
	var err error
	if o.ki, err = in.Lookup(key); err != nil {
		return fmt.Errorf("%s key: %w", op, err)
	}
	if o.vi, err = in.Lookup(value); err != nil {
		return fmt.Errorf("%s value: %w", op, err)
	}
	kf := in.Field(o.ki)
	name := "state"
	if kf.Name == name {
		name = "value"
	}
	o.qs = MustSchema(kf, Field{name, stateKind(kind)})
	return nil
}

// SaveState implements Stateful: the changed keys, and once a marker that
// the initial state was applied.
func (o *keyedState) SaveState(w *StateWriter) error {
	if o.initW {
		o.initW = false
		w.Put([]byte{'i'}, []byte{1})
	}
	o.table.save(w, 'k')
	return nil
}

// LoadState implements Stateful.
func (o *keyedState) LoadState(key, val []byte) error {
	if len(key) == 0 {
		return ErrCorruptState
	}
	switch key[0] {
	case 'i':
		o.init = true
		return nil
	case 'k':
		o.init = true
		return o.table.load(val)
	}
	return ErrCorruptState
}

// StateRows implements Stateful: the number of keys in state.
func (o *keyedState) StateRows() int { return o.table.nlive }

// QuerySchema implements Queryable: (key, state).
func (o *keyedState) QuerySchema() *Schema { return o.qs }

// QueryState implements Queryable.
func (o *keyedState) QueryState(fn func(r *Record) bool) { queryTable(&o.table, o.qs, fn) }

func queryTable(tb *keyTable, s *Schema, fn func(r *Record) bool) {
	tb.order()
	vals := make([]Value, 2)
	for _, id := range tb.list {
		if !tb.has[id] {
			continue
		}
		vals[0], vals[1] = tb.d.keys[id], tb.val[id]
		if !fn(&Record{Vals: vals}) {
			return
		}
	}
}

// UpdateSum is the running sum: new = sum(values) + (state or 0).
func UpdateSum(_ Value, values []Value, state Value, has bool, _ int64) (Value, bool) {
	s := 0.0
	if has {
		s = state.Num
	}
	for _, v := range values {
		s += v.Num
	}
	return Number(s), true
}

// UpdateCount counts the values a key received: new = len(values) + (state or 0).
func UpdateCount(_ Value, values []Value, state Value, has bool, _ int64) (Value, bool) {
	s := 0.0
	if has {
		s = state.Num
	}
	return Number(s + float64(len(values))), true
}

// UpdateByName returns the built-in update function with the given spec name:
// sum, count.
func UpdateByName(name string) (UpdateFunc, bool) {
	switch name {
	case "sum":
		return UpdateSum, true
	case "count":
		return UpdateCount, true
	}
	return nil, false
}

// ExpireAfterIdle returns a running-sum update whose state is the list
// (counter, idle): a batch whose values sum to 0 (or that has none) adds one
// idle batch, any other adds the sum to counter and resets idle; the key is
// removed when idle reaches n. A numeric initial state is taken as (state, 0).
// output maps the state to its counter, for UpdateStateConfig.Output.
func ExpireAfterIdle(n int) (update UpdateFunc, output func(Value) Value) {
	update = func(_ Value, values []Value, state Value, has bool, _ int64) (Value, bool) {
		counter, idle := 0.0, 0.0
		if has {
			if l := state.Items(); state.Kind == KindList && len(l) == 2 {
				counter, idle = l[0].Num, l[1].Num
			} else {
				counter = state.Num
			}
		}
		s := 0.0
		for _, v := range values {
			s += v.Num
		}
		if s == 0 {
			idle++
		} else {
			counter += s
			idle = 0
		}
		if idle >= float64(n) {
			return Null, false
		}
		return List(Number(counter), Number(idle)), true
	}
	output = func(state Value) Value {
		if l := state.Items(); state.Kind == KindList && len(l) > 0 {
			return l[0]
		}
		return state
	}
	return update, output
}

// KeyState is the state of one key handed to a MappingFunc.
type KeyState struct {
	v         Value
	has       bool
	changed   bool
	timingOut bool
	// BatchTime is the batch time (unix ms).
	BatchTime int64
}

// Get returns the state and whether it exists.
func (s *KeyState) Get() (Value, bool) { return s.v, s.has }

// Set replaces the state. It must not be called on a timing-out key.
func (s *KeyState) Set(v Value) { s.v, s.has, s.changed = v, true, true }

// Remove deletes the state.
func (s *KeyState) Remove() { s.v, s.has, s.changed = Value{}, false, true }

// IsTimingOut reports whether the call is the timeout call of an idle key.
func (s *KeyState) IsTimingOut() bool { return s.timingOut }

// MappingFunc is called by MapWithState once per input record (hasValue true)
// and once for a key that timed out (hasValue false, st.IsTimingOut()). It may
// read and change st and fills out (the output record's fields, null to begin
// with) and returns true to emit it.
type MappingFunc func(st *KeyState, key, value Value, hasValue bool, out []Value) bool

// MapWithStateConfig configures MapWithState.
type MapWithStateConfig struct {
	// Key and Value name the input fields.
	Key, Value string
	// Fn is the mapping function.
	Fn MappingFunc
	// Output is the schema of the emitted records. Required.
	Output *Schema
	// Initial is the state before the first batch, as (key, state) pairs.
	Initial [][2]Value
	// Timeout, when positive, times out a key that received no data for more
	// than Timeout: Fn is called once for it without a value, its output is
	// emitted and its state removed. Timeouts are checked at every batch.
	Timeout time.Duration
	// StateKind is the kind of the state field in queries; zero means number.
	StateKind Kind
}

// MapWithState calls cfg.Fn once per record, in input order, with the state of
// the record's key, and emits what it returns. The state is queryable as
// (key, state).
func MapWithState(cfg MapWithStateConfig) Operator {
	o := &mapWithStateOp{cfg: cfg}
	o.newDict()
	return o
}

type mapWithStateOp struct {
	keyedState
	cfg MapWithStateConfig
	st  KeyState
}

func (o *mapWithStateOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if o.cfg.Fn == nil {
		return nil, fmt.Errorf("mapWithState: Fn is nil")
	}
	if o.cfg.Output == nil {
		return nil, fmt.Errorf("mapWithState: Output schema is nil")
	}
	if err := o.openFields(in[0], "mapWithState", o.cfg.Key, o.cfg.Value, o.cfg.StateKind); err != nil {
		return nil, err
	}
	return o.cfg.Output, nil
}

func (o *mapWithStateOp) call(t int64, id int32, v Value, hasValue, timingOut bool, out *Batch) {
	tb := &o.table
	tb.grow()
	o.st = KeyState{v: tb.val[id], has: tb.has[id], timingOut: timingOut, BatchTime: t}
	r := out.Append()
	emit := o.cfg.Fn(&o.st, o.d.keys[id], v, hasValue, r.Vals)
	if !emit {
		clear(r.Vals)
		out.Recs = out.Recs[:len(out.Recs)-1]
	}
	switch {
	case timingOut:
		tb.remove(id)
	case o.st.changed && !o.st.has:
		tb.remove(id)
	case o.st.has:
		if o.st.changed || tb.tm[id] != t {
			tb.set(id, o.st.v)
			tb.tm[id] = t
		}
	}
}

func (o *mapWithStateOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.NoData {
		return nil
	}
	t := ep.Time
	tb := &o.table
	if !o.init {
		o.init, o.initW = true, true
		for _, kv := range o.cfg.Initial {
			id := o.d.id(kv[0])
			tb.set(id, kv[1])
			tb.tm[id] = t
		}
	}
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		id := o.d.id(r.Vals[o.ki])
		o.call(t, id, r.Vals[o.vi], true, false, out)
		o.d.release(id)
	}
	if to := o.cfg.Timeout.Milliseconds(); to > 0 {
		tb.order()
		n := len(tb.list)
		for _, id := range tb.list[:n] {
			if tb.has[id] && t-tb.tm[id] > to {
				o.call(t, id, Value{}, false, true, out)
			}
		}
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}
