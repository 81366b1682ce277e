package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Options configure an Executor. The zero value is usable: an in-memory store,
// the system clock, partition 0, a one-second interval, no output encoding.
type Options struct {
	// Store receives one Commit per epoch and restores state at start. Nil means
	// a fresh MemStore (state lives as long as the executor).
	Store StateStore
	// Clock gives the processing time of epochs run with RunEpoch. Nil means the
	// system clock.
	Clock Clock
	// Partition is the partition of the pipeline this executor runs.
	Partition int
	// Term is the ownership term of the partition, carried by every output
	// id (OutputID). Zero means 1: a single gateway always holds its
	// partitions under term 1.
	Term uint64
	// Interval is the batch interval, reported to operators as Epoch.Interval.
	// Zero means one second.
	Interval time.Duration
	// Encode, when set, encodes every output record into the epoch's Commit
	// (the output spool), with its deterministic id. Nil leaves outputs out of the
	// commit; they are still returned by RunEpoch.
	Encode func(dst []byte, s *Schema, r *Record) []byte
	// DeadLetter receives the records an operator rejected, with the step name
	// and the reason. Nil drops them after counting.
	DeadLetter func(step string, rec *Record, s *Schema, reason error)
	// Logger receives executor events. Nil discards them.
	Logger *slog.Logger
	// MaxOutputs bounds the rows that event-time windows in append mode
	// emit in one epoch: when a watermark closes more windows at once (a
	// jump of event time, the end of a backlog), whole windows are emitted,
	// oldest first, until the bound is reached, and the rest wait for the
	// following epochs (Result.Pending), which must then be run with no
	// input until none is left. An epoch's outputs, and with them every
	// copy of them that its commit makes, stay bounded; the rows are the
	// same, in the same order, as without the bound. Zero means no bound.
	MaxOutputs int
}

// Executor runs a plan epoch by epoch. It is not safe for concurrent use: one
// goroutine feeds the inputs and calls RunEpoch.
type Executor struct {
	plan   *Plan
	opt    Options
	store  StateStore
	clock  Clock
	log    *slog.Logger
	seq    uint64
	wm     int64
	hasWM  bool
	result Result
	commit Commit
	encBuf []byte
	encEnd []int // encodeOutputs' scratch: where each output ends in encBuf
	// stateArena backs the keys and values of the commit's state changes.
	stateArena []byte
	curr       *node
	// draining forces the watermark to EndOfTime (Drain).
	draining bool
	// chunked: every operator is ChunkSafe, so Feed may run data passes.
	chunked bool
	// fed counts the input records of the current epoch already processed by
	// Feed; inEpoch says the epoch's outputs were reset (Feed or RunEpochAt).
	fed     int
	inEpoch bool

	// The idle rule (WithIdleTimeout). idle: some source has it. startT is
	// the processing time of the pipeline partition's first epoch, the idle
	// clock of sources that never had input; it is committed (hasStart:
	// restored or set by this executor's first epoch).
	idle     bool
	startT   int64
	hasStart bool
	// empty are empty source batches, swapped in for beginEpoch's pass.
	empty []*Batch

	// left is what the running epoch may still emit (Options.MaxOutputs).
	// pending: closed windows wait to be emitted; through: the watermark
	// through which outputs are complete (Result.Through).
	left    int
	pending bool
	through int64
}

// idleNamespace is the state namespace of the idle rule: per source its
// watermark and processing time at its last input, and the processing time
// of the first epoch (key idleStartKey). Step names cannot start with '#',
// so it never meets an operator's namespace.
const (
	idleNamespace = "#idle"
	idleStartKey  = "\x00start"
	// wmNamespace keeps, in a pipeline with several event-time sources, each
	// source's own watermark (key: the source name), committed with the
	// epoch that moved it, so that a restarted executor holds every source
	// back exactly where the uninterrupted one would (see saveWatermarks).
	wmNamespace = "#wm"
)

// ChunkSafe is implemented by operators whose outputs and state after an
// epoch are the same whether the epoch's input reaches them in one data pass
// or in several (Executor.Feed): per-record operators, and event-time windows
// in append mode, which emit only when the watermark (fixed during an epoch)
// passes a window. Operators whose outputs are per epoch (DStream batches,
// update and complete modes) are not.
type ChunkSafe interface{ ChunkSafe() bool }

// Result is what one epoch produced. Its batches are reused by the next epoch.
type Result struct {
	Epoch     uint64
	Time      int64 // processing time, unix ms
	Watermark int64 // watermark after the epoch (NoWatermark if none)
	// Pending reports that windows the watermark closed wait to be emitted
	// (Options.MaxOutputs): the caller runs the next epochs with no input
	// until it is false, so that no record reaches a window before it is
	// emitted.
	Pending bool
	// Through is the watermark through which the outputs of this epoch and
	// the earlier ones are complete: every append-mode window whose end
	// plus its allowed lateness is at or before it was emitted. It is
	// Watermark unless Pending.
	Through int64
	// Outputs holds, per sink (in Plan.Sinks order), the records of both passes.
	Outputs []*Batch
}

// Output returns the records a named sink received in the epoch, or nil.
func (r *Result) Output(plan *Plan, sink string) *Batch {
	for i, n := range plan.sinks {
		if n.name == sink {
			return r.Outputs[i]
		}
	}
	return nil
}

// NewExecutor returns an executor for p, with the state of the last checkpoint
// in the store restored into the operators.
func NewExecutor(p *Plan, opt Options) (*Executor, error) {
	x := &Executor{plan: p, opt: opt, store: opt.Store, clock: opt.Clock, log: opt.Logger}
	if x.store == nil {
		x.store = NewMemStore()
	}
	if x.clock == nil {
		x.clock = SystemClock{}
	}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	if x.opt.Interval <= 0 {
		x.opt.Interval = time.Second
	}
	x.wm = NoWatermark
	for _, s := range p.sources {
		if s.source.delay >= 0 {
			x.hasWM = true
			x.wm = 0
			s.source.wm = 0
			if s.source.idle > 0 {
				x.idle = true
			}
		}
	}
	x.result.Outputs = make([]*Batch, len(p.sinks))
	for i, n := range p.sinks {
		x.result.Outputs[i] = NewBatch(n.schema)
	}
	x.chunked = true
	for _, n := range p.nodes {
		if n.source != nil || n.sink {
			continue
		}
		if c, ok := n.op.(ChunkSafe); !ok || !c.ChunkSafe() {
			x.chunked = false
		}
	}
	tr, _ := x.store.(TableReader)
	for _, n := range p.nodes {
		if t, ok := n.op.(tableReaderOp); ok {
			t.setTables(tr)
		}
	}
	if err := x.restore(); err != nil {
		return nil, err
	}
	x.checkPending()
	return x, nil
}

// deferrer is implemented by operators that may leave closed windows to
// later epochs (Options.MaxOutputs). deferred reports whether some wait, and
// the watermark through which the operator's outputs are complete.
type deferrer interface {
	deferred() (pending bool, through int64)
}

// checkPending sets pending and through from the operators.
func (x *Executor) checkPending() {
	x.pending, x.through = false, x.wm
	for _, n := range x.plan.nodes {
		d, ok := n.op.(deferrer)
		if !ok {
			continue
		}
		if p, t := d.deferred(); p {
			x.pending = true
			x.through = min(x.through, t)
		}
	}
}

// Pending reports whether windows that the watermark closed wait to be
// emitted by the next epochs (Options.MaxOutputs), which should then be run
// with no input. It is known from the restored state too.
func (x *Executor) Pending() bool { return x.pending }

// Through returns the watermark through which the committed (or restored)
// outputs are complete (Result.Through).
func (x *Executor) Through() int64 { return x.through }

func (x *Executor) restore() error {
	cp, err := x.store.LastCheckpoint(x.plan.name, x.opt.Partition)
	if err != nil {
		return fmt.Errorf("pipeline %q partition %d: read checkpoint: %w", x.plan.name, x.opt.Partition, err)
	}
	if cp.Epoch == 0 {
		return nil
	}
	x.seq = cp.Epoch
	if x.hasWM {
		x.wm = cp.Watermark
		for _, s := range x.plan.sources {
			if s.source.delay >= 0 {
				// Per-source watermarks restart at the global one: it is the min over
				// sources, so no source can be behind it.
				s.source.wm = cp.Watermark
			}
		}
	}
	for _, s := range x.plan.sources {
		s.source.position = cp.Input[s.name]
	}
	if x.multiWM() {
		if err := x.store.Scan(x.plan.name, x.opt.Partition, wmNamespace, x.loadWatermark); err != nil {
			return fmt.Errorf("pipeline %q partition %d: restore per-source watermarks: %w", x.plan.name, x.opt.Partition, err)
		}
	}
	if x.idle {
		if err := x.store.Scan(x.plan.name, x.opt.Partition, idleNamespace, x.loadIdle); err != nil {
			return fmt.Errorf("pipeline %q partition %d: restore idle-source state: %w", x.plan.name, x.opt.Partition, err)
		}
	}
	for _, n := range x.plan.nodes {
		if !n.stateOK {
			continue
		}
		st := n.op.(Stateful)
		err := x.store.Scan(x.plan.name, x.opt.Partition, n.name, st.LoadState)
		if err != nil {
			return fmt.Errorf("pipeline %q step %q: restore state: %w", x.plan.name, n.name, err)
		}
		if r, ok := n.op.(watermarkRestorer); ok && x.hasWM {
			r.restoreWatermark(x.wm)
		}
	}
	x.log.Info("restored checkpoint", "pipeline", x.plan.name, "partition", x.opt.Partition, "epoch", cp.Epoch)
	return nil
}

// loadIdle restores one entry of the idle rule's state.
func (x *Executor) loadIdle(key, val []byte) error {
	if string(key) == idleStartKey {
		start, _, err := ReadVarint(val)
		if err != nil {
			return err
		}
		x.startT, x.hasStart = start, true
		return nil
	}
	for _, s := range x.plan.sources {
		if s.name != string(key) || s.source.delay < 0 {
			continue
		}
		base, rest, err := ReadVarint(val)
		if err != nil {
			return err
		}
		last, _, err := ReadVarint(rest)
		if err != nil {
			return err
		}
		s.source.base, s.source.last, s.source.hasLast = base, last, true
	}
	return nil // a source no longer in the plan
}

// saveIdle appends the idle rule's state to the commit: the first epoch's
// time and every source's last input (a few bytes per source).
func (x *Executor) saveIdle(c *Commit) {
	w := StateWriter{ns: idleNamespace, ops: &c.State, arena: &x.stateArena}
	var b [2 * binary.MaxVarintLen64]byte
	w.Put([]byte(idleStartKey), AppendVarint(b[:0], x.startT))
	for _, s := range x.plan.sources {
		if src := s.source; src.hasLast && src.delay >= 0 {
			w.Put([]byte(s.name), AppendVarint(AppendVarint(b[:0], src.base), src.last))
		}
	}
}

// multiWM reports whether the plan has several event-time sources, whose
// own watermarks the checkpoint then keeps.
func (x *Executor) multiWM() bool {
	n := 0
	for _, s := range x.plan.sources {
		if s.source.delay >= 0 {
			n++
		}
	}
	return n > 1
}

// loadWatermark restores one source's own watermark (never below the
// global one, where restore started it).
func (x *Executor) loadWatermark(key, val []byte) error {
	for _, s := range x.plan.sources {
		if s.name != string(key) || s.source.delay < 0 {
			continue
		}
		wm, _, err := ReadVarint(val)
		if err != nil {
			return err
		}
		s.source.wm = max(s.source.wm, wm)
		s.source.savedWM = wm
	}
	return nil // a source no longer in the plan
}

// saveWatermarks appends to the commit the own watermark of every source
// whose watermark moved since the last commit: with several event-time
// sources the global watermark (their minimum) does not tell where each one
// stands, and a source restarted at the global watermark would hold the
// pipeline back, or let it run ahead, differently from an uninterrupted run.
// The idle rule's advance is not saved: it is recomputed from committed
// state.
func (x *Executor) saveWatermarks(c *Commit) {
	w := StateWriter{ns: wmNamespace, ops: &c.State, arena: &x.stateArena}
	var b [binary.MaxVarintLen64]byte
	for _, s := range x.plan.sources {
		if src := s.source; src.delay >= 0 && src.wm != src.savedWM {
			w.Put([]byte(s.name), AppendVarint(b[:0], src.wm))
		}
	}
}

// watermarkRestorer is implemented by operators that derive in-memory state
// from the watermark: after a restore the executor hands them the committed
// watermark (which uncommitted idle epochs may have passed before the crash).
type watermarkRestorer interface{ restoreWatermark(wm int64) }

// Plan returns the executor's plan.
func (x *Executor) Plan() *Plan { return x.plan }

// Input returns the batch the caller fills with the records of the named source
// for the next epoch. It is emptied by every RunEpoch. Nil if there is no such
// source.
func (x *Executor) Input(source string) *Batch {
	for _, s := range x.plan.sources {
		if s.name == source {
			return s.out
		}
	}
	return nil
}

// SetPosition records the input position (offset of the next record to read) of
// a source after the records in its input batch; it is committed with the epoch.
func (x *Executor) SetPosition(source string, next uint64) {
	for _, s := range x.plan.sources {
		if s.name == source {
			s.source.position = next
		}
	}
}

// Position returns the committed (or restored) input position of a source.
func (x *Executor) Position(source string) uint64 {
	for _, s := range x.plan.sources {
		if s.name == source {
			return s.source.position
		}
	}
	return 0
}

// Epoch returns the number of the last epoch run or restored.
func (x *Executor) Epoch() uint64 { return x.seq }

// Watermark returns the current event-time watermark (NoWatermark if none).
func (x *Executor) Watermark() int64 { return x.wm }

// RunEpoch runs one epoch at the clock's current time.
func (x *Executor) RunEpoch(ctx context.Context) (*Result, error) {
	return x.RunEpochAt(ctx, x.clock.Now().UnixMilli())
}

// RunEpochAt runs one epoch with processing time t (unix ms) over the records in
// the source input batches, commits it and returns its outputs.
func (x *Executor) RunEpochAt(ctx context.Context, t int64) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x.seq++
	if err := x.beginEpoch(x.seq, t); err != nil {
		x.seq--
		return nil, err
	}
	inputs := x.fed
	x.fed, x.inEpoch = 0, false
	for _, s := range x.plan.sources {
		inputs += s.out.Len()
	}
	newWM := x.advanceWatermark(t)
	if x.draining && x.hasWM {
		newWM = EndOfTime
	}
	ep := Epoch{Seq: x.seq, Time: t, Interval: x.opt.Interval.Milliseconds(),
		Watermark: x.wm, LateBound: x.wm, Final: newWM <= x.wm, left: x.budget()}
	ep.DeadLetter = x.deadLetter
	if err := x.pass(&ep); err != nil {
		return nil, err
	}
	if newWM > x.wm {
		ep.NoData, ep.Final = true, true
		ep.LateBound, ep.Watermark = x.wm, newWM
		x.wm = newWM
		for _, s := range x.plan.sources {
			s.out.Reset(s.schema)
		}
		if err := x.pass(&ep); err != nil {
			return nil, err
		}
	}
	for _, s := range x.plan.sources {
		s.out.Reset(s.schema)
		if src := s.source; src.fed {
			src.base, src.last, src.hasLast = src.wm, t, true
		}
	}
	prevPending, prevThrough := x.pending, x.through
	x.checkPending()
	// With no input the watermark moves only by the idle rule (or Drain). An
	// epoch where that changed no state and emitted nothing is not committed.
	// Its watermark stays in memory, and the next epoch's idle rule, a
	// function of committed state and the epoch's time, reaches at least as
	// far, so a restart from the checkpoint decides the same.
	err := x.commitEpoch(ctx, inputs == 0 && !x.draining)
	for _, s := range x.plan.sources {
		s.source.fed = false
	}
	if err != nil {
		x.seq--
		x.pending, x.through = prevPending, prevThrough
		return nil, err
	}
	x.result.Epoch, x.result.Time, x.result.Watermark = x.seq, t, x.wm
	x.result.Pending, x.result.Through = x.pending, x.through
	return &x.result, nil
}

// budget returns the epoch's output budget for Epoch.left, or nil for none.
func (x *Executor) budget() *int {
	if x.opt.MaxOutputs <= 0 || x.draining {
		return nil
	}
	return &x.left
}

// beginEpoch starts epoch seq at processing time t, at its first pass: it
// resets the outputs and applies the idle rule (WithIdleTimeout) before the
// epoch's records are seen, with a no-data pass if it moves the watermark,
// so that the epoch's records meet the same watermark whether or not the
// executor ran (and kept in memory) the uncommitted idle epochs before it.
func (x *Executor) beginEpoch(seq uint64, t int64) error {
	if x.inEpoch {
		return nil
	}
	for _, o := range x.result.Outputs {
		o.Reset(o.Schema)
	}
	x.inEpoch = true
	x.left = x.opt.MaxOutputs
	if !x.idle || x.draining {
		return nil
	}
	if !x.hasStart {
		x.startT, x.hasStart = t, true
	}
	for _, s := range x.plan.sources {
		if src := s.source; src.delay >= 0 && src.idle > 0 && src.hasLast && t-src.last >= src.idle {
			src.wm = max(src.wm, src.base+(t-src.last))
		}
	}
	w := x.globalWatermark(t)
	if w <= x.wm {
		return nil
	}
	// The sources' batches hold the epoch's input: the pass sees empty ones.
	if x.empty == nil {
		x.empty = make([]*Batch, len(x.plan.sources))
		for i, s := range x.plan.sources {
			x.empty[i] = NewBatch(s.schema)
		}
	}
	for i, s := range x.plan.sources {
		s.out, x.empty[i] = x.empty[i], s.out
	}
	ep := Epoch{Seq: seq, Time: t, Interval: x.opt.Interval.Milliseconds(),
		Watermark: w, LateBound: x.wm, NoData: true, DeadLetter: x.deadLetter, left: x.budget()}
	err := x.pass(&ep)
	for i, s := range x.plan.sources {
		s.out, x.empty[i] = x.empty[i], s.out
	}
	x.wm = w
	return err
}

// Chunked reports whether Feed may be used: every operator of the plan is
// ChunkSafe.
func (x *Executor) Chunked() bool { return x.chunked }

// Feed runs a data pass over the records now in the input batches, at
// processing time t, and empties the batches: a caller decodes an epoch's
// input a chunk at a time, so the epoch's memory is bounded by the chunk
// rather than by the input rate times the interval. The next RunEpochAt
// processes what is left, moves the watermark (over every record fed) and
// commits; its Result holds the outputs of the fed chunks too. Results are
// the same as with one RunEpochAt over all the records. Only for Chunked
// plans. After an error the executor's operators may be ahead of the store:
// build a new plan and executor from the last checkpoint.
func (x *Executor) Feed(ctx context.Context, t int64) error {
	if !x.chunked {
		return fmt.Errorf("engine: pipeline %q: Feed on a plan with operators that are not ChunkSafe", x.plan.name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := 0
	for _, s := range x.plan.sources {
		n += s.out.Len()
	}
	if n == 0 {
		return nil
	}
	if err := x.beginEpoch(x.seq+1, t); err != nil {
		return err
	}
	x.advanceWatermark(t) // keeps each source's maximum; RunEpochAt applies it
	ep := Epoch{Seq: x.seq + 1, Time: t, Interval: x.opt.Interval.Milliseconds(),
		Watermark: x.wm, LateBound: x.wm, DeadLetter: x.deadLetter, left: x.budget()}
	if err := x.pass(&ep); err != nil {
		return err
	}
	x.fed += n
	for _, s := range x.plan.sources {
		s.out.Reset(s.schema)
	}
	return nil
}

// EndOfTime is the watermark of a drained pipeline: every event-time window is
// final.
const EndOfTime = math.MaxInt64

// Drain runs a last epoch at processing time t with no input that moves the
// watermark to EndOfTime, so every open event-time window, session and dedup
// entry is emitted (append mode) and evicted. Batch mode calls it at the end of
// its input; a daemon never does (its state outlives restarts).
func (x *Executor) Drain(ctx context.Context, t int64) (*Result, error) {
	for _, s := range x.plan.sources {
		s.out.Reset(s.schema)
	}
	x.draining = true
	defer func() { x.draining = false }()
	return x.RunEpochAt(ctx, t)
}

// advanceWatermark computes the watermark that follows the current input: per
// source, max(previous, max event time - delay); globally the min over sources
// (globalWatermark), never moving backwards.
func (x *Executor) advanceWatermark(t int64) int64 {
	if !x.hasWM {
		return x.wm
	}
	for _, s := range x.plan.sources {
		src := s.source
		if src.delay < 0 || len(s.out.Recs) == 0 {
			continue
		}
		src.fed = true
		mx := s.out.Recs[0].Time
		for i := range s.out.Recs {
			if t := s.out.Recs[i].Time; t > mx {
				mx = t
			}
		}
		if w := mx - src.delay; w > src.wm {
			src.wm = w
		}
	}
	return x.globalWatermark(t)
}

// globalWatermark is the min of the sources' watermarks at processing time t,
// never below the current one. A source that never had input and has been
// idle (WithIdleTimeout) since the first epoch is left out.
func (x *Executor) globalWatermark(t int64) int64 {
	global := int64(0)
	first := true
	for _, s := range x.plan.sources {
		src := s.source
		if src.delay < 0 {
			continue
		}
		if src.idle > 0 && !src.hasLast && !src.fed && x.hasStart && t-x.startT >= src.idle {
			continue
		}
		if first || src.wm < global {
			global, first = src.wm, false
		}
	}
	if first || global < x.wm {
		return x.wm
	}
	return global
}

func (x *Executor) pass(ep *Epoch) error {
	for _, n := range x.plan.nodes {
		switch {
		case n.source != nil:
			n.stats.In += uint64(len(n.out.Recs))
			n.stats.Out += uint64(len(n.out.Recs))
		case n.sink:
			// Sinks run after every step (below), so a step's output is complete
			// and no later step reads a batch a sink took.
		default:
			for i, in := range n.inputs {
				n.ins[i] = in.out
			}
			n.out.Reset(n.schema)
			ep.Stats = &n.stats
			x.curr = n
			if err := n.op.Process(ep, n.ins, n.out); err != nil {
				return &PlanError{Pipeline: x.plan.name, Step: n.name, Err: err}
			}
		}
	}
	for i, n := range x.plan.sinks {
		src := n.inputs[0]
		dst := x.result.Outputs[i]
		n.stats.In += uint64(len(src.out.Recs))
		n.stats.Out += uint64(len(src.out.Recs))
		if dst.Len() == 0 && src.consumers == 1 && src.source == nil {
			// The sink is the step's only reader: take its batch instead of
			// copying it, and give the step the empty one to fill next time.
			x.result.Outputs[i], src.out = src.out, dst
			continue
		}
		for j := range src.out.Recs {
			dst.AppendCopy(&src.out.Recs[j])
		}
	}
	return nil
}

func (x *Executor) deadLetter(rec *Record, s *Schema, reason error) {
	n := x.curr
	n.stats.Invalid++
	if x.opt.DeadLetter != nil {
		x.opt.DeadLetter(n.name, rec, s, reason)
	}
}

// commitEpoch commits the epoch. An idle epoch (no input)
// that changed no state and produced no output is not committed and gives its
// number back, so an idle node does not write to flash every
// interval; epoch numbers, and so output ids, count only epochs that did
// something.
func (x *Executor) commitEpoch(ctx context.Context, idle bool) error {
	c := &x.commit
	c.Pipeline, c.Partition, c.Epoch, c.Watermark, c.Through = x.plan.name, x.opt.Partition, x.seq, x.wm, x.through
	if c.Input == nil {
		c.Input = make(map[string]uint64, len(x.plan.sources))
	}
	for _, s := range x.plan.sources {
		c.Input[s.name] = s.source.position
	}
	c.State = c.State[:0]
	x.stateArena = x.stateArena[:0]
	for _, n := range x.plan.nodes {
		if n.stateOK {
			w := StateWriter{ns: n.name, ops: &c.State, arena: &x.stateArena}
			if err := n.op.(Stateful).SaveState(&w); err != nil {
				return &PlanError{Pipeline: x.plan.name, Step: n.name, Err: fmt.Errorf("save state: %w", err)}
			}
		}
	}
	c.Outputs = c.Outputs[:0]
	c.Tables = c.Tables[:0]
	for _, n := range x.plan.nodes {
		if t, ok := n.op.(tableWriterOp); ok {
			c.Tables = t.appendWrites(c.Tables, x.seq)
		}
	}
	if idle && len(c.State) == 0 && len(c.Tables) == 0 && x.outputCount() == 0 {
		x.seq--
		return nil
	}
	if x.idle {
		x.saveIdle(c)
	}
	multi := x.multiWM()
	if multi {
		x.saveWatermarks(c)
	}
	if x.opt.Encode != nil {
		x.encodeOutputs(c)
	}
	if err := x.store.Commit(ctx, c); err != nil {
		return err
	}
	if multi {
		for _, s := range x.plan.sources {
			s.source.savedWM = s.source.wm
		}
	}
	return nil
}

// encodeOutputs encodes the epoch's output records into one buffer and
// appends them to c.Outputs. The outputs' Data are sliced from the buffer
// only once it is complete: slices taken while it grew would keep each of
// its earlier, smaller copies alive until the commit, about as much memory
// again as the encoded outputs.
func (x *Executor) encodeOutputs(c *Commit) {
	x.encBuf = x.encBuf[:0]
	x.encEnd = x.encEnd[:0]
	for i, n := range x.plan.sinks {
		b := x.result.Outputs[i]
		// Numbered per sink: the j-th output of every sink fed by the
		// same step has the same id.
		for j := range b.Recs {
			x.encBuf = x.opt.Encode(x.encBuf, b.Schema, &b.Recs[j])
			x.encEnd = append(x.encEnd, len(x.encBuf))
			c.Outputs = append(c.Outputs, Output{Sink: n.name, ID: x.OutputID(j)})
		}
	}
	outs := c.Outputs[len(c.Outputs)-len(x.encEnd):]
	start := 0
	for k, end := range x.encEnd {
		outs[k].Data = x.encBuf[start:end:end]
		start = end
	}
}

func (x *Executor) outputCount() int {
	n := 0
	for _, b := range x.result.Outputs {
		n += b.Len()
	}
	return n
}

// OutputID returns the deterministic id of the seq-th output of one sink in
// the current epoch (see OutputID).
func (x *Executor) OutputID(seq int) string {
	return OutputID{Pipeline: x.plan.name, Partition: x.opt.Partition, Term: x.term(), Epoch: x.seq, Seq: seq}.String()
}

func (x *Executor) term() uint64 {
	if x.opt.Term == 0 {
		return 1
	}
	return x.opt.Term
}

// StepStats are the counters of one step, for metrics.
type StepStats struct {
	Step string
	NodeStats
	StateRows int
}

// Stats returns the counters of every step, in plan order.
func (x *Executor) Stats() []StepStats { return x.stats(true) }

// Counters is Stats without StateRows (zero), which walks operator state:
// cheap enough to call after every epoch.
func (x *Executor) Counters() []StepStats { return x.stats(false) }

func (x *Executor) stats(rows bool) []StepStats {
	out := make([]StepStats, 0, len(x.plan.nodes))
	for _, n := range x.plan.nodes {
		s := StepStats{Step: n.name, NodeStats: n.stats}
		if rows && n.stateOK {
			s.StateRows = n.op.(Stateful).StateRows()
		}
		out = append(out, s)
	}
	return out
}

// StepStats returns the counters of one step.
func (x *Executor) StepStats(step string) (StepStats, bool) {
	for _, s := range x.Stats() {
		if s.Step == step {
			return s, true
		}
	}
	return StepStats{}, false
}

// Query calls fn with the live state rows of a queryable step. Call it between
// epochs (from the executor's goroutine) so the state is consistent.
func (x *Executor) Query(step string, fn func(s *Schema, r *Record) bool) error {
	for _, n := range x.plan.nodes {
		if n.name != step {
			continue
		}
		q, ok := n.op.(Queryable)
		if !ok {
			return fmt.Errorf("step %q has no queryable state", step)
		}
		s := q.QuerySchema()
		q.QueryState(func(r *Record) bool { return fn(s, r) })
		return nil
	}
	return fmt.Errorf("%w: no step %q in pipeline %q", ErrUnknownField, step, x.plan.name)
}
