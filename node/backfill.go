package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

// Backfills. POST /api/v1/pipelines/NAME/backfill?from=T1&to=T2 runs the
// pipeline (or, with a pipeline document in the body, a new version of it)
// over the input the log retained for [T1, T2) (inputLog.retain), through
// the runner a live pipeline uses (runner.Backfill). It is a pipeline of its
// own named NAME@ID: its outputs carry that name in their ids and go to its
// own spools (NAME@ID/SINK), its file sinks write under
// outputDir/backfill/NAME@ID/, and it has its own checkpoint and state, so
// the live pipeline is not disturbed. When it ends its sinks deliver what it
// spooled (across restarts, like a retiring sink) and then its state is
// freed.

// DefaultBackfillCPU is the share of one core a backfill uses unless the
// request says otherwise (cpu=).
const DefaultBackfillCPU = 0.5

// Backfill states.
const (
	BackfillRunning     = "running"
	BackfillDone        = "done"
	BackfillFailed      = "failed"
	BackfillCanceled    = "canceled"
	BackfillInterrupted = "interrupted" // the node stopped; run it again
)

// BackfillInfo is one backfill in the API.
type BackfillInfo struct {
	ID string `json:"id"`
	// Pipeline is the pipeline backfilled; Name the pipeline name its
	// outputs carry (Pipeline@ID).
	Pipeline string `json:"pipeline"`
	Name     string `json:"name"`
	// From and To are the period, widened to whole intervals of the
	// pipeline (the epochs a live run cut).
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	State string    `json:"state"`
	Error string    `json:"error,omitempty"`
	// Missing lists the parts of the period the log no longer held when
	// the backfill started (only with partial=true; otherwise it is
	// refused).
	Missing []LogGap `json:"missing,omitempty"`
	// Reached is the end of the last epoch run; Progress the share of the
	// period done.
	Reached  time.Time `json:"reached"`
	Progress float64   `json:"progress"`
	// Entries counts the input-log entries read; Epochs the epochs that
	// committed something.
	Entries  uint64     `json:"entries"`
	Epochs   uint64     `json:"epochs"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	// Sinks are the backfill's sinks as they appear in status and metrics.
	Sinks []string `json:"sinks"`
}

// LogGap is a period an input log no longer holds.
type LogGap struct {
	Log  string    `json:"log"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// GapError refuses a backfill whose period the input log no longer holds
// in full.
type GapError struct {
	Gaps []LogGap
}

func (e *GapError) Error() string {
	var b strings.Builder
	for i, g := range e.Gaps {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "input log %q no longer holds %s to %s", g.Log, g.From.UTC().Format(time.RFC3339Nano), g.To.UTC().Format(time.RFC3339Nano))
	}
	b.WriteString(" (dropped by inputLog.retain, inputLog.retainBytes or the disk budget); nothing was run: start after that, or pass partial=true to run on what the log holds")
	return b.String()
}

// BackfillOptions are a backfill request.
type BackfillOptions struct {
	From, To time.Time
	// Spec is a pipeline document (a new version of the pipeline, same
	// name); empty runs the running version.
	Spec []byte
	// Partial runs even when the log no longer holds all of the period
	// (the gaps are listed in the status); otherwise such a backfill is
	// refused with a *GapError.
	Partial bool
	// CPUShare bounds the share of one core the backfill uses; 0 means
	// DefaultBackfillCPU.
	CPUShare float64
}

// backfillState is the node's backfills.
type backfillState struct {
	mu   sync.Mutex
	runs map[string]*backfillRun // by Name (pipeline@id)
	last int64                   // the last id's time, so ids are unique
	// horizon is, per log, the append time of the newest frame truncated
	// since start (unix ms): nothing after it was dropped.
	horizon map[string]int64
	// retainDropped counts retained entries dropped for the disk budget.
	retainDropped atomic.Uint64
}

type backfillRun struct {
	mu     sync.Mutex
	info   BackfillInfo
	b      *runner.Backfill
	start  map[string]uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// errNoPipeline is a backfill of a pipeline that is not loaded, without a
// document.
var errNoPipeline = errors.New("no such pipeline")

// StartBackfill starts a backfill (see the package comment above). Errors:
// *ApplyError for a bad request or document, *GapError when the log no
// longer holds the period, errNoPipeline.
func (n *Node) StartBackfill(name string, o BackfillOptions) (BackfillInfo, error) {
	if !n.ready.Load() || n.stopping.Load() {
		return BackfillInfo{}, ErrNotReady
	}
	raw, fileInput := o.Spec, false
	if len(raw) == 0 {
		p := n.pipeByName(name)
		if p == nil {
			return BackfillInfo{}, fmt.Errorf("pipeline %q: %w", name, errNoPipeline)
		}
		raw, fileInput = p.yaml, n.inputFile != "" && name == n.filePipe
	}
	c, err := compile(name+".yaml", raw)
	if err != nil {
		return BackfillInfo{}, &ApplyError{Err: err}
	}
	if c.Plan.Name() != name {
		return BackfillInfo{}, &ApplyError{Err: fmt.Errorf("metadata.name: the document is pipeline %q, the backfill is of %q", c.Plan.Name(), name)}
	}
	if err := CheckPipeline(n.cfg, c); err != nil {
		return BackfillInfo{}, &ApplyError{Err: err}
	}
	iv := max(c.Interval.Milliseconds(), 1)
	from, to := runner.AlignPeriod(o.From.UnixMilli(), o.To.UnixMilli(), iv)
	now := time.Now().UnixMilli()
	switch {
	case o.From.IsZero() || o.To.IsZero():
		return BackfillInfo{}, &ApplyError{Err: errors.New("from and to are required (RFC 3339 times)")}
	case !o.To.After(o.From):
		return BackfillInfo{}, &ApplyError{Err: fmt.Errorf("to (%s) must be after from (%s)", o.To.Format(time.RFC3339Nano), o.From.Format(time.RFC3339Nano))}
	case to > now:
		return BackfillInfo{}, &ApplyError{Err: fmt.Errorf("to: the pipeline's interval ending at %s has not ended yet (to is rounded up to whole intervals of %s)",
			time.UnixMilli(to).UTC().Format(time.RFC3339Nano), c.Interval)}
	}
	share := o.CPUShare
	if share == 0 {
		share = DefaultBackfillCPU
	}
	if share < 0 || share > 1 {
		return BackfillInfo{}, &ApplyError{Err: fmt.Errorf("cpu: %v is not a share of one core in (0, 1]", share)}
	}

	bfName := name + "@" + n.backfillID()
	spec := *c.Spec
	spec.Metadata.Name = bfName
	c2, err := pipeline.Compile(&spec)
	if err != nil {
		return BackfillInfo{}, &ApplyError{Err: err}
	}
	// The live pipeline's sources: the entries it reads (topic templates
	// of bus and input sources carry its name).
	_, all, err := pipeSources(name, c2, fileInput)
	if err != nil {
		return BackfillInfo{}, &ApplyError{Err: err}
	}
	var srcs []runner.Source
	var logs []string
	for _, s := range all {
		if s.Log == ReplayLog(name) {
			continue // replayed dead letters belong to the live run
		}
		srcs = append(srcs, s)
		if !slices.Contains(logs, s.Log) {
			logs = append(logs, s.Log)
		}
	}
	gaps, err := n.logGaps(logs, from, to)
	if err != nil {
		return BackfillInfo{}, err
	}
	if len(gaps) > 0 && !o.Partial {
		return BackfillInfo{}, &GapError{Gaps: gaps}
	}
	start := map[string]uint64{}
	for _, lg := range logs {
		off, _, err := n.db.LogOffsetAt(lg, from)
		if err != nil {
			return BackfillInfo{}, err
		}
		start[lg] = off
	}
	writers, err := n.openWriters(bfName, c2.Spec)
	if err != nil {
		return BackfillInfo{}, &ApplyError{Err: err}
	}
	bp := &pipe{name: bfName, spec: c2.Spec, c: c2, yaml: raw}
	run := &backfillRun{start: start, done: make(chan struct{}), info: BackfillInfo{
		ID: strings.TrimPrefix(bfName, name+"@"), Pipeline: name, Name: bfName,
		From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC(), State: BackfillRunning,
		Missing: gaps, Reached: time.UnixMilli(from).UTC(), Started: time.Now().UTC()}}
	for _, sk := range c2.Plan.Sinks() {
		run.info.Sinks = append(run.info.Sinks, SinkName(bfName, sk))
	}
	b, err := runner.NewBackfill(runner.Config{Compiled: c2, Sources: srcs, Partitions: n.cfg.Epochs.Partitions,
		Log: nodeLog{n}, Store: backfillStore{n.db}, Clock: n.clock, Logger: n.log.With("backfill", bfName), Encode: decode.AppendJSON,
		MaxRecords: n.maxRecords(), FeedRecords: n.cfg.Epochs.FeedRecords, MaxOutputs: n.cfg.Epochs.MaxOutputs,
		Committed: func() { n.epochDone(bp) }}, from, to, start, share)
	if err != nil {
		closeWriters(writers)
		return BackfillInfo{}, fmt.Errorf("backfill %s: %w", bfName, err)
	}
	run.b = b
	ctx, cancel := context.WithCancel(n.runCtx)
	run.cancel = cancel
	n.bf.mu.Lock()
	if n.bf.runs == nil {
		n.bf.runs = map[string]*backfillRun{}
	}
	n.bf.runs[bfName] = run
	n.bf.mu.Unlock()
	if err := n.attachSinks(bp, writers); err != nil {
		n.log.Warn("backfill sinks", "backfill", bfName, "err", err)
	}
	n.saveBackfill(run)
	n.log.Info("backfill started", "backfill", bfName, "from", run.info.From, "to", run.info.To, "missing", len(gaps))
	go n.runBackfill(ctx, run, bp)
	return run.snapshot(), nil
}

// backfillStore is a backfill's store: the node's, except that the
// backfill's history steps write no rows. Its joins read the gateway's
// tables (what the live pipelines wrote); its writes would overwrite the
// live rows, or, from a version with other columns, drop the table.
type backfillStore struct{ *storage.DB }

// CommitAll implements runner.Store without the history-table rows.
func (s backfillStore) CommitAll(ctx context.Context, cs []*engine.Commit) error {
	for _, c := range cs {
		c.Tables = nil
	}
	return s.DB.CommitAll(ctx, cs)
}

// backfillID returns a new id: "backfill-" and the time in base 36,
// unique on this node.
func (n *Node) backfillID() string {
	n.bf.mu.Lock()
	defer n.bf.mu.Unlock()
	t := max(time.Now().UnixMilli(), n.bf.last+1)
	n.bf.last = t
	return "backfill-" + strconv.FormatInt(t, 36)
}

// runBackfill runs the backfill to its end, then lets its sinks deliver
// what it spooled and frees its state.
func (n *Node) runBackfill(ctx context.Context, run *backfillRun, bp *pipe) {
	defer close(run.done)
	err := run.b.Run(ctx)
	state := BackfillDone
	switch {
	case err == nil:
	case ctx.Err() != nil && n.runCtx.Err() != nil:
		state, err = BackfillInterrupted, errors.New("the node stopped; run the backfill again")
	case ctx.Err() != nil:
		state, err = BackfillCanceled, nil
	default:
		state = BackfillFailed
	}
	run.mu.Lock()
	run.update()
	run.info.State = state
	if err != nil {
		run.info.Error = err.Error()
	}
	t := time.Now().UTC()
	run.info.Finished = &t
	run.mu.Unlock()
	n.saveBackfill(run)
	n.log.Info("backfill ended", "backfill", bp.name, "state", state, "entries", run.info.Entries, "err", err)
	n.retire(bp)
}

// update refreshes the figures from the runner. run.mu is held.
func (run *backfillRun) update() {
	if run.b == nil {
		return
	}
	st := run.b.Runner().Status()
	run.info.Entries = 0
	for lg, s := range run.start {
		if p := st.Position[lg]; p > s {
			run.info.Entries += p - s
		}
	}
	run.info.Epochs = st.Epoch
	from, to := run.b.Period()
	r := run.b.Reached()
	run.info.Reached = time.UnixMilli(r).UTC()
	run.info.Progress = float64(r-from) / float64(to-from)
}

func (run *backfillRun) snapshot() BackfillInfo {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.info.State == BackfillRunning {
		run.update()
	}
	return run.info
}

// Backfills returns the backfills of a pipeline ("" for all), newest first.
func (n *Node) Backfills(pipelineName string) []BackfillInfo {
	n.bf.mu.Lock()
	runs := make([]*backfillRun, 0, len(n.bf.runs))
	for _, r := range n.bf.runs {
		runs = append(runs, r)
	}
	n.bf.mu.Unlock()
	out := []BackfillInfo{}
	for _, r := range runs {
		if in := r.snapshot(); pipelineName == "" || in.Pipeline == pipelineName {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b BackfillInfo) int { return b.Started.Compare(a.Started) })
	return out
}

func (n *Node) backfillRun(pipelineName, id string) *backfillRun {
	n.bf.mu.Lock()
	defer n.bf.mu.Unlock()
	return n.bf.runs[pipelineName+"@"+id]
}

// CancelBackfill stops a running backfill between two epochs. What it
// committed is delivered; its status says where it stopped.
func (n *Node) CancelBackfill(pipelineName, id string) (BackfillInfo, bool) {
	run := n.backfillRun(pipelineName, id)
	if run == nil {
		return BackfillInfo{}, false
	}
	if run.cancel != nil {
		run.cancel()
		<-run.done
	}
	return run.snapshot(), true
}

// stopBackfills waits for running backfills to stop (the node's context
// ended), so that storage closes after them.
func (n *Node) stopBackfills() {
	n.bf.mu.Lock()
	runs := make([]*backfillRun, 0, len(n.bf.runs))
	for _, r := range n.bf.runs {
		runs = append(runs, r)
	}
	n.bf.mu.Unlock()
	for _, r := range runs {
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	}
}

// backfillsDir keeps each backfill's status as DATADIR/backfills/NAME.json.
func (n *Node) backfillsDir() string { return filepath.Join(n.cfg.DataDir, "backfills") }

func (n *Node) saveBackfill(run *backfillRun) {
	in := run.snapshot()
	b, err := json.Marshal(in)
	if err == nil {
		if err = os.MkdirAll(n.backfillsDir(), 0o755); err == nil {
			err = writeFileAtomic(filepath.Join(n.backfillsDir(), in.Name+".json"), b)
		}
	}
	if err != nil {
		n.log.Warn("record backfill status", "backfill", in.Name, "err", err)
	}
}

// loadBackfills reads the statuses of earlier backfills; one that was
// running when the node stopped is interrupted (its sinks deliver what it
// spooled, as retiring sinks).
func (n *Node) loadBackfills() {
	ents, _ := os.ReadDir(n.backfillsDir())
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(n.backfillsDir(), e.Name()))
		var in BackfillInfo
		if err != nil || json.Unmarshal(b, &in) != nil || in.Name == "" {
			continue
		}
		run := &backfillRun{info: in, done: make(chan struct{})}
		close(run.done)
		if in.State == BackfillRunning {
			run.info.State, run.info.Error = BackfillInterrupted, "the node stopped; run the backfill again"
			n.saveBackfill(run)
		}
		n.bf.mu.Lock()
		if n.bf.runs == nil {
			n.bf.runs = map[string]*backfillRun{}
		}
		n.bf.runs[in.Name] = run
		n.bf.mu.Unlock()
	}
}

// logGaps returns the parts of [from, to) (unix ms) that logs no longer
// hold (see logGapsIn).
func (n *Node) logGaps(logs []string, from, to int64) ([]LogGap, error) {
	n.bf.mu.Lock()
	horizon := maps.Clone(n.bf.horizon)
	n.bf.mu.Unlock()
	return logGapsIn(n.db, horizon, logs, from, to)
}

// logGapsIn returns the parts of [from, to) (unix ms) that logs of db no
// longer hold: a log truncated at the front holds nothing from before its
// first retained entry; what was dropped ended at the newest frame
// truncated (horizon, when known), or at the first retained entry.
func logGapsIn(db *storage.DB, horizon map[string]int64, logs []string, from, to int64) ([]LogGap, error) {
	st, err := db.Stats()
	if err != nil {
		return nil, err
	}
	var gaps []LogGap
	for _, lg := range logs {
		ls := st.Log[lg]
		if ls.First <= 1 {
			continue // nothing was ever dropped
		}
		end := to // an emptied log: all of it may be gone
		if ls.Records > 0 {
			err := db.LogFrames(lg, func(f storage.LogFrame) bool {
				end = f.Appended
				return false
			})
			if err != nil {
				return nil, err
			}
		}
		if h, ok := horizon[lg]; ok && h < end {
			end = h + 1
		}
		if end > from {
			gaps = append(gaps, LogGap{Log: lg, From: time.UnixMilli(from).UTC(), To: time.UnixMilli(min(end, to)).UTC()})
		}
	}
	return gaps, nil
}

// dbLog is the runner's view of the input logs of a storage file opened
// by another process than the node (edged batch --from-log).
type dbLog struct{ db *storage.DB }

func (l dbLog) ReadLogEntries(log string, from uint64, max int, fn func(off uint64, appended int64, rec []byte) error) error {
	return l.db.ReadLogEntries(log, from, max, fn)
}

func (l dbLog) LogNext(log string) uint64 {
	st, err := l.db.Stats()
	if err != nil {
		return 1
	}
	return max(st.Log[log].Next, 1)
}

// OfflineBackfill is the outcome of RunBackfillOffline.
type OfflineBackfill struct {
	// From and To are the period run, widened to whole intervals.
	From, To time.Time
	// Missing are the parts of the period the log no longer held (run
	// anyway with partial).
	Missing []LogGap
	// Entries is the number of input-log entries read.
	Entries uint64
}

// RunBackfillOffline runs c over the input db's logs retained for [from,
// to), as a backfill does (edged batch --from-log): the runner a live
// pipeline uses, epochs cut by arrival time, its state in memory. Each
// output goes to out (in commit order, by partition within an epoch), ids
// carrying the pipeline name NAME@batch. A period the log no longer holds
// in full is refused with a *GapError unless partial. fileInput makes the
// first source read the input-file log (a node run with --input).
func RunBackfillOffline(ctx context.Context, db *storage.DB, c *pipeline.Compiled, from, to time.Time, partial, fileInput bool,
	out func(sink string, data []byte) error) (OfflineBackfill, error) {
	var res OfflineBackfill
	spec := *c.Spec
	spec.Metadata.Name = c.Plan.Name() + "@batch"
	c2, err := pipeline.Compile(&spec)
	if err != nil {
		return res, err
	}
	_, all, err := pipeSources(c.Plan.Name(), c2, fileInput)
	if err != nil {
		return res, err
	}
	var srcs []runner.Source
	var logs []string
	for _, s := range all {
		if !strings.HasPrefix(s.Log, "replay/") {
			srcs = append(srcs, s)
			if !slices.Contains(logs, s.Log) {
				logs = append(logs, s.Log)
			}
		}
	}
	f, t := runner.AlignPeriod(from.UnixMilli(), to.UnixMilli(), max(c.Interval.Milliseconds(), 1))
	res.From, res.To = time.UnixMilli(f).UTC(), time.UnixMilli(t).UTC()
	if res.Missing, err = logGapsIn(db, nil, logs, f, t); err != nil {
		return res, err
	}
	if len(res.Missing) > 0 && !partial {
		return res, &GapError{Gaps: res.Missing}
	}
	start := map[string]uint64{}
	for _, lg := range logs {
		if start[lg], _, err = db.LogOffsetAt(lg, f); err != nil {
			return res, err
		}
	}
	sinks := map[string]string{}
	for _, sk := range c2.Plan.Sinks() {
		sinks[runner.SpoolName(spec.Metadata.Name, sk)] = sk
	}
	store := runner.NewOutputStore(func(o engine.Output) error { return out(sinks[o.Sink], o.Data) })
	b, err := runner.NewBackfill(runner.Config{Compiled: c2, Sources: srcs, Log: dbLog{db}, Store: store,
		Encode: decode.AppendJSON}, f, t, start, 1)
	if err != nil {
		return res, err
	}
	err = b.Run(ctx)
	pos := b.Runner().Status().Position
	for lg, s := range start {
		if p := pos[lg]; p > s {
			res.Entries += p - s
		}
	}
	return res, err
}

// backfillFloor lowers the truncation points in low to the positions of
// running backfills, so no entry a backfill has still to read is dropped.
func (n *Node) backfillFloor(low map[string]uint64) {
	n.bf.mu.Lock()
	runs := make([]*backfillRun, 0, len(n.bf.runs))
	for _, r := range n.bf.runs {
		runs = append(runs, r)
	}
	n.bf.mu.Unlock()
	for _, r := range runs {
		if r.b == nil || r.snapshot().State != BackfillRunning {
			continue
		}
		for lg, pos := range r.b.Runner().Status().Position {
			if v, ok := low[lg]; ok && pos < v {
				low[lg] = pos
			}
		}
	}
}

// retention returns how long and how many bytes of each input log are
// kept under a disk budget of quota bytes (0: none).
func (n *Node) retention(quota int64) (time.Duration, int64) {
	keep := n.cfg.InputLog.Retain
	if keep == 0 {
		keep = 24 * time.Hour
	}
	bytes := n.cfg.InputLog.RetainBytes
	if bytes == 0 {
		bytes = 256 << 20
		if quota > 0 {
			bytes = min(bytes, quota/10)
		}
	}
	return keep, bytes
}

// truncateRetained truncates log lg before pos (what every pipeline and
// backfill has consumed), keeping the retained input (inputLog). While
// input is back-pressured at the disk budget, retention yields: the oldest
// quarter of the retained bytes goes each time, counted and logged.
func (n *Node) truncateRetained(lg string, pos uint64) error {
	st, err := n.db.Stats()
	if err != nil {
		return err
	}
	keep, maxBytes := n.retention(st.QuotaBytes)
	if strings.HasPrefix(lg, "replay/") || keep < 0 {
		return n.db.TruncateLog(context.Background(), lg, pos)
	}
	ls := st.Log[lg]
	squeeze := n.backpressure.Load()
	limit := uint64(maxBytes)
	if squeeze {
		limit = min(limit, ls.Bytes*3/4)
	}
	since := time.Now().Add(-keep).UnixMilli()
	remaining := ls.Bytes
	var horizon int64
	var cut, squeezed uint64
	err = n.db.LogFrames(lg, func(f storage.LogFrame) bool {
		end := f.First + f.Records
		if end > pos {
			return false // a pipeline or backfill has still to read it
		}
		old := f.Appended < since || remaining > uint64(maxBytes)
		if !old && remaining <= limit {
			return false
		}
		if !old {
			squeezed += f.Records
		}
		remaining -= uint64(f.Bytes)
		horizon = max(horizon, f.Appended)
		cut = end
		return true
	})
	if err != nil || cut == 0 {
		return err
	}
	if squeezed > 0 {
		n.bf.retainDropped.Add(squeezed)
		n.log.Warn("disk budget reached: dropped the oldest retained input (inputLog)", "log", lg, "entries", squeezed,
			"through", time.UnixMilli(horizon).UTC())
	}
	if err := n.db.TruncateLog(context.Background(), lg, cut); err != nil {
		return err
	}
	n.bf.mu.Lock()
	if n.bf.horizon == nil {
		n.bf.horizon = map[string]int64{}
	}
	n.bf.horizon[lg] = max(n.bf.horizon[lg], horizon)
	n.bf.mu.Unlock()
	return nil
}

// handleBackfill is POST /api/v1/pipelines/{name}/backfill?from=T1&to=T2
// [&partial=true][&cpu=SHARE], with an optional pipeline document (a new
// version) as the body. It answers 202 with the backfill's status, 400 for
// a bad request, 404 for an unknown pipeline without a document, and 422
// with the missing periods when the log no longer holds the period.
func (n *Node) handleBackfill(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	var o BackfillOptions
	var errs []error
	for _, f := range []struct {
		key string
		t   *time.Time
	}{{"from", &o.From}, {"to", &o.To}} {
		v := q.Get(f.key)
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: want an RFC 3339 time such as 2026-12-06T10:00:00Z, got %q", f.key, v))
		}
		*f.t = t
	}
	if v := q.Get("partial"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("partial: want true or false, got %q", v))
		}
		o.Partial = b
	}
	if v := q.Get("cpu"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			errs = append(errs, fmt.Errorf("cpu: want a share of one core in (0, 1], got %q", v))
		}
		o.CPUShare = f
	}
	if err := errors.Join(errs...); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
	if err != nil || len(raw) > maxSpecBytes {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body: want a pipeline document of at most %d bytes", maxSpecBytes))
		return
	}
	o.Spec = raw
	info, err := n.StartBackfill(name, o)
	var ae *ApplyError
	var ge *GapError
	switch {
	case errors.As(err, &ae):
		writeErr(w, http.StatusBadRequest, ae.Err)
	case errors.As(err, &ge):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": ge.Error(), "missing": ge.Gaps})
	case errors.Is(err, errNoPipeline):
		writeErr(w, http.StatusNotFound, err)
	case errors.Is(err, ErrNotReady):
		writeErr(w, http.StatusServiceUnavailable, err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusAccepted, info)
	}
}

// handleBackfills is GET /api/v1/pipelines/{name}/backfill: the pipeline's
// backfills, newest first.
func (n *Node) handleBackfills(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"backfills": n.Backfills(r.PathValue("name"))})
}

// handleBackfillGet is GET and DELETE (cancel) of
// /api/v1/pipelines/{name}/backfill/{id}.
func (n *Node) handleBackfillGet(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("name"), r.PathValue("id")
	var info BackfillInfo
	ok := false
	if r.Method == http.MethodDelete {
		info, ok = n.CancelBackfill(name, id)
	} else if run := n.backfillRun(name, id); run != nil {
		info, ok = run.snapshot(), true
	}
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Errorf("pipeline %q has no backfill %q", name, id))
		return
	}
	writeJSON(w, http.StatusOK, info)
}
