package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Spool holds the outputs to upload, in commit order. The node adapts
// storage's SpoolRead/SpoolAck of one sink to it.
//
// Contract:
//   - Read calls fn for the oldest unacknowledged entries in commit order, at
//     most max of them (max <= 0: all), from one consistent snapshot. data is
//     valid only during the call. An error of fn stops the read and is
//     returned. Entries are only ever appended after the existing ones and
//     removed by Ack, so two reads see the same prefix.
//   - The outputs of one epoch commit become visible atomically (all or
//     none), so a read that is not cut by max never holds part of an epoch.
//   - Ack deletes the entries with the given ids; ids not present are
//     ignored (acknowledging twice is harmless). When Ack returns nil the
//     deletion is durable.
//   - Read and Ack may be called from the Uploader's goroutine while other
//     goroutines append; they must be safe for that.
type Spool interface {
	Read(max int, fn func(id string, data []byte) error) error
	Ack(ids ...string) error
}

// SpoolStats describe a spool's content.
type SpoolStats struct {
	Depth  uint64    // unacknowledged entries
	Bytes  uint64    // their data bytes
	Oldest time.Time // commit time of the oldest entry; zero if unknown or empty
}

// SpoolStatser is implemented by a Spool that can report its size cheaply.
// The Uploader uses it for Status and for the spool quota (Config.SpoolQuota).
type SpoolStatser interface {
	Stats() (SpoolStats, error)
}

// SpoolFuncs adapts functions to Spool (and SpoolStatser when StatsFunc is
// set, through StatsSpool).
type SpoolFuncs struct {
	ReadFunc  func(max int, fn func(id string, data []byte) error) error
	AckFunc   func(ids ...string) error
	StatsFunc func() (SpoolStats, error)
}

// Read implements Spool.
func (s SpoolFuncs) Read(max int, fn func(id string, data []byte) error) error {
	return s.ReadFunc(max, fn)
}

// Ack implements Spool.
func (s SpoolFuncs) Ack(ids ...string) error { return s.AckFunc(ids...) }

// Stats implements SpoolStatser; without StatsFunc it reports zero stats.
func (s SpoolFuncs) Stats() (SpoolStats, error) {
	if s.StatsFunc == nil {
		return SpoolStats{}, errors.New("no stats")
	}
	return s.StatsFunc()
}

// Options are the Uploader's collaborators. Zero values are usable.
type Options struct {
	// Target overrides the target built from Config (tests, custom stores).
	Target Target
	// Logger receives upload failures and successes; nil: discard.
	Logger *slog.Logger
	// Now is the clock for batch ages and status times; nil: time.Now.
	Now func() time.Time
	// DeadLetter receives rows that cannot be encoded (not a JSON object,
	// or an id that is not pipeline/partition/epoch/seq). It must be durable
	// when it returns nil; the row is then acknowledged. nil: such rows are
	// counted in Status.DeadLetters, logged and acknowledged.
	DeadLetter func(id string, data []byte, reason string) error
	// Sink is the name of the sink whose spool this Uploader drains: the
	// "sink=" level of every key, so that two uplink sinks of one pipeline
	// never write the same key. Empty: keys have no sink level.
	Sink string
	// Fence, set on a mesh member, records each partition's ownership
	// claim in the target before uploading (see Claim), and drops from
	// every batch the rows a higher claim of another node covers (this
	// node owned the partition on the losing side of a network
	// partition): those rows are superseded, acknowledged and counted in
	// Status.FencedRows. It needs a target with a ClaimStore (local, S3,
	// WebHDFS: ClaimStoreOf); other targets upload unfenced, and New logs
	// it.
	Fence bool
	// ClaimFrom tells, for Fence, the watermark after which this node's
	// windows of (pipeline, partition) under term are its own (the
	// previous owner committed those up to it); false when unknown: then
	// no claim is recorded for that term (its rows are still checked
	// against the others' claims).
	ClaimFrom func(pipeline string, partition int, term uint64) (int64, bool)
	// OwnTerm tells, for Fence, the term under which this node owns
	// (pipeline, partition) now; false when it does not own it. A batch of
	// an older term of this node is fenced only once the claim of that
	// newer term is recorded (it may keep the batch's later windows; see
	// Superseded), waiting for it at most claimWaitMax.
	OwnTerm func(pipeline string, partition int) (uint64, bool)
}

// Status is a snapshot of an Uploader, for the node API.
type Status struct {
	Target string `json:"target"`
	Format string `json:"format"`

	// Spool figures; valid when SpoolKnown (the Spool implements SpoolStatser).
	SpoolKnown  bool          `json:"spool_known"`
	SpoolDepth  uint64        `json:"spool_depth"`
	SpoolBytes  uint64        `json:"spool_bytes"`
	SpoolAge    time.Duration `json:"spool_age_ns"` // age of the oldest entry
	OverQuota   bool          `json:"over_quota"`   // spool above Config.SpoolQuota
	Retention   string        `json:"retention"`
	Pending     string        `json:"pending,omitempty"` // key being uploaded
	Attempt     int           `json:"attempt,omitempty"` // its attempt number
	NextAttempt time.Time     `json:"next_attempt,omitzero"`

	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastKey       string    `json:"last_key,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorKind ErrorKind `json:"last_error_kind,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	Failures      uint64    `json:"failures"` // failed attempts in total

	Objects       uint64  `json:"objects"`
	Rows          uint64  `json:"rows"`
	BytesUploaded uint64  `json:"bytes_uploaded"` // encoded bytes confirmed by the target
	BytesRaw      uint64  `json:"bytes_raw"`      // the same rows' JSON bytes
	Compression   float64 `json:"compression_ratio"`
	DroppedRows   uint64  `json:"dropped_rows"` // by retention drop-oldest
	DeadLetters   uint64  `json:"dead_letters"`
	// FencedRows are rows not uploaded because a higher ownership term of
	// their partition uploads them (Options.Fence).
	FencedRows uint64 `json:"fenced_rows,omitempty"`
}

// Uploader drains a Spool into a Target. Create it with New, run it with
// Run; Status, Flush and Notify are safe from any goroutine.
type Uploader struct {
	cfg   Config
	spool Spool
	tgt   Target
	enc   Encoder
	log   *slog.Logger
	now   func() time.Time
	dlq   func(id string, data []byte, reason string) error
	lim   *limiter

	notify  chan struct{}
	flushCh chan chan error

	sink      string
	fence     ClaimStore // Options.Fence with a fenceable target
	claimFrom func(pipeline string, partition int, term uint64) (int64, bool)
	ownTerm   func(pipeline string, partition int) (uint64, bool)
	recMu     sync.Mutex           // guards recorded (fenceBatch, ClaimNow)
	recorded  map[string]uint64    // by claim scope: the highest term recorded
	seen      map[string]time.Time // first id of each group -> first seen

	mu      sync.Mutex
	st      Status
	schemas map[string]*Schema // by pipeline; guarded by mu
}

// New returns an Uploader for cfg (validated here) draining spool.
func New(cfg Config, spool Spool, opt Options) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	enc, err := NewEncoder(cfg.Format, cfg.IDColumn)
	if err != nil {
		return nil, err
	}
	u := &Uploader{cfg: cfg, spool: spool, tgt: opt.Target, enc: enc, log: opt.Logger,
		now: opt.Now, dlq: opt.DeadLetter, notify: make(chan struct{}, 1),
		flushCh: make(chan chan error), seen: map[string]time.Time{}, sink: opt.Sink,
		schemas: map[string]*Schema{}}
	if u.tgt == nil {
		if u.tgt, err = NewTarget(cfg); err != nil {
			return nil, err
		}
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if opt.Fence {
		if cs, ok := ClaimStoreOf(u.tgt); ok {
			u.fence, u.claimFrom, u.ownTerm, u.recorded = cs, opt.ClaimFrom, opt.OwnTerm, map[string]uint64{}
		} else {
			u.log.Warn("uplink: this target cannot fence uploads by ownership term; after a network partition of the mesh, objects of both sides may be kept", "target", cfg.Target)
		}
	}
	if u.now == nil {
		u.now = time.Now
	}
	if cfg.Bandwidth > 0 {
		u.lim = &limiter{rate: float64(cfg.Bandwidth)}
	}
	u.st.Target, u.st.Format, u.st.Retention = cfg.Target, cfg.Format, cfg.Retention
	u.loadSchemas()
	return u, nil
}

// NewTarget builds the target named by cfg.Target.
func NewTarget(cfg Config) (Target, error) {
	switch cfg.Target {
	case TargetLocal:
		return &LocalTarget{Dir: cfg.Local.Dir}, nil
	case TargetS3:
		return NewS3Target(cfg.S3)
	case TargetWebHDFS:
		return NewWebHDFSTarget(cfg.WebHDFS, nil), nil
	}
	return nil, fmt.Errorf("uplink.target: %q: want local, s3 or webhdfs", cfg.Target)
}

// Notify tells the Uploader that new outputs were spooled (non-blocking).
func (u *Uploader) Notify() {
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

// Flush uploads every complete epoch pending now, ignoring MaxAge, and
// returns when the spool has nothing left to upload, or with ctx's error
// (joined with the last upload error) when ctx ends first. Run must be
// running.
func (u *Uploader) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case u.flushCh <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		u.mu.Lock()
		last := u.st.LastError
		u.mu.Unlock()
		if last != "" {
			return errors.Join(ctx.Err(), errors.New(last))
		}
		return ctx.Err()
	}
}

// Status returns a snapshot of the counters and the spool's figures.
func (u *Uploader) Status() Status {
	u.mu.Lock()
	st := u.st
	u.mu.Unlock()
	if ss, ok := u.spool.(SpoolStatser); ok {
		if s, err := ss.Stats(); err == nil {
			st.SpoolKnown, st.SpoolDepth, st.SpoolBytes = true, s.Depth, s.Bytes
			if !s.Oldest.IsZero() {
				st.SpoolAge = u.now().Sub(s.Oldest)
			}
			st.OverQuota = u.cfg.SpoolQuota > 0 && s.Bytes > uint64(u.cfg.SpoolQuota)
		}
	}
	if st.BytesUploaded > 0 {
		st.Compression = float64(st.BytesRaw) / float64(st.BytesUploaded)
	}
	return st
}

// group identifies the rows of one pipeline partition.
type group struct {
	pipeline  string
	partition int
}

// batch is whole epochs first..last of one group.
type batch struct {
	g           group
	first, last uint64
	ids         []string // every id, bad rows included, for Ack
	rows        []Row
	n           int       // entries (positions) read to cover the batch
	key         string    // the first part's key: names the batch in the journal and status
	fenced      int       // rows superseded by a higher ownership claim (fenceBatch)
	claimWait   time.Time // when fenceBatch started waiting for this node's newer claim
	raw         int64
	parts       []part
}

// part is the rows of a batch in one Hive partition (date and hour): one
// object.
type part struct {
	label string // HivePartition
	key   string
	rows  []Row
	data  []byte // encoded
	done  bool   // confirmed by the target
}

// entry is what the first pass keeps of a spool entry.
type entry struct {
	id    string
	g     group
	epoch uint64
	size  int
	bad   string // reason when the id is malformed
}

// journal is the batch being uploaded, persisted before the upload.
type journal struct {
	Pipeline  string `json:"pipeline"`
	Partition int    `json:"partition"`
	First     uint64 `json:"first"`
	Last      uint64 `json:"last"`
	Key       string `json:"key"`
}

func (u *Uploader) journalPath() string {
	if u.cfg.JournalDir == "" {
		return ""
	}
	return filepath.Join(u.cfg.JournalDir, "uplink-inflight.json")
}

func (u *Uploader) loadJournal() *journal {
	p := u.journalPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var j journal
	if json.Unmarshal(b, &j) != nil {
		u.log.Warn("uplink: ignoring unreadable journal", "path", p)
		return nil
	}
	return &j
}

func (u *Uploader) writeJournal(b *batch) error {
	p := u.journalPath()
	if p == "" {
		return nil
	}
	data, _ := json.Marshal(journal{b.g.pipeline, b.g.partition, b.first, b.last, b.key})
	if err := os.MkdirAll(u.cfg.JournalDir, 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (u *Uploader) clearJournal() {
	if p := u.journalPath(); p != "" {
		os.Remove(p)
	}
}

// Run drains the spool until ctx ends; it returns nil then. Upload failures
// are retried forever with backoff (see Status); they never end Run.
func (u *Uploader) Run(ctx context.Context) error {
	replay := u.loadJournal()
	var waiters []chan error
	force := false
	fails := 0
	for ctx.Err() == nil {
		u.enforceRetention(ctx, nil)
		b, wait, err := u.next(replay, force)
		if err != nil {
			fails++
			u.fail(err, "", fails)
			if !u.sleep(ctx, u.backoff(fails), &waiters, &force) {
				break
			}
			continue
		}
		fails = 0
		if b == nil {
			replay = nil
			if force {
				for _, w := range waiters {
					w <- nil
				}
				waiters, force = nil, false
			}
			if !u.sleep(ctx, min(wait, u.cfg.PollInterval), &waiters, &force) {
				break
			}
			continue
		}
		if replay != nil && b.key == replay.Key {
			replay = nil
		}
		u.upload(ctx, b, &waiters, &force)
	}
	for _, w := range waiters {
		w <- ctx.Err()
	}
	return nil
}

// sleep waits d, a Notify, or a Flush request (which sets force). It
// returns false when ctx ended.
func (u *Uploader) sleep(ctx context.Context, d time.Duration, waiters *[]chan error, force *bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-u.notify:
	case w := <-u.flushCh:
		*waiters = append(*waiters, w)
		*force = true
	case <-t.C:
	}
	return true
}

func (u *Uploader) backoff(attempt int) time.Duration {
	d := u.cfg.BackoffMin
	for i := 1; i < attempt && d < u.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, u.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

func (u *Uploader) fail(err error, key string, attempt int) {
	kind, _ := classify(err)
	var ue *UploadError
	if errors.As(err, &ue) {
		kind = ue.Kind
	}
	u.log.Warn("uplink: upload failed", "key", key, "attempt", attempt, "kind", kind, "err", err)
	u.mu.Lock()
	u.st.LastError, u.st.LastErrorKind, u.st.LastErrorAt = err.Error(), kind, u.now()
	u.st.Failures++
	u.mu.Unlock()
}

// read is the first pass: ids and sizes of up to max entries.
func (u *Uploader) read(max int) ([]entry, bool, error) {
	var es []entry
	err := u.spool.Read(max, func(id string, data []byte) error {
		e := entry{id: id, size: len(data)}
		if o, err := ParseOutputID(id); err != nil {
			e.bad = err.Error()
		} else {
			e.g, e.epoch = group{o.Pipeline, o.Partition}, o.Epoch
		}
		es = append(es, e)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("uplink: spool read: %w", err)
	}
	return es, max > 0 && len(es) == max, nil
}

// next returns the next batch to upload, or nil and how long until the
// oldest pending batch is due by age.
func (u *Uploader) next(replay *journal, force bool) (*batch, time.Duration, error) {
	max := 2 * u.cfg.MaxRows
	for {
		es, truncated, err := u.read(max)
		if err != nil {
			return nil, 0, err
		}
		if len(es) == 0 {
			return nil, u.cfg.PollInterval, nil
		}
		// Malformed ids cannot be placed in any object: dead-letter them now.
		if err := u.deadLetterIDs(es); err != nil {
			return nil, 0, err
		}
		if truncated { // the last commit may be cut: drop its epoch
			l := es[len(es)-1]
			for len(es) > 0 && es[len(es)-1].g == l.g && es[len(es)-1].epoch == l.epoch {
				es = es[:len(es)-1]
			}
		}
		if replay != nil {
			g := group{replay.Pipeline, replay.Partition}
			b, seenLater := u.pick(es, g, replay.First, replay.Last)
			if b != nil && (seenLater || !truncated) {
				return u.fill(b, es)
			}
			if b == nil && (seenLater || !truncated) {
				u.clearJournal() // acknowledged before the crash
				replay = nil
				continue
			}
			max *= 2
			continue
		}
		groups := map[group]bool{}
		now := u.now()
		// A spool past its quota under backpressure holds input back: upload
		// what is there without waiting for MaxAge.
		force := force || u.pressing()
		seen := make(map[string]time.Time, len(u.seen))
		var due time.Duration = u.cfg.MaxAge
		var ready *batch
		for i := range es {
			e := &es[i]
			if e.bad != "" || groups[e.g] {
				continue
			}
			groups[e.g] = true
			first, ok := u.seen[e.id]
			if !ok {
				first = now
			}
			seen[e.id] = first
			if ready != nil {
				continue
			}
			b, full := u.greedy(es, i)
			age := now.Sub(first)
			if full || force || age >= u.cfg.MaxAge {
				ready = b
			} else {
				due = min(due, u.cfg.MaxAge-age)
			}
		}
		u.seen = seen
		if ready != nil {
			return u.fill(ready, es)
		}
		if truncated && max < 64*u.cfg.MaxRows {
			max *= 2
			continue
		}
		return nil, due, nil
	}
}

// pick selects the entries of g with epochs in [first, last]; seenLater
// reports whether an entry of g with a later epoch was read (the range is
// then complete).
func (u *Uploader) pick(es []entry, g group, first, last uint64) (*batch, bool) {
	var b *batch
	later := false
	for i := range es {
		e := &es[i]
		if e.bad != "" || e.g != g {
			continue
		}
		if e.epoch > last {
			later = true
			continue
		}
		if e.epoch < first {
			continue
		}
		if b == nil {
			b = &batch{g: g, first: e.epoch}
		}
		b.last = max(b.last, e.epoch)
		b.ids = append(b.ids, e.id)
		b.n = i + 1
	}
	if b != nil {
		b.first, b.last = first, last
	}
	return b, later
}

// greedy takes whole epochs of the group of es[start] from its oldest one,
// while they fit MaxRows and MaxBytes (at least one epoch). full reports
// that the limits are reached or the next complete epoch did not fit.
func (u *Uploader) greedy(es []entry, start int) (*batch, bool) {
	g := es[start].g
	b := &batch{g: g, first: es[start].epoch, last: es[start].epoch}
	// Sizes per epoch, in order of first appearance.
	type ep struct {
		epoch uint64
		rows  int
		bytes int64
	}
	var eps []ep
	for i := start; i < len(es); i++ {
		e := &es[i]
		if e.bad != "" || e.g != g {
			continue
		}
		if len(eps) == 0 || eps[len(eps)-1].epoch != e.epoch {
			eps = append(eps, ep{epoch: e.epoch})
		}
		eps[len(eps)-1].rows++
		eps[len(eps)-1].bytes += int64(e.size)
	}
	rows, bytes, take := 0, int64(0), 0
	full := false
	for k, x := range eps {
		if k > 0 && (rows+x.rows > u.cfg.MaxRows || bytes+x.bytes > u.cfg.MaxBytes) {
			full = true
			break
		}
		rows, bytes, take = rows+x.rows, bytes+x.bytes, k+1
	}
	if rows >= u.cfg.MaxRows || bytes >= u.cfg.MaxBytes {
		full = true
	}
	b.last = eps[take-1].epoch
	for i := start; i < len(es); i++ {
		e := &es[i]
		if e.bad != "" || e.g != g {
			continue
		}
		if !inEpochs(eps[:take], e.epoch, func(x ep) uint64 { return x.epoch }) {
			break
		}
		b.ids = append(b.ids, e.id)
		b.n = i + 1
	}
	return b, full
}

func inEpochs[T any](xs []T, e uint64, f func(T) uint64) bool {
	for _, x := range xs {
		if f(x) == e {
			return true
		}
	}
	return false
}

// fill is the second pass: it copies the data of b's rows and computes the
// key.
func (u *Uploader) fill(b *batch, es []entry) (*batch, time.Duration, error) {
	want := make(map[string]struct{}, len(b.ids))
	for _, id := range b.ids {
		want[id] = struct{}{}
	}
	b.rows = make([]Row, 0, len(b.ids))
	err := u.spool.Read(b.n, func(id string, data []byte) error {
		if _, ok := want[id]; ok {
			b.rows = append(b.rows, Row{ID: id, Data: bytes.Clone(data)})
			b.raw += int64(len(data))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("uplink: spool read: %w", err)
	}
	if len(b.rows) != len(b.ids) {
		return nil, 0, fmt.Errorf("uplink: spool changed between reads (%d of %d rows)", len(b.rows), len(b.ids))
	}
	u.split(b)
	return b, 0, nil
}

// split divides b's rows by the Hive partition (UTC date and hour) of each
// row's time and names the objects: a batch never spans two partitions.
func (u *Uploader) split(b *batch) {
	names := timeColumns(u.schema(b.g.pipeline))
	b.parts = b.parts[:0]
	for _, r := range b.rows {
		label := HivePartition(rowTime(r.Data, names))
		i := slices.IndexFunc(b.parts, func(p part) bool { return p.label == label })
		if i < 0 {
			i = len(b.parts)
			b.parts = append(b.parts, part{label: label})
		}
		b.parts[i].rows = append(b.parts[i].rows, r)
	}
	slices.SortFunc(b.parts, func(x, y part) int { return strings.Compare(x.label, y.label) })
	g := OutputID{Pipeline: b.g.pipeline, Partition: b.g.partition}
	for i := range b.parts {
		b.parts[i].key = ObjectKey(u.cfg.Prefix, u.cfg.Node, u.sink, u.enc.Ext(), g, b.first, b.last, b.parts[i].label)
	}
	b.key = b.parts[0].key
}

func (u *Uploader) deadLetterIDs(es []entry) error {
	var ids []string
	for i := range es {
		if es[i].bad == "" {
			continue
		}
		if u.dlq != nil {
			var data []byte
			id := es[i].id
			_ = u.spool.Read(i+1, func(eid string, d []byte) error {
				if eid == id {
					data = bytes.Clone(d)
				}
				return nil
			})
			if err := u.dlq(id, data, es[i].bad); err != nil {
				return fmt.Errorf("uplink: dead letter %q: %w", id, err)
			}
		} else {
			u.log.Warn("uplink: dropping row with malformed id", "id", es[i].id, "reason", es[i].bad)
		}
		ids = append(ids, es[i].id)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := u.spool.Ack(ids...); err != nil {
		return fmt.Errorf("uplink: spool ack: %w", err)
	}
	u.mu.Lock()
	u.st.DeadLetters += uint64(len(ids))
	u.mu.Unlock()
	return nil
}

// pressing reports whether the spool is over its quota under backpressure
// retention (input is held back until it drains).
func (u *Uploader) pressing() bool { return u.spoolOver(RetentionBackpressure) }

// overQuota reports whether drop-oldest retention must drop now.
func (u *Uploader) overQuota() bool { return u.spoolOver(RetentionDropOldest) }

// spoolOver reports whether the spool holds more than SpoolQuota under the
// given retention.
func (u *Uploader) spoolOver(retention string) bool {
	if u.cfg.Retention != retention || u.cfg.SpoolQuota <= 0 {
		return false
	}
	ss, ok := u.spool.(SpoolStatser)
	if !ok {
		return false
	}
	s, err := ss.Stats()
	return err == nil && s.Bytes > uint64(u.cfg.SpoolQuota)
}

// enforceRetention drops the oldest batches (inflight first, when given)
// while the spool is over quota with drop-oldest retention. It reports
// whether inflight was dropped.
func (u *Uploader) enforceRetention(ctx context.Context, inflight *batch) bool {
	dropped := false
	for i := 0; i < 1000 && ctx.Err() == nil && u.overQuota(); i++ {
		b := inflight
		if b == nil || dropped {
			var err error
			if b, _, err = u.next(nil, true); err != nil || b == nil {
				return dropped
			}
		}
		if err := u.spool.Ack(b.ids...); err != nil {
			u.fail(fmt.Errorf("uplink: spool ack (drop-oldest): %w", err), b.key, 0)
			return dropped
		}
		dropped = dropped || b == inflight
		u.log.Warn("uplink: spool over quota, dropped oldest batch", "key", b.key, "rows", len(b.ids))
		u.mu.Lock()
		u.st.DroppedRows += uint64(len(b.ids))
		u.mu.Unlock()
		if b == inflight {
			u.clearJournal()
		}
	}
	return dropped
}

// encode encodes every part of b with its pipeline's schema.
func (u *Uploader) encode(b *batch) (bad []BadRow, size int64, err error) {
	schema := u.schema(b.g.pipeline)
	for i := range b.parts {
		p := &b.parts[i]
		if len(p.rows) == 0 { // every row superseded (fenceBatch)
			p.done = true
			continue
		}
		var buf bytes.Buffer
		pbad, err := u.enc.Encode(&buf, schema, p.rows)
		if err != nil {
			return nil, 0, fmt.Errorf("uplink: encode %s: %w", p.key, err)
		}
		p.data = buf.Bytes()
		size += int64(len(p.data))
		bad = append(bad, pbad...)
	}
	return bad, size, nil
}

// upload encodes b, writes its objects with retries, and acknowledges it.
func (u *Uploader) upload(ctx context.Context, b *batch, waiters *[]chan error, force *bool) {
	for u.fence != nil {
		err := u.fenceBatch(ctx, b)
		if err == nil {
			break
		}
		if errors.Is(err, errClaimPending) {
			if !u.sleep(ctx, 100*time.Millisecond, waiters, force) {
				return
			}
			continue
		}
		u.fail(fmt.Errorf("uplink: ownership claims of %s: %w", b.key, err), b.key, 0)
		if !u.sleep(ctx, u.backoff(1), waiters, force) {
			return
		}
	}
	bad, size, err := u.encode(b)
	for err != nil { // an encoder failure on valid input: retry, never drop
		u.fail(err, b.key, 0)
		if !u.sleep(ctx, u.backoff(1), waiters, force) {
			return
		}
		bad, size, err = u.encode(b)
	}
	if err := u.writeJournal(b); err != nil {
		u.log.Warn("uplink: journal", "err", err)
	}
	u.mu.Lock()
	u.st.Pending, u.st.Attempt = b.key, 0
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.st.Pending, u.st.Attempt, u.st.NextAttempt = "", 0, time.Time{}
		u.mu.Unlock()
	}()
	dlqDone := false
	for attempt := 1; ; attempt++ {
		u.mu.Lock()
		u.st.Attempt = attempt
		u.mu.Unlock()
		err := u.attempt(ctx, b, bad, &dlqDone)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		kind, ra := classify(err)
		ue := &UploadError{Key: b.key, Attempt: attempt, Kind: kind, RetryAfter: ra, Err: err}
		u.fail(ue, b.key, attempt)
		d := u.backoff(attempt)
		if ra > 0 {
			d = max(d, ra)
		}
		u.mu.Lock()
		u.st.NextAttempt = u.now().Add(d)
		u.mu.Unlock()
		if !u.sleep(ctx, d, waiters, force) {
			return
		}
		if u.enforceRetention(ctx, b) {
			return
		}
	}
	// Confirmed by the target: now the rows may leave the spool.
	for attempt := 1; ; attempt++ {
		err := u.spool.Ack(b.ids...)
		if err == nil {
			break
		}
		u.fail(fmt.Errorf("uplink: spool ack after %s: %w", b.key, err), b.key, attempt)
		if !u.sleep(ctx, u.backoff(attempt), waiters, force) {
			return // the journal makes the restart re-upload the same key
		}
	}
	u.clearJournal()
	u.log.Debug("uplink: uploaded", "key", b.key, "objects", len(b.parts), "rows", len(b.rows), "bytes", size)
	u.mu.Lock()
	u.st.LastSuccess = u.now()
	u.st.LastError, u.st.LastErrorKind = "", ""
	u.st.LastKey = b.parts[len(b.parts)-1].key
	u.st.Objects += uint64(len(b.parts))
	u.st.Rows += uint64(len(b.rows) - len(bad) - b.fenced)
	u.st.BytesUploaded += uint64(size)
	u.st.BytesRaw += uint64(b.raw)
	u.st.DeadLetters += uint64(len(bad))
	u.mu.Unlock()
}

// attempt dead-letters the bad rows (once) and puts the parts not yet
// confirmed.
func (u *Uploader) attempt(ctx context.Context, b *batch, bad []BadRow, dlqDone *bool) error {
	if !*dlqDone {
		for _, r := range bad {
			if u.dlq == nil {
				u.log.Warn("uplink: row does not fit, dropped", "id", r.ID, "reason", r.Reason)
				continue
			}
			if err := u.dlq(r.ID, r.Data, r.Reason); err != nil {
				return fmt.Errorf("dead letter %q: %w", r.ID, err)
			}
		}
		*dlqDone = true
	}
	for i := range b.parts {
		p := &b.parts[i]
		if p.done {
			continue
		}
		if err := u.put(ctx, p.key, p.data, b); err != nil {
			return err
		}
		p.done = true
	}
	return nil
}

func (u *Uploader) put(ctx context.Context, key string, data []byte, b *batch) error {
	actx := ctx
	if u.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, u.cfg.Timeout)
		defer cancel()
	}
	var r interface{ Read([]byte) (int, error) } = bytes.NewReader(data)
	if u.lim != nil {
		r = &limitedReader{ctx: actx, r: r, l: u.lim}
	}
	return u.tgt.Put(actx, key, r, int64(len(data)))
}

// term is the highest ownership term of the batch's outputs.
func (b *batch) term() uint64 {
	var t uint64
	for _, id := range b.ids {
		if g, err := ParseOutputID(id); err == nil {
			t = max(t, g.Term)
		}
	}
	return t
}

// ClaimNow records this node's claim on a partition under term, if it is
// not recorded yet and ClaimFrom knows where its windows start. The node
// calls it when it starts emitting a partition, so that the other side of
// a network partition sees the claim before this node's first upload;
// fenceBatch calls it before each upload. Safe for concurrent use.
func (u *Uploader) ClaimNow(ctx context.Context, pipeline string, partition int, term uint64) error {
	_, err := u.claim(ctx, pipeline, partition, term)
	return err
}

// claim is ClaimNow; it also reports whether the claim is recorded.
func (u *Uploader) claim(ctx context.Context, pipeline string, partition int, term uint64) (bool, error) {
	if u.fence == nil || u.claimFrom == nil {
		return false, nil
	}
	scope := ClaimScope(u.cfg.Prefix, pipeline, u.sink, partition)
	u.recMu.Lock()
	done := u.recorded[scope] >= term
	u.recMu.Unlock()
	if done {
		return true, nil
	}
	from, ok := u.claimFrom(pipeline, partition, term)
	if !ok {
		return false, nil
	}
	if err := RecordClaim(ctx, u.fence, scope, Claim{Term: term, Owner: u.cfg.Node, From: from}); err != nil {
		return false, err
	}
	u.recMu.Lock()
	u.recorded[scope] = max(u.recorded[scope], term)
	u.recMu.Unlock()
	return true, nil
}

// errClaimPending: fenceBatch would drop rows of this node's older term
// while the claim of the newer term it owns the partition under is not
// recorded yet (that claim may keep them).
var errClaimPending = errors.New("waiting for this node's claim on the partition under its newer term")

// claimWaitMax bounds how long a batch waits for this node's newer claim
// (the runner records it when it starts emitting under that term).
const claimWaitMax = 10 * time.Second

// fenceBatch records this node's claim on the batch's partition (when
// ClaimFrom knows where its windows start) and drops the rows a higher
// claim of another node covers (Superseded), counting them in FencedRows;
// their ids stay in the batch, so they are acknowledged with it. Rows it
// would drop while this node owns the partition under a newer term whose
// claim is not recorded yet wait for that claim (errClaimPending), at most
// claimWaitMax: it may cover them.
func (u *Uploader) fenceBatch(ctx context.Context, b *batch) error {
	scope := ClaimScope(u.cfg.Prefix, b.g.pipeline, u.sink, b.g.partition)
	term := b.term()
	if err := u.ClaimNow(ctx, b.g.pipeline, b.g.partition, term); err != nil {
		return err
	}
	newer := false // this node owns the partition under a newer term whose claim is not recorded
	if u.ownTerm != nil {
		if cur, ok := u.ownTerm(b.g.pipeline, b.g.partition); ok && cur > term {
			rec, err := u.claim(ctx, b.g.pipeline, b.g.partition, cur)
			if err != nil {
				return err
			}
			newer = !rec
		}
	}
	claims, err := ListClaims(ctx, u.fence, scope)
	if err != nil || len(claims) == 0 {
		return err
	}
	kept := make([][]Row, len(b.parts))
	dropped := 0
	for i := range b.parts {
		kept[i] = make([]Row, 0, len(b.parts[i].rows))
		for _, r := range b.parts[i].rows {
			g, _ := ParseOutputID(r.ID)
			end, ok := windowEnd(r.Data)
			if Superseded(claims, Claim{Term: g.Term, Owner: u.cfg.Node}, end, ok) {
				dropped++
				continue
			}
			kept[i] = append(kept[i], r)
		}
	}
	if dropped == 0 {
		return nil
	}
	if newer {
		now := u.now()
		if b.claimWait.IsZero() {
			b.claimWait = now
		}
		if now.Sub(b.claimWait) < claimWaitMax {
			return errClaimPending
		}
	}
	for i := range b.parts {
		b.parts[i].rows = kept[i]
	}
	b.fenced += dropped
	u.log.Warn("uplink: rows superseded by a higher ownership term of their partition, not uploaded",
		"key", b.key, "rows", dropped, "claims", fmt.Sprint(claims))
	u.mu.Lock()
	u.st.FencedRows += uint64(dropped)
	u.mu.Unlock()
	return nil
}

// windowEnd reads a row's window_end (or session_end): unix ms or RFC 3339.
func windowEnd(row []byte) (int64, bool) {
	t, ok := rowTime(row, []string{"window_end", "session_end"})
	return t.UnixMilli(), ok
}
