package engine

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ThresholdConfig configures Threshold. Exactly one of Above (a high alarm) and
// Below (a low alarm) is set. Pointers distinguish "not set" from a limit of 0;
// in Go write Above: new(80.0).
type ThresholdConfig struct {
	// Rule is the rule name, copied into every event's rule field. Required.
	Rule string
	// Keys are the key fields; each key has its own alarm. Empty means one
	// global alarm.
	Keys []string
	// Value is the numeric field watched. Empty means "value".
	Value string
	// Above makes a high alarm: it is raised when value > Above.
	Above *float64
	// Below makes a low alarm: it is raised when value < Below.
	Below *float64
	// Clear is the hysteresis limit: a raised high alarm clears when
	// value <= Clear (a low alarm when value >= Clear). It must be <= Above for
	// a high alarm and >= Below for a low one. Nil means Above (or Below): no
	// hysteresis, the alarm clears as soon as the raise condition is false.
	Clear *float64
	// For is the debounce: the raise condition must hold on every reading of
	// the key for at least this long of event time (from the first reading
	// where it held to the current one) before the alarm is raised. Zero
	// raises on the first reading past the limit. Clearing is immediate. A
	// reading older than the start of the run (out of order) counts as
	// holding but cannot complete the debounce.
	For time.Duration
}

// Validate reports every problem of the config, naming the parameter.
func (c ThresholdConfig) Validate() error {
	var errs []error
	if err := checkRule(c.Rule); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkKeys(c.Keys)...)
	switch {
	case c.Above == nil && c.Below == nil:
		errs = append(errs, errors.New("above: one of above or below is required"))
	case c.Above != nil && c.Below != nil:
		errs = append(errs, errors.New("below: only one of above or below may be set"))
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"above", c.Above}, {"below", c.Below}, {"clear", c.Clear}} {
		if p.v != nil && (math.IsNaN(*p.v) || math.IsInf(*p.v, 0)) {
			errs = append(errs, fmt.Errorf("%s: must be a finite number", p.name))
		}
	}
	if c.Clear != nil {
		switch {
		case c.Above != nil && c.Below == nil && *c.Clear > *c.Above:
			errs = append(errs, fmt.Errorf("clear: must be <= above (%s) for a high alarm", fmtF(*c.Above)))
		case c.Below != nil && c.Above == nil && *c.Clear < *c.Below:
			errs = append(errs, fmt.Errorf("clear: must be >= below (%s) for a low alarm", fmtF(*c.Below)))
		}
	}
	if c.For < 0 {
		errs = append(errs, fmt.Errorf("for: must be >= 0, have %s", c.For))
	}
	return errors.Join(errs...)
}

// Threshold detects threshold crossings with hysteresis, per key. It emits
// "raise" once when a key's alarm turns on and "clear" once when it turns off;
// readings that leave the alarm in its state emit nothing, so a value hovering
// around the limit does not chatter (with Clear below Above for a high alarm).
//
// Extra event fields: limit (number: Above or Below for "raise", Clear for
// "clear") and since (time: for "raise", the event time of the first reading
// of the debounce run, which equals time when For is zero; for "clear", the
// event time of the raise).
//
// Threshold is Stateful and Queryable; its query rows are the key fields,
// rule, state (string: "ok", "pending" while For runs, "raised") and since
// (time: start of the pending run or time of the raise; null when ok).
func Threshold(cfg ThresholdConfig) Operator {
	o := &thresholdOp{cfg: cfg}
	o.init(cfg.Rule, cfg.Keys, cfg.Value)
	return o
}

type thresholdState struct {
	raised  bool
	pending bool
	since   int64
}

type thresholdOp struct {
	triggerRule[thresholdState]
	cfg   ThresholdConfig
	high  bool
	limit float64
	clear float64
	forMs int64

	evRaise, evClear Value
	limitV, clearV   Value
}

func (o *thresholdOp) Open(in []*Schema) (*Schema, error) {
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	if o.cfg.Above != nil {
		o.high, o.limit = true, *o.cfg.Above
	} else {
		o.limit = *o.cfg.Below
	}
	o.clear = o.limit
	if o.cfg.Clear != nil {
		o.clear = *o.cfg.Clear
	}
	o.forMs = o.cfg.For.Milliseconds()
	o.evRaise, o.evClear = String(EventRaise), String(EventClear)
	o.limitV, o.clearV = Number(o.limit), Number(o.clear)
	return o.open(in, Field{"limit", KindNumber}, Field{"since", KindTime})
}

func (o *thresholdOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	x := o.extra()
	for i := range b.Recs {
		r := &b.Recs[i]
		v, ok := o.value(ep, r, b.Schema)
		if !ok {
			continue
		}
		s, _ := o.slot(r)
		st := o.state(s)
		if st.raised {
			if (o.high && v <= o.clear) || (!o.high && v >= o.clear) {
				d := o.emit(out, s, o.evClear, r, v)
				d.Vals[x], d.Vals[x+1] = o.clearV, Time(st.since)
				*st = thresholdState{}
				o.markDirty(s)
			}
			continue
		}
		if (o.high && v > o.limit) || (!o.high && v < o.limit) {
			if !st.pending {
				st.pending, st.since = true, r.Time
				o.markDirty(s)
			}
			if r.Time-st.since >= o.forMs {
				d := o.emit(out, s, o.evRaise, r, v)
				d.Vals[x], d.Vals[x+1] = o.limitV, Time(st.since)
				*st = thresholdState{raised: true, since: r.Time}
				o.markDirty(s)
			}
		} else if st.pending {
			*st = thresholdState{}
			o.markDirty(s)
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// State value after the common part: flags byte (1 raised, 2 pending), since
// (varint).
func (o *thresholdOp) SaveState(w *StateWriter) error {
	return o.save(w, func(dst []byte, s int32) []byte {
		st := &o.st[s]
		var f byte
		if st.raised {
			f |= 1
		}
		if st.pending {
			f |= 2
		}
		return AppendVarint(append(dst, f), st.since)
	})
}

func (o *thresholdOp) LoadState(key, val []byte) error {
	s, rest, err := o.load(key, val)
	if err != nil {
		return err
	}
	f, rest, err := readByte(rest)
	if err != nil {
		return err
	}
	since, _, err := ReadVarint(rest)
	if err != nil {
		return err
	}
	*o.state(s) = thresholdState{raised: f&1 != 0, pending: f&2 != 0, since: since}
	return nil
}

func (o *thresholdOp) QuerySchema() *Schema {
	return o.querySchema(Field{"state", KindString}, Field{"since", KindTime})
}

func (o *thresholdOp) QueryState(fn func(r *Record) bool) {
	o.queryState(o.QuerySchema(), fn, func(r *Record, x int, st *thresholdState) {
		switch {
		case st.raised:
			r.Vals[x], r.Vals[x+1] = String("raised"), Time(st.since)
		case st.pending:
			r.Vals[x], r.Vals[x+1] = String("pending"), Time(st.since)
		default:
			r.Vals[x] = String("ok")
		}
	})
}
