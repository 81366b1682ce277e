// Package sim generates realistic synthetic sensor readings for load tests:
// JSON payloads whose values drift slowly per sensor (a mean-reverting random
// walk), with occasional spikes and, on request, a fraction of malformed
// payloads. Generation is deterministic for a seed, so a run can be replayed.
//
// A payload looks like
//
//	{"sensor":"s-0042","seq":17,"ts":1700000000000,"temp":21.37,"hum":40.1,"battery":87}
//
// where seq counts every payload the Generator produced (from 0, across all
// sensors, malformed ones included) so a consumer can detect loss and
// duplication. The package imports only the standard library.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// Plausible ranges: readings never leave them (spikes included).
const (
	MinTemp, MaxTemp       = -40.0, 85.0 // °C, a typical digital sensor's range
	MinHum, MaxHum         = 0.0, 100.0  // % relative humidity
	MinBattery, MaxBattery = 0.0, 100.0  // %
)

// Config describes what a Generator produces.
type Config struct {
	// Sensors is the number of simulated sensors, with ids s-0000,
	// s-0001, ... (wider when there are more than 10,000). Readings go to
	// them round-robin. Must be at least 1.
	Sensors int

	// Seed makes generation reproducible: the same Config yields the same
	// payloads for the same timestamps. Zero is a valid seed.
	Seed uint64

	// Malformed is the fraction of payloads, in [0, 1], that are broken:
	// truncated JSON, a wrong type, a missing ts field, invalid UTF-8,
	// a non-JSON number or plain text. Zero means none.
	Malformed float64

	// Spikes is the fraction of readings, in [0, 1], whose temperature
	// jumps 15 to 30 °C away from the sensor's walk for that one reading.
	// Zero means none.
	Spikes float64

	// NoSequence leaves out the "seq" field. The zero value includes it.
	NoSequence bool
}

// Validate reports every problem at once, naming the field at fault.
func (c Config) Validate() error {
	var errs []error
	if c.Sensors < 1 {
		errs = append(errs, fmt.Errorf("sensors: must be at least 1, got %d", c.Sensors))
	}
	if !(c.Malformed >= 0 && c.Malformed <= 1) {
		errs = append(errs, fmt.Errorf("malformed: must be a fraction in [0, 1], got %v", c.Malformed))
	}
	if !(c.Spikes >= 0 && c.Spikes <= 1) {
		errs = append(errs, fmt.Errorf("spikes: must be a fraction in [0, 1], got %v", c.Spikes))
	}
	return errors.Join(errs...)
}

// Kind says what Next produced.
type Kind uint8

const (
	Normal    Kind = iota // a well-formed reading on the sensor's walk
	Spike                 // a well-formed reading with a temperature spike
	Malformed             // a broken payload (see Config.Malformed)
)

func (k Kind) String() string {
	switch k {
	case Normal:
		return "normal"
	case Spike:
		return "spike"
	case Malformed:
		return "malformed"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

type sensor struct {
	baseTemp, temp float64
	baseHum, hum   float64
	battery        float64
}

// Generator produces payloads. It is not safe for concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	ids     []string
	sensors []sensor
	seq     uint64
}

// New returns a Generator for cfg, or cfg.Validate's error.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x5eed_ed6ed)),
		ids:     make([]string, cfg.Sensors),
		sensors: make([]sensor, cfg.Sensors),
	}
	width := max(4, len(strconv.Itoa(cfg.Sensors-1)))
	for i := range g.sensors {
		g.ids[i] = fmt.Sprintf("s-%0*d", width, i)
		s := &g.sensors[i]
		s.baseTemp = 14 + 12*g.rng.Float64() // indoor/outdoor mild climate
		s.temp = s.baseTemp
		s.baseHum = 30 + 40*g.rng.Float64()
		s.hum = s.baseHum
		s.battery = 60 + 40*g.rng.Float64()
	}
	return g, nil
}

// Sensors returns the number of sensors.
func (g *Generator) Sensors() int { return len(g.ids) }

// SensorID returns the id of sensor i, e.g. "s-0042".
func (g *Generator) SensorID(i int) string { return g.ids[i] }

// Seq returns the sequence number the next payload will carry.
func (g *Generator) Seq() uint64 { return g.seq }

// Next appends the next payload, stamped with ts (unix milliseconds), to dst
// and returns the extended slice, the index of its sensor and its kind. It
// does not allocate when dst has room (about 100 bytes).
func (g *Generator) Next(dst []byte, ts int64) (payload []byte, sensorIdx int, kind Kind) {
	seq := g.seq
	g.seq++
	i := int(seq % uint64(len(g.sensors)))
	s := &g.sensors[i]

	// Mean-reverting random walks: stationary spread about 0.7 °C and 1.4 %.
	s.temp = clamp(s.temp+0.01*(s.baseTemp-s.temp)+0.1*g.rng.NormFloat64(), MinTemp, MaxTemp)
	s.hum = clamp(s.hum+0.01*(s.baseHum-s.hum)+0.2*g.rng.NormFloat64(), MinHum, MaxHum)
	s.battery -= 0.002 * g.rng.Float64()
	if s.battery < 5 {
		s.battery = MaxBattery // replaced
	}

	// Draw the same numbers whatever the fractions, so that changing
	// Spikes or Malformed changes which payloads are special, not the walks.
	spike, jump, sign := g.rng.Float64(), 15+15*g.rng.Float64(), g.rng.IntN(2)
	broken, shape := g.rng.Float64(), g.rng.IntN(numBad)
	temp := s.temp
	kind = Normal
	if spike < g.cfg.Spikes {
		kind = Spike
		if sign == 0 {
			jump = -jump
		}
		temp = clamp(temp+jump, MinTemp, MaxTemp)
	}
	bad := -1
	if broken < g.cfg.Malformed {
		kind = Malformed
		bad = shape
	}

	start := len(dst)
	if bad == badText {
		return append(dst, "sensor offline: check wiring"...), i, kind
	}
	dst = append(dst, `{"sensor":"`...)
	if bad == badUTF8 {
		dst = append(dst, "s-\xff\xfe"...)
	} else {
		dst = append(dst, g.ids[i]...)
	}
	dst = append(dst, '"')
	if !g.cfg.NoSequence {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	if bad != badNoTS {
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, ts, 10)
	}
	dst = append(dst, `,"temp":`...)
	switch bad {
	case badType:
		dst = append(dst, '"')
		dst = strconv.AppendFloat(dst, temp, 'f', 2, 64)
		dst = append(dst, '"')
	case badNaN:
		dst = append(dst, "NaN"...)
	default:
		dst = strconv.AppendFloat(dst, temp, 'f', 2, 64)
	}
	dst = append(dst, `,"hum":`...)
	dst = strconv.AppendFloat(dst, s.hum, 'f', 1, 64)
	dst = append(dst, `,"battery":`...)
	dst = strconv.AppendInt(dst, int64(math.Round(s.battery)), 10)
	dst = append(dst, '}')
	if bad == badTruncated {
		dst = dst[:start+(len(dst)-start)/2]
	}
	return dst, i, kind
}

// Malformed payload shapes.
const (
	badTruncated = iota // JSON cut in the middle
	badType             // "temp" is a string
	badNoTS             // no "ts" field
	badUTF8             // invalid UTF-8 in the sensor id
	badNaN              // NaN is not JSON
	badText             // not JSON at all
	numBad
)

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }
