package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
	"github.com/klauspost/compress/zstd"
)

// The state hand-over on join: when the mesh makes this node a new holder
// (owner or standby) of a partition that another live member holds, the
// runner does not see the claim until the partition's committed state was
// fetched from that member (GET /api/v1/mesh/snapshot/PIPELINE/PARTITION)
// and installed into this node's storage, state and checkpoint in one
// transaction, between two of its epochs. Its runner then restores the
// partition from that checkpoint and follows the input from there.
//
// Input positions are per node: both nodes log the same broker stream, but
// at other offsets. The snapshot carries anchors: a hash of each of the
// last input entries the sender's pipeline consumed and of the next ones it
// has not. The receiver finds the latest consumed anchor (or the first
// unconsumed one) in its own log; the partition is fed records only from
// the entry after it (runner.SkipKey), the entries before being in the
// installed state. This assumes both logs hold the broker's stream in the
// same order (one broker, both nodes subscribed). The fetch runs between
// two of the receiver's epochs, which wait meanwhile, so that the sender
// (which keeps processing) gets past the receiver's position; if it cannot
// within handoverWait (or the holder does not answer), the partition is
// taken with this node's own state, as without the hand-over, and a
// warning says so.

// handoverWait bounds how long a pipeline's epochs wait for a peer's
// snapshot that covers this node's position.
const handoverWait = 3 * time.Second

// handoverGiveUp is how long a partition waits for a holder that answers
// before it is taken with this node's own state.
const handoverGiveUp = 15 * time.Second

// anchorsPerSide is how many input entries on each side of the sender's
// position the snapshot identifies.
const anchorsPerSide = 32

// handoverDisabled turns the fetch off (tests check what it protects).
var handoverDisabled = false

// handover tracks, per pipeline, the partitions this node claims and those
// still waiting for their state.
type handover struct {
	n  *Node
	mu sync.Mutex
	// by pipeline: partitions last claimed (shown or pending), and pending
	// ones with since when
	claimed map[string]map[int]bool
	pending map[string]map[int]time.Time
	running map[string]bool
	terms   map[string]map[int]uint64 // by pipeline: the terms of the partitions it emits, from the last Claims
	fresh   bool                      // this node had never been in the mesh when it started (startMesh): only then does it fetch
	paused  map[string]bool           // the pipeline's runner waits for a fetch: it serves no snapshot (two nodes fetching from each other would wait for each other)
	// installed counts the state rows installed and the time the runner
	// pauses took (the hand-over rate).
	installed int
	took      time.Duration
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
	if ready, _ := o.m.Ready(); !ready || handoverDisabled || !o.h.fresh {
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

// filter hides the partitions waiting for their state and starts fetching
// those newly claimed that another live member holds.
func (h *handover) filter(pipeline string, cs []runner.Claim) []runner.Claim {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimed == nil {
		h.claimed, h.pending, h.running, h.paused = map[string]map[int]bool{}, map[string]map[int]time.Time{}, map[string]bool{}, map[string]bool{}
	}
	_, seen := h.claimed[pipeline]
	now := map[int]bool{}
	pend := h.pending[pipeline]
	out := cs[:0]
	var others map[int]bool
	for _, c := range cs {
		now[c.Partition] = true
		if _, waiting := pend[c.Partition]; waiting {
			continue
		}
		if seen {
			// Only the partitions of the node's join are fetched: later
			// changes keep the runner's own state (as a restarted node
			// does), see the README.
			out = append(out, c)
			continue
		}
		if others == nil {
			others = h.heldElsewhere(pipeline)
		}
		if !others[c.Partition] {
			out = append(out, c)
			continue
		}
		if pend == nil {
			pend = map[int]time.Time{}
			h.pending[pipeline] = pend
		}
		pend[c.Partition] = time.Now()
	}
	for p := range pend {
		if !now[p] {
			delete(pend, p)
		}
	}
	h.claimed[pipeline] = now
	if len(pend) > 0 && !h.running[pipeline] {
		h.running[pipeline] = true
		go h.fetchAll(pipeline)
	}
	return out
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
	for {
		h.mu.Lock()
		var parts []int
		for p, since := range h.pending[pipeline] {
			if time.Since(since) > handoverGiveUp {
				log.Warn("mesh hand-over: no holder served the partition's state; taking it with this node's own", "partition", p)
				delete(h.pending[pipeline], p)
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
		start := time.Now()
		keys := 0
		done := map[int]bool{}
		err := pp.r.Between(func(b runner.Boundary) error {
			h.setPaused(pipeline, true)
			defer h.setPaused(pipeline, false)
			deadline := time.Now().Add(handoverWait)
			ctx, cancel := context.WithDeadline(h.n.runCtx, deadline)
			defer cancel()
			for len(done) < len(parts) && time.Now().Before(deadline) {
				for _, p := range parts {
					if done[p] {
						continue
					}
					k, ok, err := h.fetchInstall(ctx, pipeline, p, b, time.Until(deadline) < handoverWait/2)
					if errors.Is(err, errNoneHolds) {
						// No peer has the partition's state (they are all
						// starting, or unreachable): as without a hand-over.
						log.Info("mesh hand-over: no peer has the partition's state; taking it with this node's own", "partition", p, "err", err)
						done[p] = true
						continue
					}
					if err != nil {
						log.Debug("mesh hand-over: fetch", "partition", p, "err", err)
					}
					if ok {
						done[p] = true
						keys += k
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
		h.mu.Lock()
		for p := range done {
			delete(h.pending[pipeline], p)
		}
		h.installed += keys
		h.took += time.Since(start)
		h.mu.Unlock()
		if len(done) > 0 {
			el := time.Since(start)
			log.Info("mesh hand-over: installed partitions' state from their holders", "partitions", len(done), "keys", keys,
				"took", el.Round(time.Millisecond), "keys_per_s", int(float64(keys)/max(el.Seconds(), 1e-6)))
		}
		if len(done) < len(parts) {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// setPaused records whether a pipeline's runner waits for a fetch.
func (h *handover) setPaused(pipeline string, on bool) {
	h.mu.Lock()
	h.paused[pipeline] = on
	h.mu.Unlock()
}

// isPaused reports whether a pipeline's runner waits for a fetch.
func (h *handover) isPaused(pipeline string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.paused[pipeline]
}

// errNotCovered says a holder's snapshot does not yet cover this node's
// input position (or its anchors are not yet in this node's log).
var errNotCovered = errors.New("the holder's snapshot does not cover this node's input position yet")

// errNoneHolds says no other holder served a snapshot of the partition.
var errNoneHolds = errors.New("no other holder serves the partition's state")

// fetchInstall fetches one partition's snapshot from a holder and installs
// it if it covers pos. It returns the rows installed and whether it did.
func (h *handover) fetchInstall(ctx context.Context, pipeline string, partition int, b runner.Boundary, lenient bool) (int, bool, error) {
	var errs []error
	served := false
	for _, addr := range h.holders(pipeline, partition) {
		snap, err := h.fetch(ctx, addr, pipeline, partition)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		served = true
		skips, rest, err := h.mapAnchors(snap.Extra, b.Pos, lenient)
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
			cp.Input[k] = v
		}
		for lg, off := range skips {
			cp.Input[runner.SkipKey(lg)] = off
		}
		if err := h.n.db.InstallPartition(h.n.runCtx, pipeline, partition, snap.Rows, cp); err != nil {
			return 0, false, err
		}
		b.Adopt(partition, held)
		return len(snap.Rows), true, nil
	}
	if !served {
		errs = append(errs, errNoneHolds)
	}
	return 0, false, errors.Join(errs...)
}

// fetch GETs a partition's snapshot from a peer's API.
func (h *handover) fetch(ctx context.Context, addr, pipeline string, partition int) (*storage.PartitionSnapshot, error) {
	u := "http://" + addr + "/api/v1/mesh/snapshot/" + pipeline + "/" + strconv.Itoa(partition)
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
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
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
	if n.ho.isPaused(name) {
		writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("pipeline %q is itself waiting for a peer's state", name))
		return
	}
	// The read transaction opens between two epochs, while the runner
	// holds the partition: it sees the state of the last epoch. The epochs
	// go on while it streams.
	txOpen := make(chan struct{})
	served := make(chan struct{})
	held := false
	_ = p.r.Between(func(b runner.Boundary) error {
		if held = b.Held(part); !held {
			return nil
		}
		outs := b.HeldOutputs(part)
		extra := func(cp engine.Checkpoint) []byte { return appendHeld(n.anchors(cp), outs) }
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
		return nil
	})
	if !held {
		writeErr(w, http.StatusConflict, fmt.Errorf("pipeline %q partition %d is not held by this node", name, part))
		return
	}
	<-served
}

// anchors identifies the input entries around a pipeline's positions:
// for each log, its name, the position, and the hashes of up to
// anchorsPerSide entries before it (consumed) and from it (not yet).
func (n *Node) anchors(pipe engine.Checkpoint) []byte {
	var b []byte
	logs := make([]string, 0, len(pipe.Input))
	for lg := range pipe.Input {
		logs = append(logs, lg)
	}
	slices.Sort(logs)
	b = binary.AppendUvarint(b, uint64(len(logs)))
	for _, lg := range logs {
		pos := pipe.Input[lg]
		b = binary.AppendUvarint(b, uint64(len(lg)))
		b = append(b, lg...)
		b = binary.AppendUvarint(b, pos)
		var before, after []uint64
		from := uint64(1)
		if pos > anchorsPerSide {
			from = pos - anchorsPerSide
		}
		_ = n.db.ReadLogEntries(lg, from, 2*anchorsPerSide, func(off uint64, _ int64, rec []byte) error {
			if off < pos {
				before = append(before, entryHash(rec))
			} else if len(after) < anchorsPerSide {
				after = append(after, entryHash(rec))
			}
			return nil
		})
		for _, hs := range [][]uint64{before, after} {
			b = binary.AppendUvarint(b, uint64(len(hs)))
			for _, x := range hs {
				b = binary.BigEndian.AppendUint64(b, x)
			}
		}
	}
	return b
}

// entryHash identifies an input entry (its topic and payload) across nodes.
func entryHash(rec []byte) uint64 {
	f := fnv.New64a()
	f.Write(rec)
	return f.Sum64()
}

// mapAnchors finds a sender's anchors in this node's logs and returns, per
// log, the offset from which the partition's records are new; errNotCovered
// when the sender is behind pos or its anchors are not logged here yet.
//
// When none of the anchors is in this node's log and the sender had
// consumed every entry it logged, this node's entries from its position on
// are taken as new to the partition: at once when there are none (both
// idle), and when lenient (the wait is half over) otherwise.
func (h *handover) mapAnchors(extra []byte, pos map[string]uint64, lenient bool) (map[string]uint64, []byte, error) {
	bad := errors.New("malformed anchors in the snapshot")
	rd := func() (uint64, bool) {
		v, k := binary.Uvarint(extra)
		if k <= 0 {
			return 0, false
		}
		extra = extra[k:]
		return v, true
	}
	nl, ok := rd()
	if !ok {
		return nil, nil, bad
	}
	out := map[string]uint64{}
	for range nl {
		l, ok := rd()
		if !ok || uint64(len(extra)) < l {
			return nil, nil, bad
		}
		lg := string(extra[:l])
		extra = extra[l:]
		if _, ok := rd(); !ok {
			return nil, nil, bad
		}
		var sides [2][]uint64
		for i := range sides {
			c, ok := rd()
			if !ok || uint64(len(extra)) < 8*c {
				return nil, nil, bad
			}
			for range c {
				sides[i] = append(sides[i], binary.BigEndian.Uint64(extra))
				extra = extra[8:]
			}
		}
		q := max(pos[lg], 1)
		if len(sides[0])+len(sides[1]) == 0 {
			out[lg] = q // the sender has no entries around its position: nothing to map
			continue
		}
		// This node's entries from a little before its position on.
		at := map[uint64]uint64{}
		from := uint64(1)
		if q > 4*anchorsPerSide {
			from = q - 4*anchorsPerSide
		}
		next := h.n.logNext(lg)
		for from < next {
			k := 0
			err := h.n.db.ReadLogEntries(lg, from, 4096, func(off uint64, _ int64, rec []byte) error {
				k++
				from = off + 1
				if _, dup := at[entryHash(rec)]; !dup {
					at[entryHash(rec)] = off
				}
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
			if k == 0 {
				break
			}
		}
		cut, found := uint64(0), false
		for i := len(sides[0]) - 1; i >= 0 && !found; i-- {
			if off, ok := at[sides[0][i]]; ok {
				cut, found = off+1, true
			}
		}
		for i := 0; i < len(sides[1]) && !found; i++ {
			if off, ok := at[sides[1][i]]; ok {
				cut, found = off, true
			}
		}
		if !found && len(sides[1]) == 0 && (next <= q || lenient) {
			cut, found = q, true
		}
		if !found || cut < q {
			return nil, nil, errNotCovered
		}
		out[lg] = cut
	}
	return out, extra, nil
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
