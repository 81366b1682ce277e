package storage

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// The tail of a log: the most recently committed frames of each source, kept
// in memory as they were appended (uncompressed), so that a reader close
// behind the writers (a pipeline's epoch reading what was handed to the log
// since the last one) reads them without a bbolt transaction, without
// decompressing and without a copy. Only committed frames enter the tail,
// after their transaction is durable, so what a reader gets from it is
// exactly what it would have read from the file; a read that starts before
// the tail (after a restart, a reader that fell behind, a backfill) reads the
// file. Options.TailBytes bounds the tail of each source.

// tailFrame is one committed frame of the tail: records first..first+n-1 of
// body (per record uvarint key length, key, uvarint length, record), appended
// at unix ms at. Its fields never change once it is in the tail.
type tailFrame struct {
	first uint64
	n     int
	at    int64
	body  []byte
}

// logTail is the tail of one source's log.
type logTail struct {
	mu     sync.RWMutex
	frames []tailFrame // consecutive: frames[i+1].first == frames[i].first+frames[i].n
	bytes  int
}

// TailStats count the reads the tails served and those that went to the
// file; see Stats.
type TailStats struct {
	// Reads is the number of ReadLog calls served from memory.
	Reads uint64
	// Misses is the number of ReadLog calls that read the file because they
	// started before the tail.
	Misses uint64
}

type tailCounters struct{ reads, misses atomic.Uint64 }

// tailFor returns source's tail, creating it.
func (x *DB) tailFor(source string) *logTail {
	x.tailMu.Lock()
	defer x.tailMu.Unlock()
	t := x.tails[source]
	if t == nil {
		t = &logTail{}
		x.tails[source] = t
	}
	return t
}

// tailAdd adds the frame src's transaction just committed (called by the
// committer after the commit, before the appenders return). A frame that
// does not follow the tail's last one starts the tail over; one larger than
// the budget empties it.
func (x *DB) tailAdd(src *logSource) {
	if x.opt.TailBytes <= 0 || src.txN == 0 {
		return
	}
	t := x.tailFor(src.name)
	body := append([]byte(nil), src.txRaw...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := len(t.frames); k > 0 {
		if last := t.frames[k-1]; last.first+uint64(last.n) != src.txFirst {
			t.clearLocked()
		}
	}
	if len(body) > x.opt.TailBytes {
		t.clearLocked()
		return
	}
	i, bytes := 0, t.bytes
	for bytes+len(body) > x.opt.TailBytes && i < len(t.frames) {
		bytes -= len(t.frames[i].body)
		i++
	}
	t.dropFirstLocked(i)
	t.frames = append(t.frames, tailFrame{first: src.txFirst, n: src.txN, at: x.txTime, body: body})
	t.bytes += len(body)
}

func (t *logTail) clearLocked() {
	clear(t.frames)
	t.frames, t.bytes = t.frames[:0], 0
}

// dropFirstLocked forgets the first i frames. The slots the others move out
// of are cleared as well as the dropped ones: a stale copy of a frame beyond
// the slice's length would keep its body reachable after it is dropped
// later, until appends reach that slot again (with frames of varying sizes,
// up to another TailBytes of garbage the collector cannot free). Readers
// hold copies of frames, never the slots.
func (t *logTail) dropFirstLocked(i int) {
	if i == 0 {
		return
	}
	for _, f := range t.frames[:i] {
		t.bytes -= len(f.body)
	}
	n := copy(t.frames, t.frames[i:])
	clear(t.frames[n:])
	t.frames = t.frames[:n]
}

// tailDrop forgets the frames of source's tail that hold only offsets
// before (TruncateLog deletes those frames from the file).
func (x *DB) tailDrop(source string, before uint64) {
	x.tailMu.Lock()
	t := x.tails[source]
	x.tailMu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for i < len(t.frames) && t.frames[i].first+uint64(t.frames[i].n) <= before {
		i++
	}
	t.dropFirstLocked(i)
}

// readTail is ReadLogEntries from source's tail. It returns false, having
// called nothing, when the read starts before the tail (the caller then
// reads the file). Records before the log's first retained offset are
// skipped, as in the file.
func (x *DB) readTail(source string, from uint64, max int, fn func(off uint64, appended int64, rec []byte) error) (bool, error) {
	if x.opt.TailBytes <= 0 {
		return false, nil
	}
	x.tailMu.Lock()
	t := x.tails[source]
	x.tailMu.Unlock()
	x.statMu.Lock()
	st := x.logStats[source]
	x.statMu.Unlock()
	if from < st.First {
		from = st.First
	}
	if from >= st.Next {
		return true, nil // nothing to read (the tail always ends at Next)
	}
	if t == nil {
		x.tailStats.misses.Add(1)
		return false, nil
	}
	fp := x.tailScratch.Get().(*[]tailFrame)
	defer func() { clear(*fp); *fp = (*fp)[:0]; x.tailScratch.Put(fp) }()
	t.mu.RLock()
	if len(t.frames) == 0 || from < t.frames[0].first {
		t.mu.RUnlock()
		x.tailStats.misses.Add(1)
		return false, nil
	}
	for _, f := range t.frames {
		if f.first+uint64(f.n) > from {
			*fp = append(*fp, f)
		}
	}
	t.mu.RUnlock()
	x.tailStats.reads.Add(1)
	n := 0
	for _, f := range *fp {
		raw := f.body
		for i := 0; i < f.n; i++ {
			kl, m := binary.Uvarint(raw)
			raw = raw[m+int(kl):]
			rl, m := binary.Uvarint(raw)
			rec := raw[m : m+int(rl) : m+int(rl)]
			raw = raw[m+int(rl):]
			off := f.first + uint64(i)
			if off < from {
				continue
			}
			if err := fn(off, f.at, rec); err != nil {
				return true, err
			}
			n++
			if max > 0 && n >= max {
				return true, nil
			}
		}
	}
	return true, nil
}
