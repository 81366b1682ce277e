package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names; see doc.go, "Bucket layout".
var (
	bktMeta      = []byte("meta")
	bktLog       = []byte("log") // format edged-storage/1 only (upgradeRootBuckets)
	bktLogMeta   = []byte("logmeta")
	bktState     = []byte("state") // format edged-storage/1 only (upgradeFlatState)
	bktPState    = []byte("pstate")
	bktCkpt      = []byte("ckpt")
	bktPipes     = []byte("pipes")
	bktSpool     = []byte("spool") // format edged-storage/1 only (upgradeRootBuckets)
	bktSpoolMeta = []byte("spoolmeta")
	bktDLQ       = []byte("dlq")
	bktDLQMeta   = []byte("dlqmeta")

	allBuckets = [][]byte{bktMeta, bktLogMeta, bktPState, bktCkpt, bktPipes, bktSpoolMeta, bktDLQ, bktDLQMeta}

	keyFormat     = []byte("format")
	keyDLQDropped = []byte("dlq.dropped")
	keyDLQTotal   = []byte("dlq.total")
)

// formatMagic identifies an edged storage file and its layout version. A file
// with another value is refused, but for formatMagic1, which Open upgrades
// (upgradeLayout): versions that knew only it refuse the upgraded file
// instead of reading it wrong.
const (
	formatMagic  = "edged-storage/2"
	formatMagic1 = "edged-storage/1"
)

// DB is the durable store of one edged node: input logs, operator state,
// checkpoints, the output spool and dead letters, in one bbolt file. It is safe
// for concurrent use. Writes go through one committer goroutine that groups
// them into shared transactions (see doc.go, "Group commit").
type DB struct {
	txTime int64  // append time of the frames of the transaction being built (committer only)
	settle settle // the commit in flight, for LogSettled
	path   string
	opt    Options
	log    *slog.Logger

	// mu guards bdb against the swap done by Compact and against Close: readers
	// hold it shared for the length of their read transaction. The committer is
	// the only writer of bdb and takes it exclusively to swap.
	mu     sync.RWMutex
	bdb    *bolt.DB
	closed bool

	reqs    chan *request
	closing chan struct{}
	stopped chan struct{}
	once    sync.Once

	codec *codec

	tables tableCache // parsed history-table metadata

	// Owned by the committer goroutine.
	logs       map[string]*logSource
	pending    []*logSource
	arena      []byte
	frameBuf   []byte
	nsBuf      []byte        // scratch for state keys (bbolt copies keys on Put)
	unmappedAt time.Time     // when unmapResident last released the map's pages
	spoolTx    []*spoolFrame // outputs spooled by the transaction being built, per sink

	// Counters, read by Stats.
	statMu       sync.Mutex
	logStats     map[string]LogStats
	seeds        [2]maphash.Seed // of recHash
	commits      atomic.Uint64
	written      [numWriteKinds]atomic.Int64 // estimated bytes written, by kind
	pageSize     int
	pageBytes    atomic.Int64 // bbolt page bytes allocated by closed handles (Compact)
	appended     atomic.Uint64
	appendedRaw  atomic.Uint64
	dedupDropped atomic.Uint64
	quotaHit     atomic.Bool
	external     atomic.Int64 // bytes outside the database counted against the quota

	// The logs' tails in memory (tail.go).
	tailMu      sync.Mutex
	tails       map[string]*logTail
	tailStats   tailCounters
	tailScratch sync.Pool // *[]tailFrame
}

// Open opens (creating if needed) the database file at path. An existing file
// that is truncated, corrupted or not an edged database is refused with a
// *CorruptError naming the file and what to do; Open never replaces it with an
// empty database.
func Open(path string, opts Options) (*DB, error) {
	o := opts.withDefaults()
	if o.GroupMaxDelay < 0 {
		return nil, fmt.Errorf("storage: Options.GroupMaxDelay is negative (%v)", o.GroupMaxDelay)
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	x := &DB{path: path, opt: o, log: o.Logger,
		reqs: make(chan *request, 256), closing: make(chan struct{}), stopped: make(chan struct{}),
		logs: map[string]*logSource{}, logStats: map[string]LogStats{},
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	x.tails = map[string]*logTail{}
	x.tailScratch.New = func() any { return new([]tailFrame) }
	var err error
	if x.codec, err = newCodec(o.Compression); err != nil {
		return nil, err
	}
	if x.bdb, err = x.openBolt(path); err != nil {
		x.codec.close()
		return nil, err
	}
	if err := x.init(); err != nil {
		x.bdb.Close()
		x.codec.close()
		return nil, err
	}
	go x.run()
	x.log.Info("storage opened", "path", path, "sources", len(x.logs))
	return x, nil
}

func (x *DB) openBolt(path string) (*bolt.DB, error) {
	_, err := os.Stat(path)
	created := errors.Is(err, os.ErrNotExist)
	bo := &bolt.Options{
		Timeout:         x.opt.OpenTimeout,
		NoFreelistSync:  !x.opt.SyncFreelist,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: x.opt.InitialMmapSize,
		MaxSize:         x.opt.MaxMapBytes,
		NoSync:          x.opt.Sync == SyncNever,
	}
	if created {
		// bbolt writes a new file's first pages in one write: close it so
		// that prepareCache can drop them.
		b, err := bolt.Open(path, 0o600, bo)
		if err != nil {
			return nil, boltOpenError(path, err)
		}
		if err := b.Close(); err != nil {
			return nil, boltOpenError(path, err)
		}
	}
	prepareCache(path, os.Getpagesize())
	b, err := bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, boltOpenError(path, err)
	}
	x.pageSize = b.Info().PageSize
	return b, nil
}

// init checks the format key (creating the layout in a new file) and loads the
// per-source log positions and dedup windows.
func (x *DB) init() error {
	return x.bdb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return &CorruptError{Path: x.path, Reason: "bbolt file without an edged meta bucket (not an edged database?)"}
			}
			for _, n := range allBuckets {
				if _, err := tx.CreateBucket(n); err != nil {
					return fmt.Errorf("storage: %q: create bucket %s: %w", x.path, n, err)
				}
			}
			return tx.Bucket(bktMeta).Put(keyFormat, []byte(formatMagic))
		}
		if f := meta.Get(keyFormat); bytes.Equal(f, []byte(formatMagic1)) {
			if err := x.upgradeLayout(tx); err != nil {
				return err
			}
		} else if !bytes.Equal(f, []byte(formatMagic)) {
			return &CorruptError{Path: x.path, Reason: fmt.Sprintf("format key is %q; want %q", f, formatMagic)}
		}
		for _, n := range allBuckets {
			if tx.Bucket(n) == nil {
				return &CorruptError{Path: x.path, Reason: fmt.Sprintf("bucket %q is missing", n)}
			}
		}
		return tx.Bucket(bktLogMeta).ForEach(func(k, v []byte) error {
			st, dedup, ok := decodeLogMeta(v)
			if !ok {
				return &CorruptError{Path: x.path, Reason: fmt.Sprintf("log metadata of source %q is malformed", k)}
			}
			src := &logSource{name: string(k), st: st}
			if dedup && x.opt.DedupHorizon > 0 {
				src.dedup = newDedupWindow(x.opt.DedupHorizon)
				if err := x.loadDedup(tx, string(k), src.dedup); err != nil {
					return err
				}
			}
			x.logs[string(k)] = src
			x.logStats[string(k)] = st
			return nil
		})
	})
}

// Close stops the committer (pending requests fail with ErrClosed) and closes
// the file. It is safe to call more than once.
func (x *DB) Close() error {
	var err error
	x.once.Do(func() {
		close(x.closing)
		<-x.stopped
		x.mu.Lock()
		defer x.mu.Unlock()
		x.closed = true
		st := x.bdb.Stats()
		x.pageBytes.Add(st.TxStats.GetPageAlloc())
		err = x.bdb.Close()
		x.codec.close()
	})
	return err
}

// SetExternalBytes sets how many bytes edged keeps outside the database
// (file-sink files, a local uplink directory): they count against
// Options.QuotaBytes with the database's own, so the quota is one budget
// for everything edged writes. The next group commit applies it.
func (x *DB) SetExternalBytes(n int64) { x.external.Store(max(n, 0)) }

// Path returns the database file's path.
func (x *DB) Path() string { return x.path }

// view runs fn in a read transaction.
func (x *DB) view(fn func(tx *bolt.Tx) error) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	return x.bdb.View(fn)
}

func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
