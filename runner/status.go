package runner

import (
	"maps"
	"time"

	"github.com/edgedio/edged/engine"
)

// Status is a copy of a runner's figures after its last epoch.
type Status struct {
	Pipeline string
	// Epoch counts the pipeline's committed epochs.
	Epoch uint64
	// LastTime is the processing time of the last epoch run (unix ms).
	LastTime int64
	// Watermark is the lowest event-time watermark of the held partitions
	// that have one (engine.NoWatermark if none).
	Watermark int64
	// Position is the committed input position per log (next offset).
	Position map[string]uint64
	// Replay is where a restart resumes reading each log: Position, or
	// the position of the last state checkpoint while the epochs since are
	// kept to be replayed (Config.StateEvery). The log must keep the
	// entries from there.
	Replay map[string]uint64
	// Backlog is the number of entries logged after Position, per log.
	Backlog map[string]uint64
	// DecodeErrors counts input that became dead letters; OperatorRejects
	// records that a step rejected.
	DecodeErrors    uint64
	OperatorRejects uint64
	// LastError is the last epoch's error ("" after a good epoch).
	LastError string
	// Steps are every step's counters, summed over the held partitions.
	Steps []engine.StepStats
	// Partitions is the number of partitions; Held those this node holds.
	Partitions int
	Held       []Claim
}

// statsEvery is how often publish recounts the steps' state rows (the
// counters are current after every epoch): walking a window operator's
// state is not free, and back-to-back epochs of a catch-up would pay it
// every epoch.
const statsEvery = time.Second

// publish copies the figures for Status. Call with mu held.
func (r *Runner) publish() {
	s := Status{Pipeline: r.name, Epoch: r.epoch, LastTime: r.lastTime, Watermark: engine.NoWatermark,
		Position: maps.Clone(r.pos), Replay: r.replayFrom(), Backlog: map[string]uint64{}, DecodeErrors: r.bad,
		LastError: r.lastErr, Partitions: r.nparts}
	r.dlMu.Lock()
	s.OperatorRejects = r.opDL
	r.dlMu.Unlock()
	for _, lg := range r.logs {
		if next := r.cfg.Log.LogNext(lg); next > r.pos[lg] {
			s.Backlog[lg] = next - r.pos[lg]
		}
	}
	now := r.clock.Now()
	recount := r.statsAt.IsZero() || now.Sub(r.statsAt) >= statsEvery || now.Before(r.statsAt)
	if recount {
		r.statsAt = now
	}
	for _, p := range r.parts {
		s.Held = append(s.Held, p.claim)
		if wm := p.x.Watermark(); wm != engine.NoWatermark && (s.Watermark == engine.NoWatermark || wm < s.Watermark) {
			s.Watermark = wm
		}
		st := p.x.Counters()
		if recount {
			st = p.x.Stats()
		}
		if s.Steps == nil {
			s.Steps = st
			continue
		}
		for i := range st {
			if i < len(s.Steps) {
				a := &s.Steps[i]
				a.In += st[i].In
				a.Out += st[i].Out
				a.Late += st[i].Late
				a.Duplicates += st[i].Duplicates
				a.Invalid += st[i].Invalid
				a.StateRows += st[i].StateRows
			}
		}
	}
	r.snapMu.Lock()
	if !recount && len(r.snap.Steps) == len(s.Steps) {
		for i := range s.Steps {
			s.Steps[i].StateRows = r.snap.Steps[i].StateRows // counted at most every statsEvery
		}
	}
	r.snap = s
	r.snapMu.Unlock()
}

// Status returns the figures of the last epoch; it never waits for a
// running epoch.
func (r *Runner) Status() Status {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	return r.snap
}

// Query calls fn for every row of a step's state in every held partition
// (open windows, per-key aggregates), from one consistent point between
// epochs: it waits for a running epoch to finish. fn returning false stops.
// It returns the pipeline epoch the rows belong to.
func (r *Runner) Query(step string, fn func(s *engine.Schema, rec *engine.Record) bool) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stop := false
	for _, p := range r.parts {
		err := p.x.Query(step, func(s *engine.Schema, rec *engine.Record) bool {
			if !fn(s, rec) {
				stop = true
				return false
			}
			return true
		})
		if err != nil || stop {
			return r.epoch, err
		}
	}
	return r.epoch, nil
}

// Plan returns the plan of the pipeline (of its first held partition, or a
// fresh compile when it holds none).
func (r *Runner) Plan() *engine.Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.parts) > 0 {
		return r.parts[0].x.Plan()
	}
	return r.cfg.Compiled.Plan
}
