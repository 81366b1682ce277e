package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Stats is a snapshot of the database's size and activity, for metrics and
// the status line.
type Stats struct {
	Path      string
	FileBytes int64 // size of the file on disk
	// UsedBytes is what the quota counts: the file's high-water mark minus free
	// pages (bbolt reuses free pages; the file itself never shrinks without
	// Compact).
	UsedBytes     int64
	QuotaBytes    int64
	QuotaExceeded bool // AppendLog is refusing input (back-pressure)

	Log   map[string]LogStats
	Spool map[string]SpoolStats

	DeadLetters           uint64
	DeadLettersByPipeline map[string]uint64
	DeadLettersDropped    uint64 // oldest entries dropped by the MaxDeadLetters bound

	// Since Open:
	Commits          uint64 // write transactions (fsyncs under SyncAlways)
	RecordsAppended  uint64 // log records appended (after dedup)
	RawBytesAppended uint64 // their payload bytes
	DedupDropped     uint64 // records dropped as duplicates
	// BytesWritten estimates the bytes bbolt wrote: every page a transaction
	// allocates is written once, plus one meta page per commit.
	BytesWritten int64
	// BytesWrittenBy splits BytesWritten since Open by what the transactions
	// wrote (WriteKind.String: log, epoch, spool-ack, log-truncate,
	// dead-letter); a group commit counts for its epoch commit if it holds
	// one, else for its first request. Compaction is not included.
	BytesWrittenBy map[string]int64
	// BytesPerMillionRecords is the flash-wear figure: BytesWritten per million
	// log records appended since Open (0 before the first append). It counts
	// every write of the file (state commits, spool, dead letters too), so it
	// is what the device sees per million input records. The knobs that lower
	// it are the records per commit: callers appending batches, and
	// Options.GroupMaxDelay (see doc.go, "Flash wear").
	BytesPerMillionRecords float64
	// ProcWriteBytes is /proc/self/io write_bytes (the whole process, all
	// files; -1 where unavailable).
	ProcWriteBytes int64
	// Tail counts log reads served from the in-memory tail (Options.TailBytes)
	// and those that read the file.
	Tail TailStats
}

// WriteAmplification is BytesWritten per raw appended byte (0 before any
// append): the flash-wear figure, target <= 1 at the default settings.
func (s Stats) WriteAmplification() float64 {
	if s.RawBytesAppended == 0 {
		return 0
	}
	return float64(s.BytesWritten) / float64(s.RawBytesAppended)
}

// Stats returns the current statistics.
func (x *DB) Stats() (Stats, error) {
	s := Stats{Path: x.path, QuotaBytes: x.opt.QuotaBytes, Log: map[string]LogStats{},
		ProcWriteBytes: procWriteBytes()}
	x.statMu.Lock()
	for k, v := range x.logStats {
		s.Log[k] = v
	}
	x.statMu.Unlock()
	s.Commits = x.commits.Load()
	s.BytesWrittenBy = make(map[string]int64, numWriteKinds)
	for k := range numWriteKinds {
		s.BytesWrittenBy[k.String()] = x.written[k].Load()
	}
	s.RecordsAppended = x.appended.Load()
	s.RawBytesAppended = x.appendedRaw.Load()
	s.DedupDropped = x.dedupDropped.Load()
	s.QuotaExceeded = x.quotaHit.Load()
	s.Tail = TailStats{Reads: x.tailStats.reads.Load(), Misses: x.tailStats.misses.Load()}
	var err error
	if s.Spool, err = x.SpoolStats(); err != nil {
		return s, err
	}
	if s.DeadLettersByPipeline, err = x.DeadLetterCounts(); err != nil {
		return s, err
	}
	err = x.view(func(tx *bolt.Tx) error {
		st := x.bdb.Stats()
		s.BytesWritten = x.pageBytes.Load() + st.TxStats.GetPageAlloc() + int64(s.Commits)*int64(x.bdb.Info().PageSize)
		if s.RecordsAppended > 0 {
			s.BytesPerMillionRecords = float64(s.BytesWritten) * 1e6 / float64(s.RecordsAppended)
		}
		s.UsedBytes = tx.Size() - int64(st.FreeAlloc)
		meta := tx.Bucket(bktMeta)
		s.DeadLetters = getU64(meta, keyDLQTotal)
		s.DeadLettersDropped = getU64(meta, keyDLQDropped)
		return nil
	})
	if fi, ferr := os.Stat(x.path); ferr == nil {
		s.FileBytes = fi.Size()
	}
	return s, err
}

func procWriteBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// Compact copies the live data into a new file (path + ".compact"), fsyncs it
// and renames it over the database, shrinking the file to its live size. It
// runs on the committer goroutine, so writes wait for it; reads wait only for
// the swap. Needed only to give space back to the filesystem: without it
// bbolt reuses free pages, so a file whose log and spool are truncated stops
// growing.
func (x *DB) Compact(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{exclusive: x.compact}
	return x.submit(r)
}

func (x *DB) compact() error {
	tmp := x.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
		InitialMmapSize: x.opt.InitialMmapSize, MaxSize: x.opt.MaxMapBytes, NoSync: true})
	if err != nil {
		return fmt.Errorf("storage: compact %q: %w", tmp, err)
	}
	if err := bolt.Compact(dst, x.bdb, 16<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("storage: compact %q: %w", x.path, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("storage: compact %q: %w", x.path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: compact %q: %w", x.path, err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	bst := x.bdb.Stats()
	x.pageBytes.Add(bst.TxStats.GetPageAlloc())
	if err := x.bdb.Close(); err != nil {
		return fmt.Errorf("storage: compact %q: close: %w", x.path, err)
	}
	if err := os.Rename(tmp, x.path); err != nil {
		// The old file is intact: reopen it.
		x.bdb, _ = x.openBolt(x.path)
		return fmt.Errorf("storage: compact %q: %w", x.path, err)
	}
	if d, err := os.Open(dirOf(x.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	b, err := x.openBolt(x.path)
	if err != nil {
		x.closed = true
		return fmt.Errorf("storage: compact %q: reopen: %w", x.path, err)
	}
	x.bdb = b
	return nil
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return "."
}

// WriteKind is what a write transaction was for, in Stats.BytesWrittenBy.
type WriteKind uint8

// Write kinds.
const (
	KindLog         WriteKind = iota // input log appends
	KindEpoch                        // epoch commits: state, checkpoint, outputs into the spool
	KindSpoolAck                     // delivered outputs deleted from the spool
	KindLogTruncate                  // retention: log frames deleted
	KindDeadLetter                   // dead letters stored or deleted
	numWriteKinds
)

func (k WriteKind) String() string {
	switch k {
	case KindLog:
		return "log"
	case KindEpoch:
		return "epoch"
	case KindSpoolAck:
		return "spool-ack"
	case KindLogTruncate:
		return "log-truncate"
	case KindDeadLetter:
		return "dead-letter"
	}
	return fmt.Sprintf("WriteKind(%d)", uint8(k))
}
