package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// RateDirection selects which changes RateOfChange reports.
type RateDirection uint8

// The directions of RateOfChange. The zero value reports both.
const (
	RateBoth    RateDirection = iota // |rate| > MaxRate
	RateRising                       // rate > MaxRate
	RateFalling                      // rate < -MaxRate
)

var rateDirNames = [...]string{"both", "rising", "falling"}

// String returns the direction's spec name: both, rising or falling.
func (d RateDirection) String() string {
	if int(d) < len(rateDirNames) {
		return rateDirNames[d]
	}
	return fmt.Sprintf("direction(%d)", d)
}

// ParseRateDirection maps a spec name (both, rising, falling; "" is both) to
// its RateDirection.
func ParseRateDirection(s string) (RateDirection, bool) {
	switch strings.ToLower(s) {
	case "", "both", "any":
		return RateBoth, true
	case "rising", "up":
		return RateRising, true
	case "falling", "down":
		return RateFalling, true
	}
	return 0, false
}

// Bounds of RateOfChangeConfig.WindowPoints.
const (
	DefaultRateWindowPoints = 32   // points kept per key when WindowPoints is 0
	MaxRateWindowPoints     = 1024 // largest accepted WindowPoints
)

// RateOfChangeConfig configures RateOfChange.
type RateOfChangeConfig struct {
	// Rule is the rule name, copied into every event's rule field. Required.
	Rule string
	// Keys are the key fields; rates are computed per key. Empty means one
	// global series.
	Keys []string
	// Value is the numeric field watched. Empty means "value".
	Value string
	// MaxRate is the largest allowed rate, in value units per Per; the rule
	// fires when the rate is beyond it (see Direction). Must be >= 0 (0 fires on
	// any change in the chosen direction).
	MaxRate float64
	// Per is the time unit of rates (for example time.Minute for "degrees per
	// minute"). Zero means one second; otherwise at least one millisecond.
	Per time.Duration
	// Direction selects rising, falling or both (the zero value).
	Direction RateDirection
	// Window, when set, compares each reading with the oldest reading of the
	// key within the last Window of event time (t - Window <= t' < t) instead
	// of with the previous reading; a reading with no earlier reading in the
	// window is not compared. Zero compares with the previous reading.
	Window time.Duration
	// WindowPoints bounds the readings kept per key for Window: when more
	// readings fall within the window, the oldest are dropped, so the
	// comparison is against the oldest retained one (a shorter span). Zero
	// means DefaultRateWindowPoints; at most MaxRateWindowPoints. Memory is
	// 16 bytes per point per key. Ignored without Window.
	WindowPoints int
}

// Validate reports every problem of the config, naming the parameter.
func (c RateOfChangeConfig) Validate() error {
	var errs []error
	if err := checkRule(c.Rule); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkKeys(c.Keys)...)
	if !(c.MaxRate >= 0) || math.IsInf(c.MaxRate, 0) {
		errs = append(errs, fmt.Errorf("max_rate: must be a finite number >= 0, have %s", fmtF(c.MaxRate)))
	}
	if c.Per < 0 || (c.Per > 0 && c.Per < time.Millisecond) {
		errs = append(errs, fmt.Errorf("per: must be 0 (one second) or >= 1ms, have %s", c.Per))
	}
	if c.Direction > RateFalling {
		errs = append(errs, fmt.Errorf("direction: unknown direction %d (want both, rising or falling)", c.Direction))
	}
	if c.Window < 0 || (c.Window > 0 && c.Window < time.Millisecond) {
		errs = append(errs, fmt.Errorf("window: must be 0 (previous reading) or >= 1ms, have %s", c.Window))
	}
	if c.WindowPoints < 0 || c.WindowPoints > MaxRateWindowPoints {
		errs = append(errs, fmt.Errorf("window_points: must be between 0 and %d, have %d", MaxRateWindowPoints, c.WindowPoints))
	}
	return errors.Join(errs...)
}

// RateOfChange fires "rate" for every reading whose rate of change against the
// key's previous reading (or, with Window, the oldest reading in the window) is
// beyond MaxRate: rate = (v - v') / (t - t') per Per, t in event time.
//
// A reading whose event time is not after the key's latest accepted reading
// is out of order: it is counted in Stats.Late and ignored (it changes no
// state). The first reading of a key only sets the reference.
//
// Extra event field: rate (number: the computed rate, signed).
//
// RateOfChange is Stateful and Queryable; its query rows are the key fields,
// rule, value and time (the key's latest reading) and points (readings held
// in the window, 0 without Window).
func RateOfChange(cfg RateOfChangeConfig) Operator {
	o := &rateOp{cfg: cfg}
	o.init(cfg.Rule, cfg.Keys, cfg.Value)
	return o
}

type ratePoint struct {
	t int64
	v float64
}

type rateState struct {
	last    ratePoint
	has     bool
	head, n uint16 // ring of window points: pts[slot*ringCap+(head+i)%ringCap]
}

type rateOp struct {
	triggerRule[rateState]
	cfg      RateOfChangeConfig
	per      float64 // ms
	max      float64
	windowMs int64
	ringCap  int // 0 without Window
	pts      []ratePoint
	evRate   Value
}

func (o *rateOp) Open(in []*Schema) (*Schema, error) {
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	o.per = float64(time.Second.Milliseconds())
	if o.cfg.Per > 0 {
		o.per = float64(o.cfg.Per.Milliseconds())
	}
	o.max = o.cfg.MaxRate
	o.windowMs = o.cfg.Window.Milliseconds()
	if o.windowMs > 0 {
		o.ringCap = o.cfg.WindowPoints
		if o.ringCap == 0 {
			o.ringCap = DefaultRateWindowPoints
		}
	}
	o.evRate = String(EventRate)
	return o.open(in, Field{"rate", KindNumber})
}

func (o *rateOp) grow() {
	o.st = append(o.st, rateState{})
	if o.ringCap > 0 {
		o.pts = append(o.pts, make([]ratePoint, o.ringCap)...)
	}
}

func (o *rateOp) fires(rate float64) bool {
	switch o.cfg.Direction {
	case RateRising:
		return rate > o.max
	case RateFalling:
		return rate < -o.max
	}
	return math.Abs(rate) > o.max
}

func (o *rateOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	x := o.extra()
	for i := range b.Recs {
		r := &b.Recs[i]
		v, ok := o.value(ep, r, b.Schema)
		if !ok {
			continue
		}
		s, added := o.slot(r)
		if added {
			o.grow()
		}
		st := &o.st[s]
		if st.has && r.Time <= st.last.t {
			ep.Stats.Late++
			continue
		}
		ref, hasRef := st.last, st.has
		if o.ringCap > 0 {
			ring := o.pts[int(s)*o.ringCap : int(s)*o.ringCap+o.ringCap]
			for st.n > 0 && ring[st.head].t < r.Time-o.windowMs {
				st.head = uint16((int(st.head) + 1) % o.ringCap)
				st.n--
			}
			hasRef = st.n > 0
			if hasRef {
				ref = ring[st.head]
			}
			if int(st.n) == o.ringCap {
				st.head = uint16((int(st.head) + 1) % o.ringCap)
				st.n--
			}
			ring[(int(st.head)+int(st.n))%o.ringCap] = ratePoint{r.Time, v}
			st.n++
		}
		if hasRef {
			rate := (v - ref.v) / float64(r.Time-ref.t) * o.per
			if o.fires(rate) {
				d := o.emit(out, s, o.evRate, r, v)
				d.Vals[x] = Number(rate)
			}
		}
		st.last, st.has = ratePoint{r.Time, v}, true
		o.markDirty(s)
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// State value after the common part: last time (varint), last value (f64),
// number of window points (varint), then each point oldest first (time
// varint, value f64).
func (o *rateOp) SaveState(w *StateWriter) error {
	return o.save(w, func(dst []byte, s int32) []byte {
		st := &o.st[s]
		dst = AppendVarint(dst, st.last.t)
		dst = appendF64(dst, st.last.v)
		dst = AppendVarint(dst, int64(st.n))
		for i := 0; i < int(st.n); i++ {
			p := o.pts[int(s)*o.ringCap+(int(st.head)+i)%o.ringCap]
			dst = AppendVarint(dst, p.t)
			dst = appendF64(dst, p.v)
		}
		return dst
	})
}

func (o *rateOp) LoadState(key, val []byte) error {
	s, rest, err := o.load(key, val)
	if err != nil {
		return err
	}
	for int(s) >= len(o.st) {
		o.grow()
	}
	var st rateState
	if st.last.t, rest, err = ReadVarint(rest); err != nil {
		return err
	}
	if st.last.v, rest, err = readF64(rest); err != nil {
		return err
	}
	n, rest, err := ReadVarint(rest)
	if err != nil {
		return err
	}
	st.has = true
	// A checkpoint written with a larger WindowPoints keeps its newest points.
	skip := 0
	if int(n) > o.ringCap {
		skip = int(n) - o.ringCap
	}
	for i := 0; i < int(n); i++ {
		var p ratePoint
		if p.t, rest, err = ReadVarint(rest); err != nil {
			return err
		}
		if p.v, rest, err = readF64(rest); err != nil {
			return err
		}
		if i >= skip {
			o.pts[int(s)*o.ringCap+int(st.n)] = p
			st.n++
		}
	}
	o.st[s] = st
	return nil
}

func (o *rateOp) QuerySchema() *Schema {
	return o.querySchema(Field{"value", KindNumber}, Field{"time", KindTime}, Field{"points", KindNumber})
}

func (o *rateOp) QueryState(fn func(r *Record) bool) {
	o.queryState(o.QuerySchema(), fn, func(r *Record, x int, st *rateState) {
		r.Vals[x], r.Vals[x+1], r.Vals[x+2] = Number(st.last.v), Time(st.last.t), Int(int64(st.n))
	})
}
