package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Event names emitted by the trigger operators Threshold, RateOfChange and
// NOfM. These operators watch a numeric value field per key and emit an event
// record when a rule fires.
//
// # Keys and order
//
// The key is the tuple of the configured key fields (resolved in Open; no key
// fields means one global key). Each key has its own rule state, which lives
// in a slice indexed through a map from the encoded key, so a record costs one
// map lookup and no allocation once its key is known.
//
// Records are processed in the order they appear in the batch. A live source
// delivers them in arrival order; batch mode (edged batch) sorts its input by
// event time first, so a recorded file gives the events of an in-order stream.
// Time-based rule parts (Threshold.For, RateOfChange) use the record's event
// time (Record.Time), so they need a source that sets it: without event time
// every record has time 0, RateOfChange counts all but a key's first reading
// as late and For never elapses.
//
// # Event records
//
// Every trigger emits records with the fields: the key fields (with their input
// kinds), rule (string: the configured rule name), event (string: what
// happened), value (number: the value of the triggering record) and time (time:
// the event time of the triggering record), followed by rule-specific fields.
// An event record keeps the Key and Origin of the record that triggered it.
//
// # Malformed records
//
// A record whose value field is null, not a number or NaN goes to the
// dead-letter sink with the reason; it does not change the key's state.
//
// # State
//
// The per-key state is checkpointed: SaveState writes the keys changed since
// the previous SaveState (a key whose state did not change costs nothing),
// LoadState restores them, so a restarted executor emits exactly the events an
// uninterrupted one would. Keys are kept for the lifetime of the pipeline.
const (
	EventRaise = "raise"  // Threshold: the alarm turned on
	EventClear = "clear"  // Threshold: the alarm turned off
	EventRate  = "rate"   // RateOfChange: the rate exceeded MaxRate
	EventNOfM  = "n_of_m" // NOfM: N of the last M readings matched
)

// triggerStateVersion is the first byte of every stored trigger state value.
const triggerStateVersion = 1

// triggerBase holds what the three trigger operators share: key and value
// field resolution, the key-to-slot index, the key values of every slot, the
// dirty list for SaveState, and the common output fields.
type triggerBase struct {
	rule      Value
	keyNames  []string
	valueName string

	keyIdx []int
	valIdx int
	out    *Schema

	index   map[string]int32 // encoded key -> slot
	keys    []string         // slot -> encoded key (the state key)
	keyVals []Value          // slot*len(keyIdx)+i -> key field i
	dirty   []int32
	isDirty []bool
	buf     []byte
	enc     []byte
}

func (b *triggerBase) init(rule string, keys []string, value string) {
	b.rule = String(rule)
	b.keyNames = append([]string(nil), keys...)
	b.valueName = value
	if b.valueName == "" {
		b.valueName = "value"
	}
	b.index = map[string]int32{}
}

// open resolves the key and value fields and builds the output schema: key
// fields, rule, event, value, time, then extra.
func (b *triggerBase) open(in []*Schema, extra ...Field) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	s := in[0]
	var errs []error
	fields := make([]Field, 0, len(b.keyNames)+4+len(extra))
	b.keyIdx = b.keyIdx[:0]
	for _, k := range b.keyNames {
		i, err := s.Lookup(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys: %w", err))
			continue
		}
		b.keyIdx = append(b.keyIdx, i)
		fields = append(fields, s.Field(i))
	}
	if i, err := s.Lookup(b.valueName); err != nil {
		errs = append(errs, fmt.Errorf("value: %w", err))
	} else if k := s.Field(i).Kind; k != KindNumber {
		errs = append(errs, fmt.Errorf("value: field %q is %s, want number: %w", b.valueName, k, ErrType))
	} else {
		b.valIdx = i
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	fields = append(fields,
		Field{"rule", KindString}, Field{"event", KindString},
		Field{"value", KindNumber}, Field{"time", KindTime})
	fields = append(fields, extra...)
	out, err := NewSchema(fields...)
	if err != nil {
		return nil, fmt.Errorf("keys: output fields: %w", err)
	}
	b.out = out
	return out, nil
}

// value returns the record's numeric value, or sends the record to the
// dead-letter sink and returns false.
func (b *triggerBase) value(ep *Epoch, r *Record, s *Schema) (float64, bool) {
	v := r.Vals[b.valIdx]
	if v.Kind != KindNumber || math.IsNaN(v.Num) {
		ep.DeadLetter(r, s, b.badValue(v))
		return 0, false
	}
	return v.Num, true
}

func (b *triggerBase) badValue(v Value) error {
	if v.Kind == KindNumber {
		return fmt.Errorf("value: field %q is NaN: %w", b.valueName, ErrType)
	}
	return fmt.Errorf("value: field %q is %s, want number: %w", b.valueName, v.Kind, ErrType)
}

// slot returns the slot of r's key, adding the key if it is new (added is then
// true and the caller must grow its state slice by one).
func (b *triggerBase) slot(r *Record) (slot int32, added bool) {
	b.buf = b.buf[:0]
	for _, i := range b.keyIdx {
		b.buf = r.Vals[i].AppendKey(b.buf)
	}
	if s, ok := b.index[string(b.buf)]; ok {
		return s, false
	}
	s := int32(len(b.keys))
	k := string(b.buf)
	b.index[k] = s
	b.keys = append(b.keys, k)
	for _, i := range b.keyIdx {
		b.keyVals = append(b.keyVals, r.Vals[i])
	}
	b.isDirty = append(b.isDirty, false)
	b.markDirty(s)
	return s, true
}

// addKey registers a slot restored from state, with its key values.
func (b *triggerBase) addKey(key string, vals []Value) (int32, error) {
	if len(vals) != len(b.keyIdx) {
		return 0, fmt.Errorf("%w: %d key values, want %d", ErrCorruptState, len(vals), len(b.keyIdx))
	}
	if s, ok := b.index[key]; ok {
		copy(b.keyVals[int(s)*len(b.keyIdx):], vals)
		return s, nil
	}
	s := int32(len(b.keys))
	b.index[key] = s
	b.keys = append(b.keys, key)
	b.keyVals = append(b.keyVals, vals...)
	b.isDirty = append(b.isDirty, false)
	return s, nil
}

func (b *triggerBase) markDirty(s int32) {
	if !b.isDirty[s] {
		b.isDirty[s] = true
		b.dirty = append(b.dirty, s)
	}
}

// emit appends an event record for slot s triggered by r, and returns it so
// the caller can fill the rule-specific fields (which start at index
// b.extra()).
func (b *triggerBase) emit(out *Batch, s int32, event Value, r *Record, v float64) *Record {
	d := out.Append()
	d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
	n := len(b.keyIdx)
	copy(d.Vals, b.keyVals[int(s)*n:int(s)*n+n])
	d.Vals[n] = b.rule
	d.Vals[n+1] = event
	d.Vals[n+2] = Number(v)
	d.Vals[n+3] = Time(r.Time)
	return d
}

// extra is the index of the first rule-specific output field.
func (b *triggerBase) extra() int { return len(b.keyIdx) + 4 }

// save writes the dirty slots with encode, which appends a slot's rule state.
// The stored value is: version, key values (AppendValue), rule state.
func (b *triggerBase) save(w *StateWriter, encode func(dst []byte, s int32) []byte) error {
	n := len(b.keyIdx)
	for _, s := range b.dirty {
		b.enc = append(b.enc[:0], triggerStateVersion)
		for _, v := range b.keyVals[int(s)*n : int(s)*n+n] {
			b.enc = AppendValue(b.enc, v)
		}
		b.enc = encode(b.enc, s)
		w.Put([]byte(b.keys[s]), b.enc)
		b.isDirty[s] = false
	}
	b.dirty = b.dirty[:0]
	return nil
}

// load decodes the common part of a stored entry, registers its key and
// returns the slot and the rule state bytes.
func (b *triggerBase) load(key, val []byte) (int32, []byte, error) {
	if len(val) == 0 || val[0] != triggerStateVersion {
		return 0, nil, fmt.Errorf("%w: unknown trigger state version", ErrCorruptState)
	}
	val = val[1:]
	vals := make([]Value, len(b.keyIdx))
	for i := range vals {
		var err error
		vals[i], val, err = ReadValue(val)
		if err != nil {
			return 0, nil, err
		}
	}
	s, err := b.addKey(string(key), vals)
	return s, val, err
}

// queryFields returns the key fields and rule of the query schema, then extra.
func (b *triggerBase) querySchema(extra ...Field) *Schema {
	fields := make([]Field, 0, len(b.keyIdx)+1+len(extra))
	for i := range b.keyIdx {
		fields = append(fields, b.out.Field(i))
	}
	fields = append(fields, Field{"rule", KindString})
	fields = append(fields, extra...)
	return MustSchema(fields...)
}

// queryRecord fills r's key fields and rule for slot s and returns the index
// of the first extra field.
func (b *triggerBase) queryRecord(r *Record, s int32) int {
	n := len(b.keyIdx)
	copy(r.Vals, b.keyVals[int(s)*n:int(s)*n+n])
	r.Vals[n] = b.rule
	return n + 1
}

// triggerRule is triggerBase with the per-slot rule state of one trigger
// operator: st[s] is the state of slot s.
type triggerRule[S any] struct {
	triggerBase
	st []S
}

// state returns the rule state of slot s, growing st (with zero states) to
// cover it: after slot added a key, or when LoadState restores one.
func (t *triggerRule[S]) state(s int32) *S {
	for int(s) >= len(t.st) {
		var zero S
		t.st = append(t.st, zero)
	}
	return &t.st[s]
}

// StateRows implements Stateful: the number of keys.
func (t *triggerRule[S]) StateRows() int { return len(t.st) }

// queryState calls fn with one row of schema qs per key: the key fields and
// rule, then the fields that fill sets from the key's state, starting at x.
func (t *triggerRule[S]) queryState(qs *Schema, fn func(r *Record) bool, fill func(r *Record, x int, st *S)) {
	b := NewBatch(qs)
	for s := range t.st {
		b.Reset(b.Schema)
		r := b.Append()
		x := t.queryRecord(r, int32(s))
		fill(r, x, &t.st[s])
		if !fn(r) {
			return
		}
	}
}

// Little helpers for the fixed-width parts of trigger state.

func appendF64(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

func readF64(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, ErrCorruptState
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
}

func readByte(b []byte) (byte, []byte, error) {
	if len(b) < 1 {
		return 0, nil, ErrCorruptState
	}
	return b[0], b[1:], nil
}

// checkRule is the shared part of the trigger configs' Validate.
func checkRule(rule string) error {
	if rule == "" {
		return errors.New("rule: must not be empty")
	}
	return nil
}

func checkKeys(keys []string) []error {
	var errs []error
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		switch {
		case k == "":
			errs = append(errs, fmt.Errorf("keys[%d]: empty field name", i))
		case seen[k]:
			errs = append(errs, fmt.Errorf("keys[%d]: field %q listed twice", i, k))
		}
		seen[k] = true
	}
	return errs
}

func fmtF(f float64) string { return string(AppendNumber(nil, f)) }
