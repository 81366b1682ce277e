package bus

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler takes the readings of a Poller. HandleReading is called from one
// goroutine per sensor (so concurrently for several sensors) and may block;
// it must not retain payload after returning. An error means the reading
// was not taken: it is counted as dropped and the sensor goes on with its
// next reading (a pulse count is cumulative, so the next reading carries
// the edges of a dropped one).
type Handler interface {
	HandleReading(ctx context.Context, topic string, payload []byte) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, topic string, payload []byte) error

// HandleReading calls f.
func (f HandlerFunc) HandleReading(ctx context.Context, topic string, payload []byte) error {
	return f(ctx, topic, payload)
}

// Sensor is one sensor of a pipeline: the source it feeds and its Config,
// which must be valid.
type Sensor struct {
	Pipeline string
	Source   string
	Config   Config
}

// Options are a Poller's knobs.
type Options struct {
	// Logger receives read errors and recoveries; nil discards.
	Logger *slog.Logger
	// StateDir holds the count files of pulse counters
	// (<pipeline>.<source>.count). Required when a sensor is a counter.
	StateDir string
	// BackoffMin and BackoffMax bound the wait before a failed sensor is
	// opened again; it doubles after each failure. Zero means 1s and 1m.
	BackoffMin, BackoffMax time.Duration
}

// DefaultOptions returns the defaults: a backoff from 1 s to 1 min.
func DefaultOptions() Options {
	return Options{
		BackoffMin: time.Second, // a glitch on the bus is retried soon
		BackoffMax: time.Minute, // an unplugged sensor costs one try a minute
	}
}

// SensorStatus is the state of one sensor.
type SensorStatus struct {
	Pipeline string `json:"pipeline"`
	Source   string `json:"source"`
	Device   string `json:"device"`
	// Where is the bus and address, e.g. "i2c bus 1 addr 0x76".
	Where string `json:"where"`
	// State is starting (not read yet), ok or failing.
	State string `json:"state"`
	// Reads counts readings taken, Errors failed opens and reads, Dropped
	// readings the Handler refused.
	Reads   uint64 `json:"reads"`
	Errors  uint64 `json:"errors"`
	Dropped uint64 `json:"dropped"`
	// LastRead is the time of the last reading (zero before the first).
	LastRead time.Time `json:"lastRead,omitzero"`
	// LastError is the last open or read error, while failing.
	LastError string `json:"lastError,omitempty"`
	// RetryIn is the current backoff, while failing.
	RetryIn Duration `json:"retryIn,omitempty"`
}

// Duration is a time.Duration that reads as text in JSON ("1m0s").
type Duration time.Duration

// MarshalText formats d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String formats d as time.Duration.String does.
func (d Duration) String() string { return time.Duration(d).String() }

// Poller reads a set of sensors, each on its own interval, and hands the
// readings to a Handler.
type Poller struct {
	host    Host
	handler Handler
	opts    Options
	log     *slog.Logger
	sensors []*sensor
}

type sensor struct {
	Sensor
	topic    string
	measured []Field
	static   []byte // `,"k":"v"` for the constant fields
	scale    []float64
	offset   []float64

	mu sync.Mutex
	st SensorStatus
}

// NewPoller returns a Poller of sensors on host. Zero Options fields take
// their DefaultOptions values.
func NewPoller(host Host, sensors []Sensor, h Handler, o Options) *Poller {
	d := DefaultOptions()
	if o.BackoffMin <= 0 {
		o.BackoffMin = d.BackoffMin
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(d.BackoffMax, o.BackoffMin)
	}
	p := &Poller{host: host, handler: h, opts: o, log: o.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	for _, sc := range sensors {
		s := &sensor{Sensor: sc, topic: Topic(sc.Pipeline, sc.Source), measured: sc.Config.Measured()}
		s.st = SensorStatus{Pipeline: sc.Pipeline, Source: sc.Source, Device: sc.Config.Device,
			Where: sc.Config.Where(), State: "starting"}
		for _, k := range sortedKeys(sc.Config.Fields) {
			s.static = appendJSONString(append(appendJSONString(append(s.static, ','), k), ':'), sc.Config.Fields[k])
		}
		for _, f := range s.measured {
			scale, off := 1.0, 0.0
			if cal, ok := sc.Config.Calibrate[f.Name]; ok {
				off = cal.Offset
				if cal.Scale != nil {
					scale = *cal.Scale
				}
			}
			s.scale, s.offset = append(s.scale, scale), append(s.offset, off)
		}
		p.sensors = append(p.sensors, s)
	}
	return p
}

// Run reads every sensor until ctx ends, then closes them and returns nil.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range p.sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

// Status returns the state of every sensor, in the order given to NewPoller.
func (p *Poller) Status() []SensorStatus {
	out := make([]SensorStatus, len(p.sensors))
	for i, s := range p.sensors {
		s.mu.Lock()
		out[i] = s.st
		s.mu.Unlock()
	}
	return out
}

// CountFile returns the count file of a pipeline source's pulse counter in
// dir.
func CountFile(dir, pipeline, source string) string {
	return filepath.Join(dir, pipeline+"."+source+".count")
}

// run is one sensor's loop: open, read every interval, and on an error
// close, wait the backoff and open again.
func (p *Poller) run(ctx context.Context, s *sensor) {
	var (
		m       meter
		backoff time.Duration
		next    time.Time
		buf     []byte
	)
	defer func() {
		if m != nil {
			if err := m.close(); err != nil {
				p.log.Warn("bus sensor close", p.attrs(s, err)...)
			}
		}
	}()
	vals := make([]float64, len(s.measured))
	countFile := ""
	if s.Config.GPIO != nil && s.Config.GPIO.Mode == "counter" {
		countFile = CountFile(p.opts.StateDir, s.Pipeline, s.Source)
	}
	fail := func(err error) {
		backoff = min(max(2*backoff, p.opts.BackoffMin), p.opts.BackoffMax)
		s.mu.Lock()
		s.st.Errors++
		first := s.st.State != "failing"
		// periph's bmxx80 prefixes errors with the chip name, empty before
		// the chip answered.
		s.st.State, s.st.LastError, s.st.RetryIn = "failing", strings.TrimPrefix(err.Error(), ": "), Duration(backoff)
		s.mu.Unlock()
		lvl := slog.LevelWarn
		if !first {
			lvl = slog.LevelDebug // each retry is counted; the first says it
		}
		p.log.Log(ctx, lvl, "bus sensor failing", append(p.attrs(s, err), "retryIn", backoff)...)
	}
	for {
		if m == nil {
			var err error
			if m, err = openMeter(p.host, &s.Config, countFile); err != nil {
				m = nil
				fail(err)
				if !sleep(ctx, backoff) {
					return
				}
				continue
			}
			next = time.Now()
		}
		if !sleep(ctx, time.Until(next)) {
			return
		}
		t := time.Now()
		if err := m.read(vals); err != nil {
			if cerr := m.close(); cerr != nil {
				p.log.Debug("bus sensor close", p.attrs(s, cerr)...)
			}
			m = nil
			fail(err)
			if !sleep(ctx, backoff) {
				return
			}
			continue
		}
		if backoff > 0 {
			p.log.Info("bus sensor recovered", "pipeline", s.Pipeline, "source", s.Source,
				"device", s.Config.Device, "where", s.st.Where)
			backoff = 0
		}
		buf = s.appendReading(buf[:0], t, vals)
		err := p.handler.HandleReading(ctx, s.topic, buf)
		s.mu.Lock()
		s.st.Reads++
		s.st.State, s.st.LastError, s.st.RetryIn, s.st.LastRead = "ok", "", 0, t
		if err != nil && ctx.Err() == nil {
			s.st.Dropped++
		}
		s.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			p.log.Warn("bus reading dropped", "pipeline", s.Pipeline, "source", s.Source, "err", err)
		}
		// The next read is one interval after this one was due; a read that
		// overran skips the readings it missed instead of bursting.
		next = next.Add(s.Config.Interval)
		if now := time.Now(); next.Before(now) {
			next = now.Add(s.Config.Interval)
		}
	}
}

func (p *Poller) attrs(s *sensor, err error) []any {
	return []any{"pipeline", s.Pipeline, "source", s.Source, "device", s.Config.Device,
		"where", s.st.Where, "err", err}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// appendReading appends the JSON payload of one reading taken at t:
// {"time":<unix ms>,<measured fields>,<constant fields>}.
func (s *sensor) appendReading(b []byte, t time.Time, vals []float64) []byte {
	b = append(b, `{"time":`...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	for i, f := range s.measured {
		b = append(appendJSONString(append(b, ','), f.Name), ':')
		v := vals[i]
		if f.Kind == "bool" {
			b = strconv.AppendBool(b, v != 0)
			continue
		}
		v = v*s.scale[i] + s.offset[i]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	b = append(b, s.static...)
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
