package engine

import (
	"errors"
	"fmt"
	"math"
)

// EventAnomaly is the event Anomaly emits.
const EventAnomaly = "anomaly"

// AnomalyConfig configures Anomaly.
type AnomalyConfig struct {
	// Rule is copied into every event's rule field. Required.
	Rule string
	// Keys are the key fields; each key has its own model.
	Keys []string
	// Value is the numeric field watched. Empty means "value".
	Value string
	// Alpha is the weight of a new reading in the exponentially weighted
	// mean and variance, in (0, 1]. Zero means 0.1.
	Alpha float64
	// K is the width of the band in standard deviations. Zero means 3.
	K float64
	// Warmup is how many readings a model needs before it judges one.
	// Zero means 20.
	Warmup int
	// MinStd is the smallest standard deviation the band uses, so a
	// constant signal does not flag its first tiny change.
	MinStd float64
	// Baseline, when set, reads a seasonal baseline from a history table
	// (for example the same hour on each of the last 7 days): the model
	// then learns the readings' deviation from the baseline, and the
	// expected value is the baseline plus its mean deviation. A reading
	// with no baseline row is judged by the plain model.
	Baseline *AnomalyBaseline
}

// AnomalyBaseline is the seasonal baseline of Anomaly: the mean of Field
// over the rows Lookup reads (its Keys default to the anomaly's keys).
type AnomalyBaseline struct {
	Lookup HistoryLookup
	Field  string
}

func (c *AnomalyConfig) withDefaults() AnomalyConfig {
	d := *c
	if d.Alpha == 0 {
		d.Alpha = 0.1
	}
	if d.K == 0 {
		d.K = 3
	}
	if d.Warmup == 0 {
		d.Warmup = 20
	}
	if d.Baseline != nil {
		b := *d.Baseline
		if len(b.Lookup.Keys) == 0 {
			b.Lookup.Keys = d.Keys
		}
		d.Baseline = &b
	}
	return d
}

// Validate reports every problem of the config, naming the parameter.
func (c AnomalyConfig) Validate() error {
	var errs []error
	if err := checkRule(c.Rule); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkKeys(c.Keys)...)
	if c.Alpha < 0 || c.Alpha > 1 || math.IsNaN(c.Alpha) {
		errs = append(errs, fmt.Errorf("alpha: must be in (0, 1], have %s", fmtF(c.Alpha)))
	}
	if c.K < 0 || math.IsNaN(c.K) {
		errs = append(errs, fmt.Errorf("k: must be positive, have %s", fmtF(c.K)))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup: must not be negative, have %d", c.Warmup))
	}
	if c.MinStd < 0 {
		errs = append(errs, fmt.Errorf("minStd: must not be negative, have %s", fmtF(c.MinStd)))
	}
	if b := c.Baseline; b != nil {
		if b.Field == "" {
			errs = append(errs, errors.New("baseline.field: required"))
		}
		l := b.Lookup
		if len(l.Keys) == 0 {
			l.Keys = c.Keys
		}
		if err := l.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("baseline: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Anomaly keeps a small online model per key and emits an "anomaly" event
// when a reading lies more than K standard deviations from the value the
// model expects. The model is an exponentially weighted mean and variance
// of the readings (weight Alpha); with a Baseline it also learns the
// readings' deviation from a seasonal baseline read from a history table.
// A reading is judged against the model before it updates it, and only
// once the model has seen Warmup readings. An anomalous reading updates the
// model as if it lay on the band's edge, so one spike does not widen the
// band for the readings after it.
//
// Extra event fields: expected, lower, upper (number: the band), score
// (number: the reading's distance from expected in standard deviations,
// signed; null when the deviation is 0) and baseline (number: the baseline
// used, null without one).
//
// Anomaly is Stateful (a checkpoint entry of about 36 bytes plus twice the
// encoded key: 64 bytes for an 11-character sensor id) and Queryable:
// its query rows are the key fields, rule, n, mean, std, and with a
// baseline bn, bmean and bstd (the deviation model).
func Anomaly(cfg AnomalyConfig) Operator {
	c := cfg.withDefaults()
	o := &anomalyOp{cfg: c}
	o.init(c.Rule, c.Keys, c.Value)
	if c.Baseline != nil {
		o.h = &historyReader{l: c.Baseline.Lookup, want: []Field{{Name: c.Baseline.Field, Kind: KindNumber}}}
	}
	return o
}

// ewModel is an exponentially weighted mean and variance.
type ewModel struct {
	n        uint32
	mean, vr float64
}

// band returns the expected value and standard deviation, and whether the
// model is warm.
func (m *ewModel) band(warmup uint32, minStd float64) (mean, std float64, ok bool) {
	return m.mean, max(math.Sqrt(m.vr), minStd), m.n >= warmup
}

// update adds x with weight a.
func (m *ewModel) update(x, a float64) {
	if m.n == 0 {
		m.mean, m.vr = x, 0
	} else {
		d := x - m.mean
		m.mean += a * d
		m.vr = (1 - a) * (m.vr + a*d*d)
	}
	if m.n < math.MaxUint32 {
		m.n++
	}
}

// observe judges x against the model (when warm), then updates it with x
// clamped to the band; it returns the band and whether x lies outside.
func (m *ewModel) observe(x float64, c *AnomalyConfig) (mean, std float64, warm, out bool) {
	mean, std, warm = m.band(uint32(c.Warmup), c.MinStd)
	xc := x
	if warm {
		lo, hi := mean-c.K*std, mean+c.K*std
		out = x < lo || x > hi
		xc = min(max(x, lo), hi)
	}
	m.update(xc, c.Alpha)
	return mean, std, warm, out
}

type anomalyState struct {
	plain, dev ewModel
}

type anomalyOp struct {
	triggerRule[anomalyState]
	cfg AnomalyConfig
	h   *historyReader
	in  *Schema
	ev  Value
}

func (o *anomalyOp) Open(in []*Schema) (*Schema, error) {
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	o.ev = String(EventAnomaly)
	out, err := o.open(in, Field{"expected", KindNumber}, Field{"lower", KindNumber},
		Field{"upper", KindNumber}, Field{"score", KindNumber}, Field{"baseline", KindNumber})
	if err != nil {
		return nil, err
	}
	o.in = in[0]
	if o.h != nil {
		if err := o.h.open(in[0]); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	return out, nil
}

func (o *anomalyOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	if b.Len() == 0 {
		return nil
	}
	var err error
	if o.h != nil {
		err = o.h.view(func(v TableView) error { return o.run(ep, b, out, v) })
	} else {
		err = o.run(ep, b, out, nil)
	}
	ep.Stats.add(b.Len(), out.Len())
	return err
}

func (o *anomalyOp) run(ep *Epoch, b *Batch, out *Batch, v TableView) error {
	x := o.extra()
	c := &o.cfg
	for i := range b.Recs {
		r := &b.Recs[i]
		val, ok := o.value(ep, r, b.Schema)
		if !ok {
			continue
		}
		base, hasBase := 0.0, false
		if v != nil {
			n, err := o.h.lookup(v, r)
			if err != nil {
				return err
			}
			if bv := o.h.single[0]; n > 0 && bv.Kind == KindNumber {
				base, hasBase = bv.Num, true
			}
		}
		s, _ := o.slot(r)
		st := o.state(s)
		o.markDirty(s)
		mean, std, warm, anomalous := st.plain.observe(val, c)
		if hasBase {
			// The deviation model judges when it is warm; the plain model
			// keeps learning either way, for readings without a baseline.
			dm, dstd, dwarm, dout := st.dev.observe(val-base, c)
			if dwarm {
				mean, std, warm, anomalous = base+dm, dstd, true, dout
			}
		}
		if !warm || !anomalous {
			continue
		}
		d := o.emit(out, s, o.ev, r, val)
		d.Vals[x], d.Vals[x+1], d.Vals[x+2] = Number(mean), Number(mean-c.K*std), Number(mean+c.K*std)
		if std > 0 {
			d.Vals[x+3] = Number((val - mean) / std)
		}
		if hasBase {
			d.Vals[x+4] = Number(base)
		}
	}
	return nil
}

// State value after the common part: per model n (uvarint), mean, variance.
func (o *anomalyOp) SaveState(w *StateWriter) error {
	return o.save(w, func(dst []byte, s int32) []byte {
		st := &o.st[s]
		for _, m := range []*ewModel{&st.plain, &st.dev} {
			dst = AppendVarint(dst, int64(m.n))
			dst = appendF64(appendF64(dst, m.mean), m.vr)
		}
		return dst
	})
}

func (o *anomalyOp) LoadState(key, val []byte) error {
	s, rest, err := o.load(key, val)
	if err != nil {
		return err
	}
	st := o.state(s)
	for _, m := range []*ewModel{&st.plain, &st.dev} {
		var n int64
		if n, rest, err = ReadVarint(rest); err != nil {
			return err
		}
		if m.mean, rest, err = readF64(rest); err != nil {
			return err
		}
		if m.vr, rest, err = readF64(rest); err != nil {
			return err
		}
		m.n = uint32(n)
	}
	return nil
}

func (o *anomalyOp) QuerySchema() *Schema {
	f := []Field{{"n", KindNumber}, {"mean", KindNumber}, {"std", KindNumber}}
	if o.h != nil {
		f = append(f, Field{"bn", KindNumber}, Field{"bmean", KindNumber}, Field{"bstd", KindNumber})
	}
	return o.querySchema(f...)
}

func (o *anomalyOp) QueryState(fn func(r *Record) bool) {
	o.queryState(o.QuerySchema(), fn, func(r *Record, x int, st *anomalyState) {
		r.Vals[x], r.Vals[x+1], r.Vals[x+2] = Number(float64(st.plain.n)), Number(st.plain.mean), Number(math.Sqrt(st.plain.vr))
		if o.h != nil {
			r.Vals[x+3], r.Vals[x+4], r.Vals[x+5] = Number(float64(st.dev.n)), Number(st.dev.mean), Number(math.Sqrt(st.dev.vr))
		}
	})
}

func (o *anomalyOp) tableUse() TableUse {
	if o.h == nil {
		return TableUse{}
	}
	return o.h.use(o.in)
}

func (o *anomalyOp) setTables(t TableReader) {
	if o.h != nil {
		o.h.setTables(t)
	}
}

// ChunkSafe: each record updates its key's model in input order.
func (o *anomalyOp) ChunkSafe() bool { return true }
