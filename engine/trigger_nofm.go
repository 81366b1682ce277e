package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// MaxNOfMWindow is the largest M accepted by NOfM (one uint64 bitset per key).
const MaxNOfMWindow = 64

// NOfMConfig configures NOfM. The condition on a reading is exactly one of
// Match, Above and Below.
type NOfMConfig struct {
	// Rule is the rule name, copied into every event's rule field. Required.
	Rule string
	// Keys are the key fields; each key has its own window of readings. Empty
	// means one global window.
	Keys []string
	// Value is the numeric field reported in events (and tested by Above and
	// Below). Empty means "value".
	Value string
	// N is how many of the last M readings must match. At least 1.
	N int
	// M is the number of readings considered. N <= M <= MaxNOfMWindow.
	M int
	// Match is the condition as a predicate on the input record (the typed API;
	// the YAML spec compiler passes a compiled expression). It must not retain
	// the record.
	Match func(r *Record) bool
	// Above is the simple condition value > Above.
	Above *float64
	// Below is the simple condition value < Below.
	Below *float64
}

// Validate reports every problem of the config, naming the parameter.
func (c NOfMConfig) Validate() error {
	var errs []error
	if err := checkRule(c.Rule); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkKeys(c.Keys)...)
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("n: must be >= 1, have %d", c.N))
	}
	switch {
	case c.M > MaxNOfMWindow:
		errs = append(errs, fmt.Errorf("m: must be <= %d, have %d", MaxNOfMWindow, c.M))
	case c.M < 1:
		errs = append(errs, fmt.Errorf("m: must be >= 1, have %d", c.M))
	case c.N > c.M:
		errs = append(errs, fmt.Errorf("n: must be <= m (%d), have %d", c.M, c.N))
	}
	conds := 0
	if c.Match != nil {
		conds++
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"above", c.Above}, {"below", c.Below}} {
		if p.v == nil {
			continue
		}
		conds++
		if math.IsNaN(*p.v) || math.IsInf(*p.v, 0) {
			errs = append(errs, fmt.Errorf("%s: must be a finite number", p.name))
		}
	}
	switch {
	case conds == 0:
		errs = append(errs, errors.New("match: one of match, above or below is required"))
	case conds > 1:
		errs = append(errs, errors.New("match: only one of match, above or below may be set"))
	}
	return errors.Join(errs...)
}

// NOfM fires "n_of_m" when at least N of the last M readings of a key match
// the condition. Before M readings have arrived, the missing ones count as not
// matching, so the rule can fire as soon as N readings matched.
//
// The rule fires once when the count reaches N and is then disarmed: it
// re-arms only after the count has fallen below N again, and fires again the
// next time it reaches N. A sustained condition therefore gives one event, not
// one per reading.
//
// Extra event fields: count (number: matching readings among the last M, that
// is N when it fires) and of (number: M).
//
// A record whose value is not a number goes to the dead-letter sink, even with
// a Match predicate (the event's value would be undefined).
//
// NOfM is Stateful and Queryable; its query rows are the key fields, rule,
// count, of, and fired (bool: disarmed until the count falls below N).
func NOfM(cfg NOfMConfig) Operator {
	o := &nOfMOp{cfg: cfg}
	o.init(cfg.Rule, cfg.Keys, cfg.Value)
	return o
}

type nOfMState struct {
	bits  uint64 // bit 0 is the latest reading
	fired bool
}

type nOfMOp struct {
	triggerRule[nOfMState]
	cfg    NOfMConfig
	mask   uint64
	n      int
	ofV    Value
	evNOfM Value
}

func (o *nOfMOp) Open(in []*Schema) (*Schema, error) {
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	o.n = o.cfg.N
	o.mask = math.MaxUint64
	if o.cfg.M < 64 {
		o.mask = 1<<uint(o.cfg.M) - 1
	}
	o.ofV = Int(int64(o.cfg.M))
	o.evNOfM = String(EventNOfM)
	return o.open(in, Field{"count", KindNumber}, Field{"of", KindNumber})
}

func (o *nOfMOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	x := o.extra()
	match, above, below := o.cfg.Match, o.cfg.Above, o.cfg.Below
	for i := range b.Recs {
		r := &b.Recs[i]
		v, ok := o.value(ep, r, b.Schema)
		if !ok {
			continue
		}
		var hit bool
		switch {
		case match != nil:
			hit = match(r)
		case above != nil:
			hit = v > *above
		default:
			hit = v < *below
		}
		s, _ := o.slot(r)
		st := o.state(s)
		nb := st.bits << 1 & o.mask
		if hit {
			nb |= 1
		}
		count := bits.OnesCount64(nb)
		fired := st.fired
		if count < o.n {
			fired = false
		} else if !fired {
			fired = true
			d := o.emit(out, s, o.evNOfM, r, v)
			d.Vals[x], d.Vals[x+1] = Int(int64(count)), o.ofV
		}
		if nb != st.bits || fired != st.fired {
			st.bits, st.fired = nb, fired
			o.markDirty(s)
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// State value after the common part: the bitset (8 bytes, little endian) and
// a fired byte.
func (o *nOfMOp) SaveState(w *StateWriter) error {
	return o.save(w, func(dst []byte, s int32) []byte {
		st := &o.st[s]
		dst = binary.LittleEndian.AppendUint64(dst, st.bits)
		if st.fired {
			return append(dst, 1)
		}
		return append(dst, 0)
	})
}

func (o *nOfMOp) LoadState(key, val []byte) error {
	s, rest, err := o.load(key, val)
	if err != nil {
		return err
	}
	if len(rest) < 8 {
		return ErrCorruptState
	}
	bitset := binary.LittleEndian.Uint64(rest)
	fired, _, err := readByte(rest[8:])
	if err != nil {
		return err
	}
	// A checkpoint written with a larger M keeps the latest M readings.
	*o.state(s) = nOfMState{bits: bitset & o.mask, fired: fired != 0}
	return nil
}

func (o *nOfMOp) QuerySchema() *Schema {
	return o.querySchema(Field{"count", KindNumber}, Field{"of", KindNumber}, Field{"fired", KindBool})
}

func (o *nOfMOp) QueryState(fn func(r *Record) bool) {
	o.queryState(o.QuerySchema(), fn, func(r *Record, x int, st *nOfMState) {
		r.Vals[x], r.Vals[x+1], r.Vals[x+2] = Int(int64(bits.OnesCount64(st.bits))), o.ofV, Bool(st.fired)
	})
}
