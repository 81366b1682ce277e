package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
	"github.com/klauspost/compress/zstd"
)

// The state hand-over: when the mesh makes this node a holder (owner or
// standby) of a partition whose state on this node is not current, and
// another live member holds it, the runner holds it as a standby (its own
// state, no output) until the partition's committed state was fetched from
// that member (GET /api/v1/mesh/snapshot/PIPELINE/PARTITION) and installed
// into this node's storage, state and checkpoint in one transaction,
// between two of its epochs. Its runner then restores the partition from
// that checkpoint (runner.Boundary.Reload), follows the claim, and the
// input from there. If no holder serves the state, the standby's own state
// has all of this node's input: nothing consumed meanwhile is missing.
//
// A partition's state here is current when the runner has held it since
// it was installed from a peer, or since it was claimed while no other
// member held it, or (on a node that was in the mesh before this version)
// since the node started: then it has consumed all this node's input, and
// a restart replays this node's own log (the broker redelivers what came
// while it was down). The set is kept in mesh-current.json, so a
// restarted node fetches the partitions it did not hold when it stopped
// (their state here is stale) and keeps the others. A node new to the
// mesh has none: it fetches every partition another member holds.
//
// Input positions are per node: both nodes log the same broker stream, at
// other offsets and not always in the same order. handover_ids.go maps
// the holder's position into this node's log by entry identity; the
// partition is fed only the entries the installed state does not have
// (runner.SkipRanges). The fetch runs between two of the receiver's
// epochs, which wait meanwhile, so that the holder (which keeps
// processing) gets past the receiver's position; if it cannot within
// handoverWait (or no holder answers), the next round tries again, and
// after handoverGiveUp the partition is taken with this node's own state,
// as without the hand-over, and a warning says so.

// handoverWait bounds how long a pipeline's epochs wait for a peer's
// snapshot that covers this node's position.
const handoverWait = 3 * time.Second

// handoverGiveUp is how long a partition waits for a holder that answers
// before it is taken with this node's own state.
const handoverGiveUp = 15 * time.Second

// currentFile keeps, per pipeline, the partitions whose state on this node
// is current (see above).
const currentFile = "mesh-current.json"

// handoverDisabled turns the fetch off (tests check what it protects).
var handoverDisabled = false

// handover tracks, per pipeline, the partitions this node claims, those
// whose state is current and those still waiting for their state.
type handover struct {
	n  *Node
	mu sync.Mutex
	// by pipeline: partitions last claimed (shown or pending), and pending
	// ones with since when
	claimed map[string]map[int]bool
	pending map[string]map[int]time.Time
	running map[string]bool
	terms   map[string]map[int]uint64 // by pipeline: the terms of the partitions it emits, from the last Claims
	enabled bool                      // mesh.fetchState
	current map[string]map[int]bool   // by pipeline: partitions whose state here is current (currentFile)
	legacy  bool                      // no currentFile but the node was in the mesh: its first claims are current
	// bound holds, by pipeline, the boundary of a runner paused by this
	// node's own fetch round: snapshots are served at it (two nodes that
	// fetch from each other would otherwise wait for each other).
	bmu   sync.RWMutex
	bound map[string]*runner.Boundary
	// installed counts the state rows installed and the time the runner
	// pauses took (the hand-over rate).
	installed int
	took      time.Duration
	fetched   map[string]map[int]int // by pipeline and partition: installs

	wg sync.WaitGroup // fetch rounds: the node waits for them when it stops

	idMu  sync.Mutex // the last identities served (identities)
	idKey string
	idVal []byte
}

// handoverOwner is the runners' Ownership with a mesh: the mesh's claims,
// minus the partitions whose state is being fetched.
type handoverOwner struct {
	meshOwnership
	h *handover
}

// EmittedThrough is asked by the runner when it starts emitting a
// partition (promotion, a new term): once the mesh knows where this node's
// windows start, its uplinks record their claims at once rather than at
// their first upload, so that during a network partition the other side
// fences its uploads sooner (uplink.Uploader.ClaimNow).
func (o handoverOwner) EmittedThrough(pipeline string, partition int) (int64, bool) {
	wm, ok := o.meshOwnership.EmittedThrough(pipeline, partition)
	o.h.mu.Lock()
	term := o.h.terms[pipeline][partition]
	o.h.mu.Unlock()
	if term > 0 && o.h.n != nil {
		go o.h.n.claimNow(pipeline, partition, term)
	}
	return wm, ok
}

// claimNow records this node's claim on a partition in every uplink of the
// pipeline.
func (n *Node) claimNow(pipeline string, partition int, term uint64) {
	n.mu.RLock()
	var us []*upSink
	for _, s := range n.uploaders {
		if s.pipeline == pipeline {
			us = append(us, s)
		}
	}
	n.mu.RUnlock()
	for _, s := range us {
		ctx, cancel := context.WithTimeout(n.upCtx, 10*time.Second)
		if err := s.u.ClaimNow(ctx, pipeline, partition, term); err != nil {
			n.log.Warn("uplink: record the claim on a partition this node started emitting (it is recorded at the first upload)",
				"pipeline", pipeline, "sink", s.sink, "partition", partition, "term", term, "err", err)
		}
		cancel()
	}
}

func (o handoverOwner) Claims(pipeline string, np int) []runner.Claim {
	cs := o.meshOwnership.Claims(pipeline, np)
	o.h.noteTerms(pipeline, cs)
	if ready, _ := o.m.Ready(); !ready || handoverDisabled || !o.h.enabled {
		return cs
	}
	return o.h.filter(pipeline, cs)
}

// noteTerms keeps the terms of the partitions this node emits.
func (h *handover) noteTerms(pipeline string, cs []runner.Claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.terms == nil {
		h.terms = map[string]map[int]uint64{}
	}
	t := map[int]uint64{}
	for _, c := range cs {
		if c.Emit {
			t[c.Partition] = c.Term
		}
	}
	h.terms[pipeline] = t
}

// filter holds the partitions waiting for their state as standbys and
// starts fetching those claimed whose state here is not current and that
// another live member holds.
func (h *handover) filter(pipeline string, cs []runner.Claim) []runner.Claim {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimed == nil {
		h.claimed, h.pending, h.running = map[string]map[int]bool{}, map[string]map[int]time.Time{}, map[string]bool{}
	}
	if h.current == nil {
		h.current = map[string]map[int]bool{}
	}
	_, seen := h.claimed[pipeline]
	cur := h.current[pipeline]
	if cur == nil {
		cur = map[int]bool{}
		h.current[pipeline] = cur
	}
	changed := false
	if !seen && h.legacy {
		// A member from before mesh-current.json: its state is its own,
		// as it always was.
		for _, c := range cs {
			cur[c.Partition], changed = true, true
		}
	}
	_, alone := h.n.mesh.Ready()
	provisional := alone && len(h.n.cfg.Mesh.Join) > 0 && len(h.n.mesh.Members()) < 2
	now := map[int]bool{}
	pend := h.pending[pipeline]
	out := cs[:0]
	var others map[int]bool
	for _, c := range cs {
		now[c.Partition] = true
		if _, waiting := pend[c.Partition]; waiting {
			// Held as a standby meanwhile: if no holder serves its state,
			// this node's own has all its input.
			out = append(out, runner.Claim{Partition: c.Partition, Term: c.Term})
			continue
		}
		if cur[c.Partition] {
			out = append(out, c)
			continue
		}
		if others == nil {
			others = h.heldElsewhere(pipeline)
		}
		if !others[c.Partition] {
			// No one else has it: this node's state is the partition's,
			// unless this node runs alone only because its seeds are not
			// reachable yet: when it meets them, their state is taken.
			if !provisional {
				cur[c.Partition], changed = true, true
			}
			out = append(out, c)
			continue
		}
		if pend == nil {
			pend = map[int]time.Time{}
			h.pending[pipeline] = pend
		}
		pend[c.Partition] = time.Now()
		out = append(out, runner.Claim{Partition: c.Partition, Term: c.Term})
	}
	for p := range pend {
		if !now[p] {
			delete(pend, p)
		}
	}
	for p := range cur {
		if !now[p] {
			delete(cur, p) // dropped: its state here goes stale
			changed = true
		}
	}
	h.claimed[pipeline] = now
	if changed {
		h.saveCurrent()
	}
	if len(pend) > 0 && !h.running[pipeline] && h.n.runCtx.Err() == nil {
		h.running[pipeline] = true
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.fetchAll(pipeline)
		}()
	}
	return out
}

// loadCurrent reads currentFile when the node joins the mesh; inMesh says
// the node was in the mesh before (its terms file exists).
func (h *handover) loadCurrent(dir string, inMesh bool) error {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		h.legacy = inMesh
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string][]int
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, currentFile), err)
	}
	h.current = map[string]map[int]bool{}
	for pl, ps := range m {
		h.current[pl] = map[int]bool{}
		for _, p := range ps {
			h.current[pl][p] = true
		}
	}
	return nil
}

// saveCurrent writes currentFile (h.mu held). A write that fails is
// logged: after a restart, partitions may then be fetched again, or kept
// with this node's state as before this file existed.
func (h *handover) saveCurrent() {
	if h.n.runCtx != nil && h.n.runCtx.Err() != nil {
		return // stopping: the file says what it said at the last change
	}
	m := map[string][]int{}
	for pl, ps := range h.current {
		l := []int{}
		for p := range ps {
			l = append(l, p)
		}
		slices.Sort(l)
		m[pl] = l
	}
	b, _ := json.Marshal(m)
	dir := h.n.cfg.DataDir
	if err := writeFileAtomic(filepath.Join(dir, currentFile), b); err != nil {
		h.n.log.Warn("mesh hand-over: record which partitions' state is current", "err", err)
	}
}

// serves reports whether this node's state of a partition may be handed
// to a peer: it is current here (with the fetch on; held, checked by the
// caller, is enough with it off).
func (h *handover) serves(pipeline string, partition int) bool {
	if !h.enabled || handoverDisabled {
		return true
	}
	if ready, _ := h.n.mesh.Ready(); !ready {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current[pipeline][partition]
}

// heldElsewhere returns the partitions of pipeline that another live member
// holds (owner or standby), from the mesh's table.
func (h *handover) heldElsewhere(pipeline string) map[int]bool {
	self := h.n.mesh.Name()
	out := map[int]bool{}
	for _, t := range h.n.mesh.Table() {
		if t.Pipeline != pipeline {
			continue
		}
		if t.Owner != self && t.Owner != "" {
			out[t.Partition] = true
		}
		for _, s := range t.Standbys {
			if s != self {
				out[t.Partition] = true
			}
		}
	}
	return out
}

// holders returns the API addresses of the other live members that hold a
// partition, the owner first.
func (h *handover) holders(pipeline string, partition int) []string {
	self := h.n.mesh.Name()
	api := map[string]string{}
	for _, m := range h.n.mesh.Members() {
		api[m.Name] = m.API
	}
	var out []string
	for _, t := range h.n.mesh.Table() {
		if t.Pipeline != pipeline || t.Partition != partition {
			continue
		}
		for _, name := range append([]string{t.Owner}, t.Standbys...) {
			if name != self && api[name] != "" && !slices.Contains(out, api[name]) {
				out = append(out, api[name])
			}
		}
	}
	return out
}

// fetchAll installs the pending partitions of a pipeline, one runner pause
// per round, until none is pending.
func (h *handover) fetchAll(pipeline string) {
	defer func() {
		h.mu.Lock()
		h.running[pipeline] = false
		h.mu.Unlock()
	}()
	log := h.n.log.With("pipeline", pipeline)
	first := true
	for {
		h.mu.Lock()
		var parts []int
		for p, since := range h.pending[pipeline] {
			if time.Since(since) > handoverGiveUp {
				log.Warn("mesh hand-over: no holder served the partition's state; taking it with this node's own", "partition", p)
				delete(h.pending[pipeline], p)
				h.current[pipeline][p] = true
				continue
			}
			parts = append(parts, p)
		}
		h.mu.Unlock()
		if len(parts) == 0 {
			return
		}
		slices.Sort(parts)
		pp := h.n.pipeByName(pipeline)
		if pp == nil || pp.r == nil || h.n.runCtx.Err() != nil {
			if h.n.runCtx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if first {
			// Let the runner run two epochs after the claims that started
			// this first: a standby promoted with them emits what the
			// dead owner had not (the takeover) before this round's
			// pause, not after it.
			first = false
			lt := pp.r.Status().LastTime + pp.r.Interval().Milliseconds()
			for end := time.Now().Add(3 * pp.r.Interval()); pp.r.Status().LastTime <= lt && time.Now().Before(end) && h.n.runCtx.Err() == nil; {
				time.Sleep(10 * time.Millisecond)
			}
		}
		start := time.Now()
		rows := 0
		done := map[int]bool{}
		got := map[int]bool{} // installed
		var behind error
		var waits struct{ behind, inFlight, other int } // retries, by reason
		err := pp.r.Between(func(b runner.Boundary) error {
			h.setBound(pipeline, &b)
			defer h.setBound(pipeline, nil)
			deadline := time.Now().Add(handoverWait)
			ctx, cancel := context.WithDeadline(h.n.runCtx, deadline)
			defer cancel()
			cache := map[string]*idMatch{}
			base := pp.r.Status().LastTime // the holder's snapshot must be of an epoch at least as late
			after := base
			for len(done) < len(parts) && time.Now().Before(deadline) {
				for _, p := range parts {
					if done[p] {
						continue
					}
					k, ok, err := h.fetchInstall(ctx, pipeline, p, b, after, deadline.Add(-handoverWait/2), cache)
					if errors.Is(err, errNotCovered) && after > 0 {
						// Entries around the epoch boundary reached the
						// holder after its cut: its next epoch has them.
						after = max(after, base+pp.r.Interval().Milliseconds())
					}
					switch {
					case errors.Is(err, errBehind):
						// Let the runner catch up first.
						behind = err
						return nil
					case errors.Is(err, errNoneHolds):
						// No peer has the partition's state (they are all
						// starting, or unreachable): as without a hand-over.
						log.Info("mesh hand-over: no peer has the partition's state; taking it with this node's own", "partition", p, "err", err)
						done[p] = true
						continue
					case err != nil:
						switch {
						case errors.Is(err, errNotCovered):
							waits.behind++
						case errors.Is(err, errInFlight):
							waits.inFlight++
						default:
							waits.other++
						}
						log.Debug("mesh hand-over: fetch", "partition", p, "err", err)
					}
					if ok {
						done[p] = true
						got[p] = true
						rows += k
					}
				}
				if len(done) < len(parts) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			return nil
		})
		if err != nil {
			log.Warn("mesh hand-over", "err", err)
		}
		el := time.Since(start)
		h.mu.Lock()
		for p := range done {
			delete(h.pending[pipeline], p)
			h.current[pipeline][p] = true
		}
		if len(done) > 0 {
			h.saveCurrent()
		}
		if h.fetched == nil {
			h.fetched = map[string]map[int]int{}
		}
		for p := range got {
			if h.fetched[pipeline] == nil {
				h.fetched[pipeline] = map[int]int{}
			}
			h.fetched[pipeline][p]++
		}
		h.installed += rows
		h.took += el
		h.mu.Unlock()
		if len(got) > 0 {
			log.Info("mesh hand-over: installed partitions' state from their holders", "partitions", len(got), "rows", rows,
				"took", el.Round(time.Millisecond), "rows_per_s", int(float64(rows)/max(el.Seconds(), 1e-6)),
				"retries_holder_behind", waits.behind, "retries_in_flight", waits.inFlight, "retries_other", waits.other)
		}
		if behind != nil {
			log.Debug("mesh hand-over: waiting for the pipeline to catch up", "err", behind)
		}
		if len(done) < len(parts) {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// paused reports whether a fetch round of this node pauses the pipeline's
// runner (its epochs do not advance until the round ends).
func (h *handover) paused(pipeline string) bool {
	h.bmu.RLock()
	defer h.bmu.RUnlock()
	return h.bound[pipeline] != nil
}

// setBound records the boundary of a runner paused by a fetch round (nil:
// it runs again); it waits for snapshots being opened at the previous one.
func (h *handover) setBound(pipeline string, b *runner.Boundary) {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.bound == nil {
		h.bound = map[string]*runner.Boundary{}
	}
	h.bound[pipeline] = b
}

// errNotCovered says a holder's snapshot does not cover this node's input
// position yet: the holder has not consumed entries this node has.
var errNotCovered = errors.New("the holder's snapshot does not cover this node's input position yet")

// errNoneHolds says no other holder served a snapshot of the partition.
var errNoneHolds = errors.New("no other holder serves the partition's state")

// fetchInstall fetches one partition's snapshot from a holder and installs
// it if it covers pos. It returns the rows installed and whether it did.
//
// The holder is asked for a snapshot of an epoch at or after after (this
// node's last epoch time), and the entries it consumed that this node's
// log lacks are waited for until lenientAt.
func (h *handover) fetchInstall(ctx context.Context, pipeline string, partition int, b runner.Boundary, after int64, lenientAt time.Time, cache map[string]*idMatch) (int, bool, error) {
	var errs []error
	served := false
	for _, addr := range h.holders(pipeline, partition) {
		snap, err := h.fetch(ctx, addr, pipeline, partition, after)
		var se statusError
		if errors.As(err, &se) && se.code == http.StatusServiceUnavailable || errors.Is(err, context.DeadlineExceeded) {
			served = true // busy or slow: ask again (handoverGiveUp bounds it)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		served = true
		ids, rest, err := decodeIDs(snap.Extra)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		skips, err := h.mapIDs(addr, ids, b.Pos, !time.Now().Before(lenientAt), cache)
		for errors.Is(err, errInFlight) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond) // this node's log grows meanwhile
			skips, err = h.mapIDs(addr, ids, b.Pos, !time.Now().Before(lenientAt), cache)
		}
		if errors.Is(err, errBehind) {
			return 0, false, err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		held, err := decodeHeld(rest)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		cp := engine.Checkpoint{Epoch: snap.Checkpoint.Epoch, Watermark: snap.Checkpoint.Watermark, Input: map[string]uint64{}}
		for k, v := range snap.Checkpoint.Input {
			if !strings.HasPrefix(k, "@") { // the holder's own skips are of its log
				cp.Input[k] = v
			}
		}
		for lg, offs := range skips {
			maps.Copy(cp.Input, runner.SkipRanges(lg, offs))
		}
		if err := h.n.db.InstallPartition(h.n.runCtx, pipeline, partition, snap.Rows, cp); err != nil {
			return 0, false, err
		}
		b.Adopt(partition, held)
		b.Reload(partition)
		h.n.log.Debug("mesh hand-over: installed", "pipeline", pipeline, "partition", partition, "from", addr, "rows", len(snap.Rows),
			"holder_epoch", snap.Checkpoint.Epoch, "skips", len(cp.Input)-len(snap.Checkpoint.Input), "pos", b.Pos)
		return len(snap.Rows), true, nil
	}
	if !served {
		errs = append(errs, errNoneHolds)
	}
	return 0, false, errors.Join(errs...)
}

// statusError is a holder's answer other than 200.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return e.msg }

// fetch GETs a partition's snapshot from a peer's API.
func (h *handover) fetch(ctx context.Context, addr, pipeline string, partition int, after int64) (*storage.PartitionSnapshot, error) {
	u := "http://" + addr + "/api/v1/mesh/snapshot/" + pipeline + "/" + strconv.Itoa(partition) + "?after=" + strconv.FormatInt(after, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if tok := h.n.cfg.API.Token; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, statusError{resp.StatusCode, fmt.Sprintf("%s: %s", resp.Status, b)}
	}
	zr, err := zstd.NewReader(resp.Body, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return storage.ReadPartition(zr)
}

// handleSnapshot serves one partition's committed state, as of the end of
// the pipeline's last epoch, zstd-compressed (storage.WritePartition), with
// the anchors of its input position. 409 when this node does not hold the
// partition (its state would be stale).
func (n *Node) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("pipeline")
	part, err := strconv.Atoi(r.PathValue("partition"))
	p := n.pipeByName(name)
	if p == nil || p.r == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("pipeline %q is not running here", name))
		return
	}
	if err != nil || part < 0 || part >= p.r.Partitions() {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("partition %q: want 0 to %d", r.PathValue("partition"), p.r.Partitions()-1))
		return
	}
	// ?after=T: the peer's last epoch ran at T; a snapshot of an earlier
	// epoch would not cover its position, so wait (a little) for ours.
	if after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64); after > 0 {
		wait := time.NewTimer(handoverWait / 2)
		defer wait.Stop()
		for p.r.Status().LastTime < after && !n.ho.paused(name) {
			select {
			case <-r.Context().Done():
				return
			case <-wait.C:
				writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("pipeline %q has not run its epoch at %d yet", name, after))
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	// The read transaction opens between two epochs, while the runner
	// holds the partition: it sees the state of the last epoch. The epochs
	// go on while it streams.
	txOpen := make(chan struct{})
	served := make(chan struct{})
	held := false
	at := func(b runner.Boundary) {
		if held = b.Held(part) && n.ho.serves(name, part); !held {
			return
		}
		outs := b.HeldOutputs(part)
		extra := func(cp engine.Checkpoint) []byte { return appendHeld(n.identities(cp), outs) }
		go func() {
			defer close(served)
			err := n.db.View(func(s *storage.Snapshot) error {
				close(txOpen)
				w.Header().Set("Content-Type", "application/zstd")
				zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
				if err != nil {
					return err
				}
				if _, err := s.WritePartition(zw, name, part, extra); err != nil {
					zw.Close()
					return err
				}
				return zw.Close()
			})
			if err != nil {
				n.log.Debug("mesh hand-over: serve snapshot", "pipeline", name, "partition", part, "err", err)
			}
		}()
		select {
		case <-txOpen:
		case <-served:
		}
	}
	// At the runner's next boundary, or at the pause of this node's own
	// fetch round if one starts meanwhile: waiting for the boundary alone,
	// two nodes fetching from each other would each wait for the other's
	// round to end.
	var once atomic.Bool
	opened := make(chan struct{})
	go p.r.Between(func(b runner.Boundary) error {
		if once.CompareAndSwap(false, true) {
			at(b)
			close(opened)
		}
		return nil
	})
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for wait := true; wait; {
		select {
		case <-opened:
			wait = false
		case <-r.Context().Done():
			if once.CompareAndSwap(false, true) {
				return
			}
		case <-tick.C:
			n.ho.bmu.RLock()
			if b := n.ho.bound[name]; b != nil && once.CompareAndSwap(false, true) {
				at(*b) // the runner waits for this node's own fetch round
				close(opened)
			}
			n.ho.bmu.RUnlock()
		}
	}
	if !held {
		writeErr(w, http.StatusConflict, fmt.Errorf("pipeline %q partition %d is not held by this node with current state", name, part))
		return
	}
	<-served
}

// appendHeld appends a standby's held outputs to b: a count, then each
// one's watermarks, sink, id and data.
func appendHeld(b []byte, outs []runner.HeldOutput) []byte {
	b = binary.AppendUvarint(b, uint64(len(outs)))
	for _, h := range outs {
		b = binary.BigEndian.AppendUint64(b, uint64(h.From))
		b = binary.BigEndian.AppendUint64(b, uint64(h.To))
		for _, f := range []string{h.Out.Sink, h.Out.ID} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
		b = binary.AppendUvarint(b, uint64(len(h.Out.Data)))
		b = append(b, h.Out.Data...)
	}
	return b
}

// decodeHeld reads what appendHeld wrote.
func decodeHeld(b []byte) ([]runner.HeldOutput, error) {
	bad := errors.New("malformed held outputs in the snapshot")
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, bad
	}
	b = b[k:]
	out := make([]runner.HeldOutput, 0, n)
	field := func() ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, false
		}
		f := b[k : k+int(l)]
		b = b[k+int(l):]
		return f, true
	}
	for range n {
		if len(b) < 16 {
			return nil, bad
		}
		h := runner.HeldOutput{From: int64(binary.BigEndian.Uint64(b)), To: int64(binary.BigEndian.Uint64(b[8:]))}
		b = b[16:]
		sink, ok1 := field()
		id, ok2 := field()
		data, ok3 := field()
		if !ok1 || !ok2 || !ok3 {
			return nil, bad
		}
		h.Out = engine.Output{Sink: string(sink), ID: string(id), Data: slices.Clone(data)}
		out = append(out, h)
	}
	return out, nil
}
