package runner

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/edgedio/edged/engine"
)

// Backfill runs a pipeline over a past period of its retained input logs,
// with the same Runner (decoders, partitions, executors, one commit per
// epoch) a live pipeline runs, driven by hand: one epoch at every interval
// boundary t of the period, reading the entries appended in [t-interval, t)
// (Config.ArrivalCut). A live runner with ArrivalCut cuts its epochs the
// same way, so a backfill that starts where the live pipeline started (empty
// state) reproduces its outputs byte for byte, epoch numbers included. The
// conditions are documented in docs/ARCHITECTURE.md ("Backfill").
//
// The backfill is a pipeline of its own: Config.Compiled is named apart
// (outputs, spools, checkpoint and state live under that name) and the live
// pipeline is not touched.
type Backfill struct {
	r        *Runner
	from, to int64 // aligned to the interval, unix ms
	iv       int64
	share    float64
	clock    engine.Clock
	reached  atomic.Int64 // processing time of the last epoch run
}

// startLog is a Log whose LogNext is the backfill's start: a runner
// without a checkpoint starts there (instead of at the log's end).
type startLog struct {
	Log
	start map[string]uint64
}

func (l startLog) LogNext(log string) uint64 {
	if v, ok := l.start[log]; ok {
		return v
	}
	return l.Log.LogNext(log)
}

// LogSettled passes the wait on to the log (a backfill's epochs are in the
// past: it returns at once).
func (l startLog) LogSettled(t int64) {
	if s, ok := l.Log.(LogSettler); ok {
		s.LogSettled(t)
	}
}

// NewBackfill builds the runner of a backfill over [from, to) (unix ms,
// widened to whole intervals of the pipeline) starting, in each input log,
// at the offset start gives (the first entry appended at or after from;
// a log missing from start begins at its end). cpuShare in (0, 1] bounds
// the share of one core the backfill uses (it pauses between epochs); 0
// means 1. Config.Virtual is ignored and ArrivalCut forced on.
func NewBackfill(cfg Config, from, to int64, start map[string]uint64, cpuShare float64) (*Backfill, error) {
	if to <= from {
		return nil, errors.New("backfill: to must be after from")
	}
	cfg.Virtual, cfg.ArrivalCut = false, true
	cfg.StateEvery = 0 // it commits every epoch: the live pipeline's journal is not its own
	cfg.Log = startLog{cfg.Log, start}
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	b := &Backfill{r: r, iv: r.interval, share: cpuShare, clock: r.clock}
	if b.share <= 0 || b.share > 1 {
		b.share = 1
	}
	b.from, b.to = AlignPeriod(from, to, b.iv)
	b.reached.Store(b.from)
	return b, nil
}

// AlignPeriod widens [from, to) to whole intervals of iv ms, the periods
// whose epochs a live runner cut.
func AlignPeriod(from, to, iv int64) (int64, int64) {
	from = floorDiv(from, iv) * iv
	if e := floorDiv(to, iv) * iv; e < to {
		to = e + iv
	}
	return from, to
}

// Runner returns the backfill's runner (status, queries).
func (b *Backfill) Runner() *Runner { return b.r }

// Period returns the aligned period [from, to), unix ms.
func (b *Backfill) Period() (from, to int64) { return b.from, b.to }

// Reached returns the processing time of the last epoch run (from before
// the first).
func (b *Backfill) Reached() int64 { return b.reached.Load() }

// Run runs the epochs of the period, from its first interval boundary to
// its end, and returns nil once the last one committed. When ctx ends it
// stops between epochs and returns ctx's error. An epoch that fails is
// retried (the runner rebuilds from its checkpoint), up to 3 times.
func (b *Backfill) Run(ctx context.Context) error {
	var debt time.Duration
	fails := 0
	for t := b.from + b.iv; t <= b.to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		more, err := b.r.RunEpoch(ctx, t)
		if err != nil {
			if fails++; fails > 3 || ctx.Err() != nil {
				return err
			}
			continue
		}
		fails = 0
		// As a live runner: the rest of a full interval runs at once at
		// the same boundary, but with the next one for processing-time
		// pipelines.
		if !more || b.r.procTime {
			b.reached.Store(t)
			t += b.iv
		}
		if b.share < 1 {
			// Pause so that working time is share of the wall time.
			debt += time.Duration(float64(time.Since(t0)) * (1 - b.share) / b.share)
			if debt >= 20*time.Millisecond {
				tm := time.NewTimer(debt)
				select {
				case <-ctx.Done():
					tm.Stop()
					return ctx.Err()
				case <-tm.C:
				}
				debt = 0
			}
		}
	}
	return nil
}

// OutputStore is a Store in memory for offline runs (edged batch
// --from-log): state and checkpoints live as long as the process, and every
// committed output is handed to Out, in commit order, before the commit
// returns.
type OutputStore struct {
	m *engine.MemStore
	// Out receives each output; an error fails the commit.
	Out func(o engine.Output) error
}

// NewOutputStore returns an OutputStore handing outputs to out.
func NewOutputStore(out func(o engine.Output) error) *OutputStore {
	return &OutputStore{m: engine.NewMemStore(), Out: out}
}

// LastCheckpoint implements Store.
func (s *OutputStore) LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error) {
	return s.m.LastCheckpoint(pipeline, partition)
}

// Scan implements Store.
func (s *OutputStore) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	return s.m.Scan(pipeline, partition, namespace, fn)
}

// CommitAll implements Store: the runner calls it from one goroutine at a
// time (the epoch's last partition). Outputs go out by partition, in each
// partition's order, whatever order the partitions finished in.
func (s *OutputStore) CommitAll(ctx context.Context, cs []*engine.Commit) error {
	sorted := slices.Clone(cs)
	slices.SortStableFunc(sorted, func(a, b *engine.Commit) int { return a.Partition - b.Partition })
	for _, c := range sorted {
		for _, o := range c.Outputs {
			if err := s.Out(o); err != nil {
				return err
			}
		}
	}
	for _, c := range cs {
		cc := *c
		cc.Outputs, cc.DeadLetters = nil, nil
		if err := s.m.Commit(ctx, &cc); err != nil {
			return err
		}
	}
	return nil
}
