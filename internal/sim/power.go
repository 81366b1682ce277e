package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// PowerConfig describes simulated machines: each draws power in duty cycles,
// running (hundreds of watts) for Run, then idle (a few watts) for Idle, the
// machines' cycles staggered. Their readings feed the example sessions
// pipeline (configs/pipelines/sessions.yaml), whose session gap must be
// shorter than Idle for runs to end.
type PowerConfig struct {
	// Machines is the number of machines, named lathe-1, press-1, mill-1,
	// drill-1, lathe-2, ... Must be at least 1.
	Machines int
	// Seed makes the readings reproducible.
	Seed uint64
	// Run and Idle are the lengths of the running and idle phases. Zero
	// means 30s and 75s.
	Run, Idle time.Duration
}

// Validate reports every problem at once, naming the field at fault.
func (c PowerConfig) Validate() error {
	var errs []error
	if c.Machines < 1 {
		errs = append(errs, fmt.Errorf("machines: must be at least 1, got %d", c.Machines))
	}
	if c.Run < 0 || c.Idle < 0 {
		errs = append(errs, errors.New("machine run and idle phases must not be negative"))
	}
	return errors.Join(errs...)
}

// PowerGenerator produces machine power readings:
//
//	{"machine":"lathe-1","ts":1700000000000,"watts":612.4}
//
// It is not safe for concurrent use.
type PowerGenerator struct {
	rng       *rand.Rand
	names     []string
	base      []float64 // running draw per machine, W
	run, idle int64     // ms
	start     int64
	started   bool
}

var machineKinds = []string{"lathe", "press", "mill", "drill"}

// NewPower returns a PowerGenerator for cfg, or cfg.Validate's error.
func NewPower(cfg PowerConfig) (*PowerGenerator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &PowerGenerator{rng: rand.New(rand.NewPCG(cfg.Seed, 0xfa11)), run: cfg.Run.Milliseconds(), idle: cfg.Idle.Milliseconds()}
	if g.run == 0 {
		g.run = 30_000
	}
	if g.idle == 0 {
		g.idle = 75_000
	}
	for i := range cfg.Machines {
		g.names = append(g.names, machineKinds[i%len(machineKinds)]+"-"+strconv.Itoa(i/len(machineKinds)+1))
		g.base = append(g.base, 350+450*g.rng.Float64())
	}
	return g, nil
}

// Machines returns the number of machines.
func (g *PowerGenerator) Machines() int { return len(g.names) }

// MachineID returns the name of machine i, e.g. "press-1".
func (g *PowerGenerator) MachineID(i int) string { return g.names[i] }

// Running reports whether machine i runs at ts (unix ms). The first machine
// starts a run at the first timestamp Next saw; the others follow a third of
// a cycle apart.
func (g *PowerGenerator) Running(i int, ts int64) bool {
	if !g.started {
		return false
	}
	cycle := g.run + g.idle
	phase := (ts - g.start + int64(i)*cycle/3) % cycle
	if phase < 0 {
		phase += cycle
	}
	return phase < g.run
}

// Next appends the reading of machine i at ts (unix ms) to dst.
func (g *PowerGenerator) Next(dst []byte, i int, ts int64) []byte {
	if !g.started {
		g.start, g.started = ts, true
	}
	w := 1 + 7*g.rng.Float64() // idle draw
	if g.Running(i, ts) {
		w = g.base[i] * (0.85 + 0.3*g.rng.Float64())
	}
	dst = append(dst, `{"machine":"`...)
	dst = append(dst, g.names[i]...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"watts":`...)
	dst = strconv.AppendFloat(dst, w, 'f', 1, 64)
	return append(dst, '}')
}

// Defaults of edgectl sim, chosen so that with no flags it feeds every
// example pipeline of configs/pipelines (checked by a test in package node).
const (
	DefaultSensors      = 6 // s-0000 to s-0005: the example device table
	DefaultMachines     = 2 // lathe-1, press-1
	DefaultTopic        = "sensors/{sensor}/reading"
	DefaultMachineTopic = "machines/{machine}/power"
)
