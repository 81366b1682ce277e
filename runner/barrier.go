package runner

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/edgedio/edged/engine"
)

// barrier gathers the commits of one epoch's partitions, which run
// concurrently, and commits them in one transaction. Every partition
// arrives exactly once: from its executor's Commit (and then waits for the
// outcome), or after RunEpochAt returned without committing (an idle
// partition, or a failure). The last to arrive commits: the pipeline's
// record (position, epoch, dead letters) and every partition's commit,
// unless one partition failed, in which case nothing is committed and every
// partition's Commit returns the error.
type barrier struct {
	r      *Runner
	n      int
	newPos map[string]uint64
	t      int64 // the epoch's processing time

	mu      sync.Mutex
	arrived int
	commits []*engine.Commit
	failed  error
	done    chan struct{}
	err     error
}

// arrive records a partition's outcome; c is its commit (nil if it did not
// commit) and fail its error. A partition that commits waits for the
// outcome and returns it.
func (b *barrier) arrive(ctx context.Context, c *engine.Commit, fail error) error {
	b.mu.Lock()
	if c != nil {
		b.commits = append(b.commits, c)
	}
	if fail != nil && b.failed == nil {
		b.failed = fail
	}
	b.arrived++
	last := b.arrived == b.n
	b.mu.Unlock()
	if last {
		if b.failed != nil {
			b.err = b.failed
		} else {
			b.err = b.commit(ctx)
		}
		close(b.done)
	}
	if c == nil {
		return nil
	}
	<-b.done
	return b.err
}

// commit writes the epoch: the pipeline's record first, then the
// partitions' commits (standbys' outputs dropped). An epoch that changed
// nothing at all writes nothing.
func (b *barrier) commit(ctx context.Context) error {
	r := b.r
	if r.replaying || r.sparse() {
		return r.commitSparse(ctx, b)
	}
	r.dlMu.Lock()
	dls := r.dls
	r.dls = nil
	r.dlMu.Unlock()
	moved := false
	for lg, v := range b.newPos {
		if r.pos[lg] != v {
			moved = true
		}
	}
	if !moved && len(dls) == 0 && len(b.commits) == 0 {
		return nil
	}
	pc := &r.pcommit
	*pc = engine.Commit{Pipeline: r.name, Partition: PipelinePartition, Epoch: r.epoch + 1,
		Watermark: engine.NoWatermark, Input: b.newPos, DeadLetters: dls}
	cs := make([]*engine.Commit, 0, 1+len(b.commits))
	cs = append(cs, pc)
	var released []*part
	var marks []Mark
	for _, c := range b.commits {
		p := r.byID[c.Partition]
		if p != nil && p.skip != nil {
			c.Input = p.keepSkips(c.Input, b.newPos)
		}
		if p != nil && !p.claim.Emit {
			p.hold(r, c.Outputs, p.wm, c.Through)
			c.Outputs = c.Outputs[:0]
		} else if p != nil {
			if p.fence != engine.NoWatermark && p.wm < p.fence {
				// Catching up behind the previous owner's mark: drop what
				// it committed (Marker).
				keep := c.Outputs[:0]
				for i := range c.Outputs {
					if !r.committedBefore(&c.Outputs[i], p.wm, c.Through, p.fence) {
						keep = append(keep, c.Outputs[i])
					}
				}
				c.Outputs = keep
			}
			if len(p.release) > 0 {
				c.Outputs = append(slices.Clip(p.release), c.Outputs...)
				released = append(released, p)
			}
			marks = append(marks, Mark{Partition: c.Partition, Term: p.claim.Term, Watermark: c.Through})
		}
		for i := range c.Outputs {
			o := &c.Outputs[i]
			if n, ok := r.spools[o.Sink]; ok {
				o.Sink = n
			}
		}
		cs = append(cs, c)
	}
	if err := r.cfg.Store.CommitAll(ctx, cs); err != nil {
		return err
	}
	for _, p := range released {
		p.release = nil
	}
	for _, c := range b.commits {
		if p := r.byID[c.Partition]; p != nil {
			p.wm = c.Through
		}
	}
	if mk, ok := r.cfg.Owner.(Marker); ok && len(marks) > 0 {
		mk.Committed(r.name, marks)
	}
	r.epoch++
	return nil
}

// heldOutput is an output a standby computed, with when, and the
// watermarks before and after its epoch.
type heldOutput struct {
	at       time.Time
	from, to int64
	out      engine.Output
}

// maxHeld bounds a standby partition's held outputs.
const maxHeld = 100_000

// hold keeps copies of a standby's outputs for Config.StandbyHold and
// forgets older ones.
func (p *part) hold(r *Runner, outs []engine.Output, from, to int64) {
	if r.cfg.StandbyHold <= 0 {
		return
	}
	now := r.clock.Now()
	for _, o := range outs {
		p.held = append(p.held, heldOutput{now, from, to, engine.Output{Sink: o.Sink, ID: o.ID, Data: slices.Clone(o.Data)}})
	}
	i := 0
	for i < len(p.held) && (now.Sub(p.held[i].at) > r.cfg.StandbyHold || len(p.held)-i > maxHeld) {
		i++
	}
	if i > 0 {
		p.held = append(p.held[:0], p.held[i:]...)
	}
}

// partStore is one partition executor's engine.StateStore: reads go to the
// Store, the commit joins the epoch's barrier.
type partStore struct {
	r       *Runner
	p       *part
	b       *barrier // of the running epoch
	arrived bool
	fed     bool // the executor was fed part of the running epoch
}

func (s *partStore) Commit(ctx context.Context, c *engine.Commit) error {
	s.arrived = true
	return s.b.arrive(ctx, c, nil)
}

func (s *partStore) LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error) {
	return s.r.cfg.Store.LastCheckpoint(pipeline, partition)
}

func (s *partStore) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	return s.r.cfg.Store.Scan(pipeline, partition, namespace, fn)
}

// ViewTables serves the executor's history-table reads (engine.TableReader)
// from the Store, when it keeps history tables.
func (s *partStore) ViewTables(fn func(v engine.TableView) error) error {
	if tr, ok := s.r.cfg.Store.(engine.TableReader); ok {
		return tr.ViewTables(fn)
	}
	return errors.New("the store keeps no history tables")
}
