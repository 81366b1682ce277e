package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/edgedio/edged/engine"
)

// Sparse state checkpoints (Config.StateEvery).
//
// Every epoch commits its outputs, dead letters and history-table rows, and
// the pipeline's record; the partitions' state and checkpoints are
// committed only every StateEvery. Meanwhile the pipeline's record keeps
// the input position of the last state checkpoint (what the log must keep)
// and a journal of the epochs committed since: each one's processing time
// and input position. A restart (or the rebuild after a failed epoch)
// restores the partitions from their state checkpoints and replays the
// journal's epochs from the log, each with its own input range and time,
// dropping what they emit (it is in the spool already): the executors then
// hold the state they had when the last epoch committed, and the state they
// changed since the checkpoint is kept in memory until the next one.
//
// A replayed epoch reads exactly what the first run read and runs at the
// same processing time, so its state and output ids are the ones of the
// first run (what a restart from an every-epoch checkpoint relies on too).
// A replayed epoch also reads history tables (historyJoin, an anomaly
// baseline) as they are at the restart, not as they were: so, to be safe,
// an epoch that writes table rows commits the state (the epochs replayed
// after it wrote none, and read the rows the first run read), and a
// pipeline that reads a table it does not write itself (another pipeline
// may write it at any time) commits its state every epoch, as does a node
// in a mesh (state hand-over and the standbys read committed state).

// journalPrefix starts the keys of the journal in the pipeline record's
// Input: "@j:I:t" is epoch I's processing time and "@j:I:LOG" its position
// in LOG after it, for the epochs I = 0.. committed since the state
// checkpoint, oldest first. The record's plain log keys stay the positions
// of the state checkpoint.
const journalPrefix = "@j:"

// maxJournal bounds the epochs between state checkpoints (back-to-back
// epochs of a catch-up would otherwise make a long journal).
const maxJournal = 64

// maxDeferredBytes bounds the state held for the next checkpoint.
const maxDeferredBytes = 4 << 20

// journalEpoch is one epoch committed since the state checkpoint.
type journalEpoch struct {
	t   int64
	pos map[string]uint64
}

// deferredPart is what a partition committed since the state checkpoint:
// its last checkpoint and its state changes, merged by key.
type deferredPart struct {
	epoch uint64
	wm    int64
	input map[string]uint64
	idx   map[string]int // namespace + 0 + key -> ops index
	ops   []engine.StateOp
	bytes int
}

func (d *deferredPart) merge(c *engine.Commit) {
	d.epoch, d.wm, d.input = c.Epoch, c.Watermark, cloneMap(c.Input)
	for i := range c.State {
		op := &c.State[i]
		k := op.Namespace + "\x00" + string(op.Key)
		val := bytes.Clone(op.Val)
		if j, ok := d.idx[k]; ok {
			d.bytes += len(val) - len(d.ops[j].Val)
			d.ops[j].Val, d.ops[j].Delete = val, op.Delete
			continue
		}
		d.idx[k] = len(d.ops)
		d.ops = append(d.ops, engine.StateOp{Namespace: op.Namespace, Key: bytes.Clone(op.Key), Val: val, Delete: op.Delete})
		d.bytes += len(k) + len(val)
	}
}

// sparse reports whether the runner defers state checkpoints.
func (r *Runner) sparse() bool {
	if r.cfg.StateEvery <= 0 || r.readsTables {
		return false
	}
	_, single := r.cfg.Owner.(SingleNode)
	return single
}

// readsForeignTables reports whether a pipeline reads a history table that
// none of its own steps writes.
func readsForeignTables(r *Runner) bool {
	own := map[string]bool{}
	var read []string
	for i := range r.spec.Spec.Steps {
		st := &r.spec.Spec.Steps[i]
		switch {
		case st.History != nil:
			own[st.History.Table] = true
		case st.HistoryJoin != nil:
			read = append(read, st.HistoryJoin.Table)
		case st.Anomaly != nil && st.Anomaly.Baseline != nil:
			read = append(read, st.Anomaly.Baseline.Table)
		}
	}
	for _, t := range read {
		if !own[t] {
			return true
		}
	}
	return false
}

// stateDue reports whether the epoch being committed (b) writes the state.
func (r *Runner) stateDue(b *barrier) bool {
	if len(r.journal)+1 >= maxJournal {
		return true
	}
	for _, c := range b.commits {
		if len(c.Tables) > 0 {
			return true // see above: replayed epochs must not see their own rows
		}
	}
	n := 0
	for _, d := range r.deferred {
		n += d.bytes
	}
	if n >= maxDeferredBytes {
		return true
	}
	return r.clock.Now().Sub(r.stateAt) >= r.cfg.StateEvery
}

// commitSparse is barrier.commit for a runner that defers state
// checkpoints (single node: every partition held, emitting). While
// replaying it writes nothing.
func (r *Runner) commitSparse(ctx context.Context, b *barrier) error {
	r.dlMu.Lock()
	dls := r.dls
	r.dls = nil
	r.dlMu.Unlock()
	if r.replaying {
		for _, c := range b.commits {
			r.deferOf(c.Partition).merge(c)
			if p := r.byID[c.Partition]; p != nil {
				p.wm = c.Through
			}
		}
		return nil
	}
	moved := false
	for lg, v := range b.newPos {
		if r.pos[lg] != v {
			moved = true
		}
	}
	if !moved && len(dls) == 0 && len(b.commits) == 0 {
		return nil
	}
	for _, c := range b.commits {
		for i := range c.Outputs {
			if n, ok := r.spools[c.Outputs[i].Sink]; ok {
				c.Outputs[i].Sink = n
			}
		}
	}
	pc := &r.pcommit
	*pc = engine.Commit{Pipeline: r.name, Partition: PipelinePartition, Epoch: r.epoch + 1,
		Watermark: engine.NoWatermark, DeadLetters: dls}
	cs := []*engine.Commit{pc}
	full := r.stateDue(b)
	if full {
		// Every partition's state changes since the checkpoint, and its
		// last checkpoint, with this epoch's outputs.
		pc.Input = b.newPos
		byPart := map[int]*engine.Commit{}
		for _, c := range b.commits {
			byPart[c.Partition] = c
		}
		for _, c := range b.commits {
			if d := r.deferred[c.Partition]; d != nil {
				d.merge(c)
				c.State = d.ops
			}
			cs = append(cs, c)
		}
		for part, d := range r.deferred {
			if byPart[part] == nil {
				cs = append(cs, &engine.Commit{Pipeline: r.name, Partition: part, Epoch: d.epoch,
					Watermark: d.wm, Input: d.input, State: d.ops})
			}
		}
	} else {
		// The outputs, tables and dead letters of every partition ride in
		// the pipeline's record, with the journal; the state waits.
		for _, c := range b.commits {
			pc.Outputs = append(pc.Outputs, c.Outputs...)
			pc.Tables = append(pc.Tables, c.Tables...)
			pc.DeadLetters = append(pc.DeadLetters, c.DeadLetters...)
		}
		pc.Input = r.journalRecord(journalEpoch{t: b.t, pos: b.newPos})
	}
	if err := r.cfg.Store.CommitAll(ctx, cs); err != nil {
		return err
	}
	for _, c := range b.commits {
		if p := r.byID[c.Partition]; p != nil {
			p.wm = c.Through
		}
	}
	if full {
		r.journal, r.deferred = r.journal[:0], nil
		r.base = cloneMap(b.newPos)
		r.stateAt = r.clock.Now()
	} else {
		for _, c := range b.commits {
			r.deferOf(c.Partition).merge(c)
		}
		r.journal = append(r.journal, journalEpoch{t: b.t, pos: cloneMap(b.newPos)})
	}
	r.epoch++
	return nil
}

func (r *Runner) deferOf(part int) *deferredPart {
	if r.deferred == nil {
		r.deferred = map[int]*deferredPart{}
	}
	d := r.deferred[part]
	if d == nil {
		d = &deferredPart{idx: map[string]int{}}
		r.deferred[part] = d
	}
	return d
}

// journalRecord returns the pipeline record's Input: the positions of the
// state checkpoint and the journal with next appended.
func (r *Runner) journalRecord(next journalEpoch) map[string]uint64 {
	in := cloneMap(r.base)
	for i, j := range append(r.journal[:len(r.journal):len(r.journal)], next) {
		p := journalPrefix + strconv.Itoa(i) + ":"
		in[p+"t"] = uint64(j.t)
		for lg, v := range j.pos {
			in[p+lg] = v
		}
	}
	return in
}

// splitRecord splits a pipeline record's Input into the positions of the
// state checkpoint and the journal.
func splitRecord(in map[string]uint64) (base map[string]uint64, journal []journalEpoch, err error) {
	base = map[string]uint64{}
	for k, v := range in {
		rest, ok := strings.CutPrefix(k, journalPrefix)
		if !ok {
			base[k] = v
			continue
		}
		is, name, ok := strings.Cut(rest, ":")
		i, err := strconv.Atoi(is)
		if !ok || err != nil || i < 0 || i >= maxJournal {
			return nil, nil, fmt.Errorf("malformed journal key %q", k)
		}
		for len(journal) <= i {
			journal = append(journal, journalEpoch{pos: map[string]uint64{}})
		}
		if name == "t" {
			journal[i].t = int64(v)
		} else {
			journal[i].pos[name] = v
		}
	}
	return base, journal, nil
}

// replay runs the journal's epochs again from the log after the partitions
// were restored from their state checkpoints (see above). Call with mu
// held (or before Run), r.pos at the checkpoint's positions.
func (r *Runner) replay(ctx context.Context, journal []journalEpoch) error {
	r.replaying = true
	defer func() { r.replaying = false }()
	f := feeder{r: r, match: routeAll}
	for _, j := range journal {
		for _, lg := range r.logs {
			from, to := r.pos[lg], j.pos[lg]
			if to <= from {
				continue
			}
			err := r.cfg.Log.ReadLogEntries(lg, from, int(to-from), func(off uint64, at int64, rec []byte) error {
				if off >= to {
					return errCut
				}
				_, err := f.feed(ctx, j.t, lg, off, at, rec)
				return err
			})
			if err != nil && !errors.Is(err, errCut) {
				return fmt.Errorf("replay input log %q from %d: %w", lg, from, err)
			}
		}
		if err := r.runPartitions(ctx, j.t, j.pos); err != nil {
			return fmt.Errorf("replay the epoch at %d: %w", j.t, err)
		}
		for lg, v := range j.pos {
			r.pos[lg] = v
		}
	}
	r.journal = append(r.journal[:0], journal...)
	r.log.Info("replayed the epochs since the last state commit", "pipeline", r.name, "epochs", len(journal),
		"from", r.base, "to", r.pos)
	r.dlMu.Lock()
	r.dls = r.dls[:0]
	r.dlMu.Unlock()
	return nil
}

// flushState commits the state held for the next checkpoint, if any, with
// the pipeline's record at its current position, leaving no journal: for a
// runner that replayed a journal but no longer defers its state. Call with
// mu held.
func (r *Runner) flushState(ctx context.Context) error {
	if len(r.journal) == 0 && len(r.deferred) == 0 {
		return nil
	}
	pc := &engine.Commit{Pipeline: r.name, Partition: PipelinePartition, Epoch: r.epoch + 1,
		Watermark: engine.NoWatermark, Input: cloneMap(r.pos)}
	cs := []*engine.Commit{pc}
	for part, d := range r.deferred {
		cs = append(cs, &engine.Commit{Pipeline: r.name, Partition: part, Epoch: d.epoch,
			Watermark: d.wm, Input: d.input, State: d.ops})
	}
	if err := r.cfg.Store.CommitAll(ctx, cs); err != nil {
		return fmt.Errorf("pipeline %q: commit the state at stop: %w", r.name, err)
	}
	r.epoch++
	r.journal, r.deferred = r.journal[:0], nil
	r.base = cloneMap(r.pos)
	r.stateAt = r.clock.Now()
	return nil
}

// replayFrom returns Status.Replay. Call with mu held.
func (r *Runner) replayFrom() map[string]uint64 {
	if len(r.journal) > 0 {
		return maps.Clone(r.base)
	}
	return maps.Clone(r.pos)
}
