package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/pipeline"
)

// Input is one logged message as a decoder sees it.
type Input struct {
	// Topic is the MQTT topic the message came on ("" for file input).
	Topic string
	// Payload is the message as received. It is valid only during Decode.
	Payload []byte
	// Received is when the message was appended to the input log (unix ms;
	// 0 if unknown). Decoders resolve relative times (SenML) against it, so
	// a replay after a crash gives the same event times.
	Received int64
}

// Decoder turns one logged message into the records of one source. Decode
// appends the message's records to b and returns an error when the message
// as a whole cannot be decoded (it then becomes one dead letter, and
// whatever Decode appended is discarded). A message holding several records
// (a CSV payload of many rows, a SenML pack) may instead reject single
// records with reject, giving the bytes of the record and the reason, and go
// on. Decode is called from the runner's goroutine only; it must not retain
// in.Payload.
type Decoder interface {
	Decode(b *engine.Batch, in Input, reject func(raw []byte, err error)) error
}

// DecoderFunc adapts a function to Decoder.
type DecoderFunc func(b *engine.Batch, in Input, reject func(raw []byte, err error)) error

// Decode calls f.
func (f DecoderFunc) Decode(b *engine.Batch, in Input, reject func(raw []byte, err error)) error {
	return f(b, in, reject)
}

// Source is one source of the pipeline: which input log it reads, which of
// the log's entries are for it, and how they decode.
type Source struct {
	// Name is the source's name in the pipeline.
	Name string
	// Log is the input log it reads. Several sources (of this and other
	// pipelines) may read one log: a message is logged once.
	Log string
	// Match reports whether an entry logged with this topic is for the
	// source. Nil takes every entry of Log.
	Match func(topic string) bool
	// Decoder decodes the entries for the source.
	Decoder Decoder
}

// Log reads the input logs. Implementations must be safe for concurrent use.
type Log interface {
	// ReadLogEntries calls fn for the entries of log with offsets >= from,
	// in order, at most max of them; rec is valid only during fn, appended
	// is the entry's append time (unix ms).
	ReadLogEntries(log string, from uint64, max int, fn func(off uint64, appended int64, rec []byte) error) error
	// LogNext returns the offset the next entry appended to log will get.
	LogNext(log string) uint64
}

// LogSettler is implemented by a Log whose entries become visible some time
// after their append time (a group commit's fsync). LogSettled returns once
// every entry appended before t (unix ms) is visible; it is called at or
// after time t. Config.ArrivalCut uses it.
type LogSettler interface {
	LogSettled(t int64)
}

// maxBehind is how many interval boundaries a runner with ArrivalCut runs
// late, one epoch each, before it skips to the current one.
const maxBehind = 600

// errCut stops reading a log at an arrival-time cut.
var errCut = errors.New("arrival cut")

// Store keeps checkpoints and operator state. Implementations must be safe
// for concurrent use (queries read while epochs commit).
type Store interface {
	// LastCheckpoint and Scan are engine.StateStore's.
	LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error)
	Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error
	// CommitAll applies all of cs in one durable transaction (nothing of it
	// survives a crash unless all of it does). It does not retain cs.
	CommitAll(ctx context.Context, cs []*engine.Commit) error
}

// SpoolName is the spool (and the name in status, metrics and logs) of a
// pipeline's sink: "pipeline/sink". Outputs of an epoch go to it.
func SpoolName(pipeline, sink string) string { return pipeline + "/" + sink }

// PipelinePartition is the checkpoint partition under which the runner keeps
// the pipeline's own record: its epoch count and its input positions.
const PipelinePartition = -1

// LayoutPartition is the checkpoint partition under which the runner keeps
// how many partitions the pipeline's state is split in (see LayoutRecord).
const LayoutPartition = -2

// LayoutRecord is the commit that records that pipeline's state is split in
// n partitions. The runner writes it when a pipeline starts; a pipeline
// whose state exists keeps that number of partitions (see New).
func LayoutRecord(pipeline string, n int) *engine.Commit {
	return &engine.Commit{Pipeline: pipeline, Partition: LayoutPartition, Epoch: 1,
		Watermark: engine.NoWatermark, Input: map[string]uint64{layoutKey: uint64(n)}}
}

const layoutKey = "partitions"

// Config configures a Runner.
type Config struct {
	// Compiled is the pipeline. Its plan is compiled again for every
	// partition (operators hold state).
	Compiled *pipeline.Compiled
	// Sources are the pipeline's sources, as the node wires them.
	Sources []Source
	// Partitions is the number of partitions of a partitionable pipeline
	// (see Partitionable); zero means DefaultPartitions. Other pipelines
	// run as one partition.
	Partitions int
	Log        Log
	Store      Store
	// Owner says which partitions this node holds; nil means SingleNode.
	Owner Ownership
	// StandbyHold is how long a standby keeps the outputs it computed (and
	// did not emit) in memory: when the partition's claim turns from
	// standby to owner, the outputs of the last StandbyHold are emitted in
	// the first epoch as owner, ahead of its own, so that windows the dead
	// owner may not have delivered (those closed during failure detection)
	// are not lost; some may be emitted twice, with the same values. Zero
	// means none are kept (a standby's outputs are dropped at commit).
	StandbyHold time.Duration
	// Clock gives processing time; nil means the system clock.
	Clock engine.Clock
	// Logger receives the runner's events; nil discards them.
	Logger *slog.Logger
	// Encode encodes output records into the spool (engine.Options.Encode).
	Encode func(dst []byte, s *engine.Schema, r *engine.Record) []byte
	// MaxRecords is the most entries one epoch reads from one log; zero
	// means 65536.
	MaxRecords int
	// FeedRecords is how many records a chunked plan is fed at a time
	// (engine.Executor.Feed); zero means 4096.
	FeedRecords int
	// MaxOutputs bounds the window rows each partition emits per epoch
	// (engine.Options.MaxOutputs): when a watermark closes more windows at
	// once, the rest are emitted by the next epochs, run at once and with
	// no input until none waits, each committed on its own, so that an
	// epoch's outputs and every copy its commit makes stay bounded. Zero
	// means DefaultMaxOutputs; negative means no bound.
	MaxOutputs int
	// Virtual runs epochs back to back while input waits, at processing
	// time epoch*interval (input files, tests), instead of on the clock.
	Virtual bool
	// InputOpen, in virtual mode, reports whether an input file is still
	// being appended: epochs then take only full MaxRecords, so that epoch
	// boundaries depend on the input alone. Nil means false.
	InputOpen func() bool
	// ArrivalCut cuts clock-mode epochs by arrival time: the epoch at
	// processing time t reads the entries appended before t, and no later
	// ones, once every entry appended before t is visible (LogSettler). Its
	// epochs are then a function of the log alone, so a backfill over the
	// same log (Backfill) reproduces them. It needs the clock to be the one
	// the log stamps entries with (the system clock). Off in virtual mode.
	ArrivalCut bool
	// Committed is called after every committed epoch, on the runner's
	// goroutine (the node wakes the sinks). Nil is fine.
	Committed func()
	// StateEvery is how often the partitions' state and checkpoints are
	// committed; the epochs in between commit their outputs and the
	// pipeline's position only, and a restart replays them from the input
	// log (see journal.go). Zero or negative: every epoch. It applies only
	// to a single node (Owner SingleNode) and to pipelines that read no
	// history table; the others commit their state every epoch.
	StateEvery time.Duration
}

// Runner runs one pipeline. Its methods are safe for concurrent use.
type Runner struct {
	cfg      Config
	name     string
	spec     *pipeline.Spec
	interval int64 // ms
	nparts   int
	procTime bool
	logs     []string          // distinct logs read, in source order
	spools   map[string]string // sink -> its spool, SpoolName(pipeline, sink)
	clock    engine.Clock
	log      *slog.Logger
	wake     chan struct{}

	// mu is held for a whole epoch and by queries, so a query never sees a
	// half-applied epoch. Lock order: mu, then dlMu, then snapMu.
	mu       sync.Mutex
	parts    []*part // held partitions, by partition number
	byID     []*part // len nparts; nil where not held
	pos      map[string]uint64
	epoch    uint64 // pipeline epochs committed
	lastTime int64
	pcommit  engine.Commit
	scratch  []*engine.Batch // per source: decoded records before routing
	bad      uint64          // decode dead letters
	routes   map[string]topicRoute
	rej      entryReject // decodeRoute's reject callback
	lastErr  string
	statsAt  time.Time // when publish last counted the steps' figures

	dlMu sync.Mutex
	dls  []engine.DeadLetter // of the running epoch
	opDL uint64

	snapMu sync.Mutex
	snap   Status

	adopted map[int][]HeldOutput // by partition: a peer's held outputs (Boundary.Adopt)
	reload  map[int]bool         // partitions to restore from their checkpoint (Boundary.Reload)

	// Sparse state checkpoints (Config.StateEvery, journal.go); under mu.
	readsTables bool                  // the pipeline reads history tables it does not write: state every epoch
	base        map[string]uint64     // input positions of the last state checkpoint
	journal     []journalEpoch        // epochs committed since, oldest first
	deferred    map[int]*deferredPart // by partition: what they committed since
	stateAt     time.Time             // when the state was last committed
	replaying   bool
}

// part is one held partition.
type part struct {
	claim   Claim
	held    []heldOutput           // a standby's recent outputs (Config.StandbyHold)
	release []engine.Output        // a promoted standby's held outputs, emitted at its next commit
	wm      int64                  // the watermark through which the partition's committed outputs are complete (engine.Result.Through)
	fence   int64                  // a promoted owner's outputs of epochs up to this watermark were the previous owner's (Marker); NoWatermark: none
	skip    map[string][]skipRange // by log, ascending: entries in the installed state (SkipRanges)
	c       *pipeline.Compiled
	x       *engine.Executor
	inputs  []*engine.Batch // per source of Config.Sources
	pending int             // records appended since the last Feed
	store   *partStore
}

// New restores the pipeline from its last checkpoint (or starts it at the
// current end of its input logs, durably, if it has none) and returns its
// runner. Call Run to run it.
func New(cfg Config) (*Runner, error) {
	c := cfg.Compiled
	r := &Runner{cfg: cfg, name: c.Plan.Name(), spec: c.Spec, interval: c.Interval.Milliseconds(),
		procTime: processingTime(c.Spec), clock: cfg.Clock, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if r.interval <= 0 {
		r.interval = 1000
	}
	if r.clock == nil {
		r.clock = engine.SystemClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.cfg.Owner == nil {
		r.cfg.Owner = SingleNode{}
	}
	if r.cfg.MaxRecords <= 0 {
		r.cfg.MaxRecords = 65536
	}
	if r.cfg.FeedRecords <= 0 {
		r.cfg.FeedRecords = 4096
	}
	if r.cfg.MaxOutputs == 0 {
		r.cfg.MaxOutputs = DefaultMaxOutputs
	}
	r.spools = map[string]string{}
	for _, sk := range c.Plan.Sinks() {
		r.spools[sk] = SpoolName(r.name, sk)
	}
	r.readsTables = readsForeignTables(r)
	r.nparts = 1
	if Partitionable(c.Spec) {
		r.nparts = orDefault(cfg.Partitions, DefaultPartitions)
	}
	for _, s := range cfg.Sources {
		if !slices.Contains(r.logs, s.Log) {
			r.logs = append(r.logs, s.Log)
		}
		sch := c.Decoders[s.Name].Schema
		r.scratch = append(r.scratch, engine.NewBatch(sch))
	}
	if err := r.keepLayout(); err != nil {
		return nil, err
	}
	r.byID = make([]*part, r.nparts)
	if err := r.restore(context.Background(), c); err != nil {
		return nil, err
	}
	r.publish()
	return r, nil
}

// DefaultMaxOutputs is Config.MaxOutputs when zero: about 4 MB of outputs in
// all their copies (records, encoded, the commit's) per partition and epoch.
const DefaultMaxOutputs = 4096

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Name returns the pipeline's name.
func (r *Runner) Name() string { return r.name }

// Interval returns the pipeline's epoch interval.
func (r *Runner) Interval() time.Duration { return time.Duration(r.interval) * time.Millisecond }

// Partitions returns the number of partitions the pipeline is split into.
func (r *Runner) Partitions() int { return r.nparts }

// restore reads the pipeline checkpoint and (re)builds every held
// partition's executor from its own. Call with mu held (or before Run).
func (r *Runner) restore(ctx context.Context, first *pipeline.Compiled) error {
	cp, err := r.cfg.Store.LastCheckpoint(r.name, PipelinePartition)
	if err != nil {
		return fmt.Errorf("pipeline %q: read checkpoint: %w", r.name, err)
	}
	base, journal, err := splitRecord(cp.Input)
	if err != nil {
		return fmt.Errorf("pipeline %q: read checkpoint: %w", r.name, err)
	}
	if cp.Input != nil {
		cp.Input = base
	}
	r.journal, r.deferred, r.stateAt = r.journal[:0], nil, r.clock.Now()
	r.pos = map[string]uint64{}
	r.epoch = cp.Epoch
	if cp.Input == nil {
		// No checkpoint: a new pipeline starts at the end of its logs,
		// durably (as epoch 0), so what is logged from now on is its input
		// whatever happens next.
		for _, lg := range r.logs {
			r.pos[lg] = max(r.cfg.Log.LogNext(lg), 1)
		}
		pc := &engine.Commit{Pipeline: r.name, Partition: PipelinePartition, Epoch: 0, Input: r.pos, Watermark: engine.NoWatermark}
		if err := r.cfg.Store.CommitAll(ctx, []*engine.Commit{pc}); err != nil {
			return fmt.Errorf("pipeline %q: record its start: %w", r.name, err)
		}
		r.pos = cloneMap(pc.Input)
	} else {
		for _, lg := range r.logs {
			r.pos[lg] = max(cp.Input[lg], 1)
		}
	}
	r.parts, r.byID = nil, make([]*part, r.nparts)
	claims := r.cfg.Owner.Claims(r.name, r.nparts)
	for _, cl := range claims {
		if cl.Partition < 0 || cl.Partition >= r.nparts || r.byID[cl.Partition] != nil {
			continue
		}
		p, err := r.newPart(cl, first)
		first = nil
		if err != nil {
			return err
		}
		r.byID[cl.Partition] = p
		r.parts = append(r.parts, p)
	}
	slices.SortFunc(r.parts, func(a, b *part) int { return a.claim.Partition - b.claim.Partition })
	r.base = cloneMap(r.pos)
	if len(journal) > 0 {
		if err := r.replay(ctx, journal); err != nil {
			return fmt.Errorf("pipeline %q: %w", r.name, err)
		}
		if !r.sparse() {
			return r.flushState(ctx)
		}
	}
	return nil
}

func cloneMap(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newPart compiles a plan for the claimed partition (reusing c if given)
// and restores its executor.
func (r *Runner) newPart(cl Claim, c *pipeline.Compiled) (*part, error) {
	if c == nil {
		var err error
		if c, err = pipeline.Compile(r.spec); err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", r.name, err)
		}
	}
	p := &part{claim: cl, c: c, fence: engine.NoWatermark}
	p.store = &partStore{r: r, p: p}
	x, err := engine.NewExecutor(c.Plan, engine.Options{Store: p.store, Clock: r.clock, Partition: cl.Partition,
		Term: cl.Term, Interval: c.Interval, Encode: r.cfg.Encode, DeadLetter: r.operatorDeadLetter, Logger: r.log,
		MaxOutputs: max(r.cfg.MaxOutputs, 0)})
	if err != nil {
		return nil, err
	}
	p.x = x
	p.wm = x.Through()
	if err := r.readSkips(p); err != nil {
		return nil, fmt.Errorf("pipeline %q partition %d: %w", r.name, cl.Partition, err)
	}
	if mk, ok := r.cfg.Owner.(Marker); ok && cl.Emit {
		// A new owner (or term): the previous owner may have committed
		// outputs beyond this node's state.
		if through, ok := mk.EmittedThrough(r.name, cl.Partition); ok {
			p.fence = through
		}
	}
	r.adopt(p)
	for _, s := range r.cfg.Sources {
		in := x.Input(s.Name)
		if in == nil {
			return nil, fmt.Errorf("pipeline %q: source %q is not in the plan", r.name, s.Name)
		}
		p.inputs = append(p.inputs, in)
	}
	return p, nil
}

// reconcile follows ownership changes: new claims get an executor restored
// from their checkpoint, lost ones are dropped, a changed term or role
// rebuilds the executor. Call with mu held, between epochs.
func (r *Runner) reconcile() error {
	claims := r.cfg.Owner.Claims(r.name, r.nparts)
	want := make([]*Claim, r.nparts)
	for i := range claims {
		if p := claims[i].Partition; p >= 0 && p < r.nparts && want[p] == nil {
			want[p] = &claims[i]
		}
	}
	changed := false
	for i := range r.nparts {
		have, w := r.byID[i], want[i]
		switch {
		case have == nil && w == nil:
		case w == nil:
			r.byID[i], changed = nil, true
		case have != nil && have.claim == *w && !r.reload[i]:
		default:
			p, err := r.newPart(*w, nil)
			if err != nil {
				return err
			}
			if r.reload[i] {
				delete(r.reload, i)
				if have != nil {
					r.byID[i], changed = p, true
					continue // its state and held outputs were replaced
				}
			}
			switch {
			case have == nil:
			case !have.claim.Emit && w.Emit: // promoted
				dropped := 0
				for _, h := range have.held {
					if r.committedBefore(&h.out, h.from, h.to, p.fence) {
						dropped++ // the previous owner committed it
						continue
					}
					// Emitted under the new term: the id says who emitted it
					// (the uplink's fence compares terms).
					if id, err := engine.ParseOutputID(h.out.ID); err == nil {
						id.Term = w.Term
						h.out.ID = id.String()
					}
					p.release = append(p.release, h.out)
				}
				r.log.Info("standby promoted", "pipeline", r.name, "partition", i, "term", w.Term, "held_outputs", len(p.release),
					"held_dropped", dropped, "previous_owner_through", fenceString(p.fence))
			case !have.claim.Emit: // still a standby, under another term
				p.held = have.held
				r.log.Debug("standby term changed", "pipeline", r.name, "partition", i, "term", w.Term, "held_outputs", len(p.held))
			default:
				p.release = have.release // not yet committed
			}
			r.byID[i], changed = p, true
		}
	}
	if changed {
		r.parts = r.parts[:0]
		for _, p := range r.byID {
			if p != nil {
				r.parts = append(r.parts, p)
			}
		}
	}
	return nil
}

// operatorDeadLetter is every executor's DeadLetter hook (called from the
// partitions' goroutines during an epoch).
func (r *Runner) operatorDeadLetter(step string, rec *engine.Record, s *engine.Schema, reason error) {
	var b []byte
	if r.cfg.Encode != nil {
		b = r.cfg.Encode(nil, s, rec)
	}
	d := engine.DeadLetter{Pipeline: r.name, Step: step, Payload: b, Reason: reason.Error(), Time: r.clock.Now().UnixMilli()}
	r.dlMu.Lock()
	r.dls = append(r.dls, d)
	r.opDL++
	r.dlMu.Unlock()
}

// Notify tells the runner that input was appended (virtual mode waits for
// it). It never blocks.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run runs epochs until ctx ends; an epoch that started is finished. It
// returns nil when ctx ends, after committing the state held for the next
// checkpoint (Config.StateEvery): a graceful stop leaves no journal, so
// the next start replays nothing. (A failure to commit it is logged: the
// journal and the log still hold the epochs, and the next start replays
// them.)
func (r *Runner) Run(ctx context.Context) error {
	err := r.run(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr == "" { // after a failed epoch the state may not be whole
		if ferr := r.flushState(context.WithoutCancel(ctx)); ferr != nil {
			r.log.Error("stopping: the state stays to be replayed from the log at the next start", "pipeline", r.name, "err", ferr)
		} else {
			r.publish()
		}
	}
	return err
}

func (r *Runner) run(ctx context.Context) error {
	iv := r.interval
	ectx := context.WithoutCancel(ctx)
	more := false
	for {
		var t int64
		switch {
		case r.cfg.Virtual:
			if !r.hasInput() {
				select {
				case <-ctx.Done():
					return nil
				case <-r.wake:
				case <-r.clock.After(50 * time.Millisecond):
				}
				continue
			}
			t = int64(r.Epoch()+1) * iv
		case more && !r.procTime:
			// Catch-up: more input waits than one epoch takes.
			t = max(r.lastTimeLocked(), r.clock.Now().UnixMilli())
			if r.cfg.ArrivalCut {
				t = r.lastTimeLocked() // the rest of the same interval
			}
		default:
			now := r.clock.Now().UnixMilli()
			t = floorDiv(now, iv)*iv + iv
			lt := r.lastTimeLocked()
			behind := r.cfg.ArrivalCut && lt > 0 && t-lt > iv && t-lt <= maxBehind*iv
			switch {
			case behind:
				// An epoch ran long: run the boundaries it missed, each
				// its own epoch, so epochs stay the intervals of arrival
				// time (a backfill cuts the same ones).
				t = lt + iv
			case t <= lt:
				t = lt + iv
			}
			select {
			case <-ctx.Done():
				return nil
			case <-r.clock.After(time.Duration(t-now) * time.Millisecond):
			}
			if now := r.clock.Now().UnixMilli(); !behind && floorDiv(now, iv)*iv > t && !(r.cfg.ArrivalCut && floorDiv(now, iv)*iv-t <= maxBehind*iv) {
				t = floorDiv(now, iv) * iv // woke late: run at the current boundary
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		var err error
		more, err = r.RunEpoch(ectx, t)
		if err != nil {
			more = false
			r.log.Error("epoch failed", "pipeline", r.name, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-r.clock.After(time.Second):
			}
		}
		if more {
			select {
			case <-ctx.Done():
				return nil
			default:
			}
		}
	}
}

// pendingLocked reports whether a held partition has closed windows waiting
// to be emitted (Config.MaxOutputs). Call with mu held.
func (r *Runner) pendingLocked() bool {
	for _, p := range r.parts {
		if p.x.Pending() {
			return true
		}
	}
	return false
}

func (r *Runner) lastTimeLocked() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastTime
}

// Epoch returns the number of pipeline epochs committed.
func (r *Runner) Epoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// hasInput reports whether a virtual-time epoch should run.
func (r *Runner) hasInput() bool {
	need := uint64(1)
	if r.cfg.InputOpen != nil && r.cfg.InputOpen() {
		need = uint64(r.cfg.MaxRecords)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pendingLocked() {
		return true // closed windows wait: an epoch emits them
	}
	for _, lg := range r.logs {
		if r.cfg.Log.LogNext(lg) >= r.pos[lg]+need {
			return true
		}
	}
	return false
}

// RunEpoch runs (and commits) one epoch at processing time t: it reads the new
// input of every log, decodes and routes it, runs every held partition and
// commits them together. more reports that a log had more input than the
// epoch took. Exported for tests and tools that drive epochs by hand.
func (r *Runner) RunEpoch(ctx context.Context, t int64) (more bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reconcile(); err != nil {
		return false, err
	}
	newPos := cloneMap(r.pos)
	cut := r.cfg.ArrivalCut && !r.cfg.Virtual
	// While closed windows wait to be emitted (MaxOutputs), epochs take no
	// input: a record must not reach a window that closed before it.
	pending := r.pendingLocked()
	if s, ok := r.cfg.Log.(LogSettler); ok && cut && !pending {
		s.LogSettled(t)
	}
	var bad uint64
	f := feeder{r: r, match: routeAll}
	for _, lg := range r.logs {
		if pending {
			break
		}
		n := 0
		err := r.cfg.Log.ReadLogEntries(lg, newPos[lg], r.cfg.MaxRecords, func(off uint64, at int64, rec []byte) error {
			if cut && at >= t {
				return errCut
			}
			newPos[lg] = off + 1
			n++
			k, err := f.feed(ctx, t, lg, off, at, rec)
			bad += k
			return err
		})
		if errors.Is(err, errCut) {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("read input log %q: %w", lg, err)
			if r.fedAny() {
				// Operators processed part of the epoch: start over from
				// the checkpoint.
				return false, r.rebuild(ctx, err)
			}
			r.resetInputs()
			r.dls = r.dls[:0]
			return false, err
		}
		if n >= r.cfg.MaxRecords {
			more = true
		}
	}
	if err := r.runPartitions(ctx, t, newPos); err != nil {
		return false, r.rebuild(ctx, err)
	}
	if r.pendingLocked() {
		more = true
	}
	r.pos = newPos
	r.lastTime = t
	r.bad += bad
	r.lastErr = ""
	r.publish()
	if r.cfg.Committed != nil {
		r.cfg.Committed()
	}
	return more, nil
}

// topicRoute is what the runner knows of a topic: the string the decoders
// get (one per topic, not one per entry) and which sources' Match take it.
type topicRoute struct {
	topic string
	match uint64 // bit i: Sources[i].Match takes the topic (or it is nil)
}

// feeder hands log entries to the sources that take them (an epoch's, or a
// replayed one's), keeping the routing of the last topic it saw.
type feeder struct {
	r        *Runner
	topicB   []byte
	topicStr string
	match    uint64 // of topicStr: bit si set when source si takes it; routeAll: ask each
}

// feed decodes the entry rec (at offset off of log lg, appended at at)
// into every source of lg that takes its topic, for the epoch at t. It
// returns the records rejected.
func (f *feeder) feed(ctx context.Context, t int64, lg string, off uint64, at int64, rec []byte) (uint64, error) {
	r := f.r
	topic, payload, framed := SplitEntry(rec)
	if len(bytes.TrimSpace(payload)) == 0 {
		return 0, nil
	}
	if framed && !bytes.Equal(topic, f.topicB) {
		f.topicB = append(f.topicB[:0], topic...)
		rt := r.route(topic)
		f.topicStr, f.match = rt.topic, rt.match
	} else if !framed {
		f.topicB, f.topicStr, f.match = f.topicB[:0], "", routeAll
	}
	var bad uint64
	for si := range r.cfg.Sources {
		s := &r.cfg.Sources[si]
		if s.Log != lg {
			continue
		}
		if f.match != routeAll {
			if f.match&(1<<si) == 0 {
				continue
			}
		} else if s.Match != nil && !s.Match(f.topicStr) {
			continue
		}
		k, err := r.decodeRoute(ctx, t, si, off, Input{Topic: f.topicStr, Payload: payload, Received: at})
		bad += k
		if err != nil {
			return bad, err
		}
	}
	return bad, nil
}

// routeAll in a topicRoute's match means "not cached": ask each source.
const routeAll = ^uint64(0)

// maxRoutes bounds the route cache (topics; it starts over when full).
const maxRoutes = 4096

// route returns the route of topic, from the cache when the topic was seen
// before: Match and the topic's string cost a tenth of an epoch's decoding
// when done for every entry, and a sensor's readings share their topic.
func (r *Runner) route(topic []byte) topicRoute {
	if rt, ok := r.routes[string(topic)]; ok {
		return rt
	}
	rt := topicRoute{topic: string(topic), match: routeAll}
	if len(r.cfg.Sources) < 64 {
		rt.match = 0
		for si := range r.cfg.Sources {
			if m := r.cfg.Sources[si].Match; m == nil || m(rt.topic) {
				rt.match |= 1 << si
			}
		}
	}
	if r.routes == nil || len(r.routes) >= maxRoutes {
		r.routes = make(map[string]topicRoute)
	}
	r.routes[rt.topic] = rt
	return rt
}

// fedAny reports whether some partition was fed part of this epoch.
func (r *Runner) fedAny() bool {
	for _, p := range r.parts {
		if p.store.fed {
			return true
		}
	}
	return false
}

// decodeRoute decodes one entry for source si and routes its records to
// their partitions. It returns the number of dead letters it made.
func (r *Runner) decodeRoute(ctx context.Context, t int64, si int, off uint64, in Input) (uint64, error) {
	s := &r.cfg.Sources[si]
	// The entry's reject callback, bound once per Runner: a closure over
	// this call's variables cost an allocation per entry.
	rj := &r.rej
	if rj.fn == nil {
		rj.fn = rj.reject
	}
	rj.r, rj.s, rj.off, rj.topic, rj.n = r, s, off, in.Topic, 0
	reject := rj.fn
	direct := r.nparts == 1
	var b *engine.Batch
	if direct {
		if r.byID[0] == nil || (r.byID[0].skip != nil && r.byID[0].skipped(s.Log, off)) {
			return 0, nil // partition 0 is held by another node, or its state has the entry
		}
		b = r.byID[0].inputs[si]
	} else {
		b = r.scratch[si]
		b.Reset(b.Schema)
	}
	n0 := b.Len()
	err := s.Decoder.Decode(b, in, reject)
	dl := rj.n
	rj.s, rj.topic = nil, ""
	if err != nil {
		b.Recs = b.Recs[:n0]
		dl++
		r.inputDeadLetter(s, off, in.Topic, in.Payload, err)
		return dl, nil
	}
	for i := n0; i < b.Len(); i++ {
		b.Recs[i].Origin = engine.Origin{Source: s.Name, Offset: off}
	}
	if direct {
		p := r.byID[0]
		p.pending += b.Len() - n0
		return dl, r.maybeFeed(ctx, t, p)
	}
	for i := range b.Recs {
		rec := &b.Recs[i]
		p := r.byID[PartitionOf(rec.Key, r.nparts)]
		if p == nil || (p.skip != nil && p.skipped(s.Log, off)) {
			continue // another node holds it, or its installed state has it
		}
		p.inputs[si].AppendCopy(rec)
		p.pending++
		if err := r.maybeFeed(ctx, t, p); err != nil {
			return dl, err
		}
	}
	return dl, nil
}

// entryReject is the reject callback decodeRoute gives a Decoder: it makes
// a dead letter of a record of the entry being decoded and counts it.
type entryReject struct {
	r     *Runner
	s     *Source
	off   uint64
	topic string
	n     uint64
	fn    func(raw []byte, err error) // reject, bound once
}

func (e *entryReject) reject(raw []byte, err error) {
	e.n++
	e.r.inputDeadLetter(e.s, e.off, e.topic, raw, err)
}

// maybeFeed hands a chunked plan the records waiting for it once there are
// FeedRecords of them.
func (r *Runner) maybeFeed(ctx context.Context, t int64, p *part) error {
	if p.pending < r.cfg.FeedRecords || !p.x.Chunked() {
		return nil
	}
	p.pending = 0
	p.store.fed = true
	return p.x.Feed(ctx, t)
}

func (r *Runner) inputDeadLetter(s *Source, off uint64, topic string, raw []byte, err error) {
	r.dlMu.Lock()
	r.dls = append(r.dls, engine.DeadLetter{Pipeline: r.name, Source: s.Name, Log: s.Log, Offset: off, Topic: topic,
		Payload: bytes.Clone(raw), Reason: err.Error(), Time: r.clock.Now().UnixMilli()})
	r.dlMu.Unlock()
}

// resetInputs empties every partition's input batches.
func (r *Runner) resetInputs() {
	for _, p := range r.parts {
		for _, in := range p.inputs {
			in.Reset(in.Schema)
		}
		p.pending = 0
		p.store.fed = false
	}
}

// runPartitions runs every held partition's epoch concurrently and commits
// them, with the pipeline's record, in one transaction (see barrier).
func (r *Runner) runPartitions(ctx context.Context, t int64, newPos map[string]uint64) error {
	b := &barrier{r: r, n: len(r.parts), done: make(chan struct{}), newPos: newPos, t: t}
	if b.n == 0 {
		return b.commit(ctx)
	}
	var wg sync.WaitGroup
	for _, p := range r.parts {
		p.pending = 0
		p.store.b, p.store.arrived = b, false
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.x.RunEpochAt(ctx, t)
			if !p.store.arrived {
				b.arrive(ctx, nil, err)
			}
		}()
	}
	wg.Wait()
	for _, p := range r.parts {
		p.store.b, p.store.fed = nil, false
	}
	return b.err
}

// rebuild handles an epoch that failed after executors started on it: their
// in-memory state may be ahead of the store, so every partition is rebuilt
// from its last checkpoint (fresh plans: operators hold state). It returns
// err, joined with a rebuild error if any. Call with mu held.
func (r *Runner) rebuild(ctx context.Context, err error) error {
	r.lastErr = err.Error()
	r.dlMu.Lock()
	r.dls = r.dls[:0]
	r.dlMu.Unlock()
	if rerr := r.restore(ctx, nil); rerr != nil {
		err = errors.Join(err, rerr)
	}
	r.publish()
	return err
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// fenceString shows a promoted owner's fence for the log.
func fenceString(wm int64) string {
	if wm == engine.NoWatermark {
		return "unknown"
	}
	return time.UnixMilli(wm).UTC().Format(time.RFC3339Nano)
}
