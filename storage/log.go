package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// LogStats describe the input log of one source.
type LogStats struct {
	First   uint64 // offset of the first retained record (== Next when empty)
	Next    uint64 // offset the next appended record gets
	Records uint64 // records retained
	Bytes   uint64 // stored (compressed) frame bytes retained, without bbolt overhead
}

// encodeLogMeta encodes a source's log metadata: four uint64 and, for a
// source appended to with AppendLogDedup, a flag byte (its dedup window is
// rebuilt at Open).
func encodeLogMeta(b []byte, s LogStats, dedup bool) []byte {
	b = be64(b, s.First)
	b = be64(b, s.Next)
	b = be64(b, s.Records)
	b = be64(b, s.Bytes)
	if dedup {
		b = append(b, 1)
	}
	return b
}

func decodeLogMeta(v []byte) (s LogStats, dedup, ok bool) {
	if len(v) != 32 && (len(v) != 33 || v[32] != 1) {
		return LogStats{}, false, false
	}
	u := binary.BigEndian.Uint64
	return LogStats{First: u(v), Next: u(v[8:]), Records: u(v[16:]), Bytes: u(v[24:])}, len(v) == 33, true
}

// logSource is the committer's view of one source's log.
type logSource struct {
	name  string
	st    LogStats
	dedup *dedupWindow

	// The transaction being built.
	inTx     bool
	txSt     LogStats
	txFirst  uint64 // offset of the frame being built
	txN      int
	txRaw    []byte
	txHashes []recHash // of the records in txRaw, in the dedup window's table until the commit
	txBytes  uint64    // raw record bytes appended
	hashBuf  []recHash // dedupPass scratch
	keepBuf  []bool    // dedupPass scratch
	metaBuf  []byte    // encoded txSt, read by bbolt until the commit
	frameBuf [2][]byte // frame buffers, alternating: bbolt reads one until its commit
	frameIdx int
}

func (s *logSource) reset() { s.inTx = false }

// recHash is a 128-bit hash of a record's bytes: two maphash sums with the
// DB's random seeds. It identifies records in the dedup window, in memory
// only (the window is rebuilt from the log's records at Open), so the seeds
// need not survive a restart. The window's table compares 96 of its bits (see
// dedupWindow).
type recHash [2]uint64

func (x *DB) hashRecord(rec []byte) recHash {
	return recHash{maphash.Bytes(x.seeds[0], rec), maphash.Bytes(x.seeds[1], rec)}
}

// dedupWindow remembers the hashes of the last records of a source (up to the
// horizon), counting records that are equal byte for byte (AppendLog does not
// deduplicate) so that evicting one leaves the other. The set is an
// open-addressing table of its own (linear probing, deletion by backward
// shift), sized at twice the horizon or more: the hashes are uniform already,
// and a Go map of 128-bit keys churned by the ring cost a tenth of the ingest
// CPU and several times the memory. A slot keeps 96 bits of a hash (16 bytes,
// so the table of the default horizon is 2 MiB): two different records in one
// window collide with probability about horizon * 2^-96 per record.
//
// The table also holds the records of the transaction being built (insert),
// so one lookup per record answers for the window and the transaction; they
// join the ring (push, evicting the oldest) when it commits and leave the
// table (remove) when it aborts.
type dedupWindow struct {
	slots []dedupSlot // power of two, >= 2*horizon
	mask  uint64
	used  int // slots with n > 0
	ring  []recHash
	pos   int
}

// dedupSlot is one entry of the table; n == 0 marks an empty slot.
type dedupSlot struct {
	h0 uint64
	h1 uint32
	n  uint32
}

func (s *dedupSlot) is(h recHash) bool { return s.h0 == h[0] && s.h1 == uint32(h[1]) }

func newDedupWindow(horizon int) *dedupWindow {
	size := 1024
	for size < 2*horizon {
		size <<= 1
	}
	return &dedupWindow{slots: make([]dedupSlot, size), mask: uint64(size - 1), ring: make([]recHash, 0, min(horizon, 1024))}
}

// find returns the slot of h, or the empty slot where it would go.
func (w *dedupWindow) find(h recHash) uint64 {
	i := h[0] & w.mask
	for w.slots[i].n != 0 && !w.slots[i].is(h) {
		i = (i + 1) & w.mask
	}
	return i
}

func (w *dedupWindow) has(h recHash) bool { return w.slots[w.find(h)].n > 0 }

// insert counts h in the table (not the ring).
func (w *dedupWindow) insert(h recHash) {
	if 4*(w.used+1) > 3*len(w.slots) {
		w.grow() // a transaction larger than the horizon
	}
	w.insertAt(w.find(h), h)
}

// insertAt counts h in slot i, which find(h) returned.
func (w *dedupWindow) insertAt(i uint64, h recHash) {
	sl := &w.slots[i]
	if sl.n == 0 {
		sl.h0, sl.h1 = h[0], uint32(h[1])
		w.used++
	}
	sl.n++
}

// grow doubles the table.
func (w *dedupWindow) grow() {
	old := w.slots
	w.slots = make([]dedupSlot, 2*len(old))
	w.mask = uint64(len(w.slots) - 1)
	for _, sl := range old {
		if sl.n > 0 {
			i := sl.h0 & w.mask
			for w.slots[i].n != 0 {
				i = (i + 1) & w.mask
			}
			w.slots[i] = sl
		}
	}
}

// push appends h (in the table already) to the ring, evicting the oldest
// hash once the ring holds horizon.
func (w *dedupWindow) push(h recHash, horizon int) {
	if len(w.ring) < horizon {
		w.ring = append(w.ring, h)
		return
	}
	w.remove(w.ring[w.pos])
	w.ring[w.pos] = h
	w.pos = (w.pos + 1) % horizon
}

// add is insert and push.
func (w *dedupWindow) add(h recHash, horizon int) {
	w.insert(h)
	w.push(h, horizon)
}

// remove takes one count of h (present) off the table.
func (w *dedupWindow) remove(h recHash) {
	i := w.find(h)
	if w.slots[i].n > 1 {
		w.slots[i].n--
		return
	}
	w.used--
	// Backward-shift deletion: move later entries of the probe run into the
	// hole when their home slot is not after it.
	j := i
	for {
		j = (j + 1) & w.mask
		if w.slots[j].n == 0 {
			break
		}
		home := w.slots[j].h0 & w.mask
		if (j-home)&w.mask >= (j-i)&w.mask {
			w.slots[i] = w.slots[j]
			i = j
		}
	}
	w.slots[i] = dedupSlot{}
}

// AppendLog appends recs to the input log of source, durably: when it returns
// nil every record is committed (fsynced under SyncAlways) and may be
// acknowledged upstream. Records get consecutive offsets first..last (offsets
// start at 1; an empty recs gives last == first-1). It blocks until the group
// commit that carries the records is done; concurrent callers share one
// transaction and one fsync. ctx bounds only the wait for queue space (see
// submit). The committer is done with recs when AppendLog returns.
//
// It returns ErrQuotaExceeded, with nothing written, when the quota is
// reached: stop acknowledging and reading the input until Stats says it is
// below again.
func (x *DB) AppendLog(ctx context.Context, source string, recs [][]byte) (first, last uint64, err error) {
	first, last, _, err = x.appendLog(ctx, source, recs, false)
	return first, last, err
}

// AppendLogDedup is AppendLog that drops every record equal, byte for byte,
// to one of the source's last Options.DedupHorizon records (or to one earlier
// in the same call), counting them in dropped; the kept records still get
// consecutive offsets. MQTT ingest logs each message as its topic and payload
// so that a QoS 1 redelivery (or a publisher's retry) of an already logged
// message is acknowledged without a second copy in the log.
//
// The window holds a 96-bit hash per record, in memory only: nothing is
// stored with the records. A source appended to with AppendLogDedup is marked
// in its log metadata, and Open rebuilds its window by hashing the log's last
// records, so the window survives restarts as far as the retained log reaches.
// From the first AppendLogDedup on, AppendLog's records of the source enter
// the window too. A negative DedupHorizon makes this AppendLog.
func (x *DB) AppendLogDedup(ctx context.Context, source string, recs [][]byte) (first, last uint64, dropped int, err error) {
	return x.appendLog(ctx, source, recs, true)
}

func (x *DB) appendLog(ctx context.Context, source string, recs [][]byte, dedup bool) (first, last uint64, dropped int, err error) {
	if source == "" {
		return 0, 0, 0, fmt.Errorf("storage: AppendLog: empty source name")
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	r := &request{source: source, recs: recs, dedup: dedup && x.opt.DedupHorizon > 0, kind: KindLog}
	if err := x.submit(r); err != nil {
		return 0, 0, 0, err
	}
	return r.first, r.last, r.drop, nil
}

// touch starts source name's part of the transaction being built.
func (x *DB) touch(name string) *logSource {
	src := x.logs[name]
	if src == nil {
		src = &logSource{name: name, st: LogStats{First: 1, Next: 1}}
		x.logs[name] = src
	}
	if !src.inTx {
		src.inTx = true
		src.txSt = src.st
		src.txFirst = src.st.Next
		src.txN = 0
		src.txRaw = src.txRaw[:0]
		src.txHashes = src.txHashes[:0]
		src.txBytes = 0
		x.pending = append(x.pending, src)
	}
	return src
}

// addLog adds r's records to its source's frame of the transaction. The first
// deduplicating append of a source builds its window from the committed log
// (and the records this transaction already holds).
func (x *DB) addLog(tx *bolt.Tx, r *request) error {
	src := x.touch(r.source)
	if r.dedup && src.dedup == nil {
		w := newDedupWindow(x.opt.DedupHorizon)
		if err := x.loadDedup(tx, src.name, w); err != nil {
			return err
		}
		for _, h := range src.txHashes {
			w.insert(h)
		}
		src.dedup = w
	}
	r.first = src.txFirst + uint64(src.txN)
	r.drop = 0
	keep := x.dedupPass(src, r)
	for i, rec := range r.recs {
		if keep != nil && !keep[i] {
			continue
		}
		// No dedup key is stored (length 0): the window is rebuilt from the
		// records themselves.
		src.txRaw = append(src.txRaw, 0)
		src.txRaw = binary.AppendUvarint(src.txRaw, uint64(len(rec)))
		src.txRaw = append(src.txRaw, rec...)
		src.txN++
		src.txBytes += uint64(len(rec))
	}
	r.last = src.txFirst + uint64(src.txN) - 1
	return nil
}

// dedupPass looks r's records up in src's dedup window (nil: the source
// has none) and inserts those it keeps, counting the others in r.drop; it
// returns which records to keep. The hashes are computed first, in a pass
// of their own: the table is larger than a cache and each probe misses it,
// and probes that do not wait behind hashing overlap their misses (about a
// quarter less CPU per record than hashing and probing in turn).
func (x *DB) dedupPass(src *logSource, r *request) []bool {
	w := src.dedup
	if w == nil {
		return nil
	}
	hs := src.hashBuf[:0]
	for i, rec := range r.recs {
		if r.dedup && r.once != nil && r.once[i] {
			hs = append(hs, recHash{}) // not hashed: kept, outside the window
			continue
		}
		hs = append(hs, x.hashRecord(rec))
	}
	src.hashBuf = hs
	keep := src.keepBuf[:0]
	for i, h := range hs {
		if r.dedup && r.once != nil && r.once[i] {
			keep = append(keep, true)
			continue
		}
		if 4*(w.used+1) > 3*len(w.slots) {
			w.grow() // a transaction larger than the horizon
		}
		// One lookup answers for the window and this transaction.
		j := w.find(h)
		if r.dedup && w.slots[j].n > 0 {
			r.drop++
			keep = append(keep, false)
			continue
		}
		w.insertAt(j, h)
		src.txHashes = append(src.txHashes, h)
		keep = append(keep, true)
	}
	src.keepBuf = keep
	return keep
}

// writeFrames puts the frame of every source touched by the transaction and
// its log metadata. A frame goes into a bucket of its own under its first
// offset: bbolt then writes the frame's pages once, and appending rewrites
// only the small leaf of frame references instead of a leaf holding the last
// frames themselves (see doc.go, "Flash wear").
func (x *DB) writeFrames(tx *bolt.Tx) error {
	meta := tx.Bucket(bktLogMeta)
	for _, src := range x.pending {
		if src.txN > 0 {
			b, err := tx.CreateBucketIfNotExists(logName(src.name))
			if err != nil {
				return fmt.Errorf("storage: log %q: %w", src.name, err)
			}
			b.FillPercent = 1.0 // keys only grow: pack the leaves
			// bbolt reads the frame until the transaction commits; the buffer
			// is reused two transactions later.
			src.frameIdx ^= 1
			frame := src.frameBuf[src.frameIdx][:0]
			frame = binary.AppendUvarint(frame, uint64(src.txN))
			frame = x.codec.compress(frame, src.txRaw)
			fb, err := b.CreateBucket(be64(nil, src.txFirst))
			if err == nil {
				fb.FillPercent = 1.0
				err = fb.Put(frameKey, frame)
			}
			if err == nil {
				// The append time: decoders that resolve relative times
				// (SenML) use it, so a replay gives the same event times.
				err = fb.Put(frameTimeKey, be64(nil, uint64(x.txTime)))
			}
			if err != nil {
				return fmt.Errorf("storage: log %q frame %d: %w", src.name, src.txFirst, err)
			}
			src.frameBuf[src.frameIdx] = frame
			src.txSt.Next += uint64(src.txN)
			src.txSt.Records += uint64(src.txN)
			src.txSt.Bytes += uint64(len(frame))
		}
		src.metaBuf = encodeLogMeta(src.metaBuf[:0], src.txSt, src.dedup != nil)
		if err := meta.Put([]byte(src.name), src.metaBuf); err != nil {
			return err
		}
	}
	return nil
}

// commitLogs makes the committed transaction's log changes visible.
func (x *DB) commitLogs() {
	if len(x.pending) == 0 {
		return
	}
	x.statMu.Lock()
	for _, src := range x.pending {
		src.st = src.txSt
		if src.dedup != nil {
			for _, h := range src.txHashes {
				src.dedup.push(h, x.opt.DedupHorizon)
			}
		}
		x.appended.Add(uint64(src.txN))
		x.appendedRaw.Add(src.txBytes)
		x.logStats[src.name] = src.st
		x.tailAdd(src)
		src.inTx = false
	}
	x.statMu.Unlock()
	x.pending = x.pending[:0]
}

func (x *DB) abortLogs() {
	for _, src := range x.pending {
		if src.dedup != nil {
			// Take the transaction's records back out of the table: it
			// holds the committed window again.
			for _, h := range src.txHashes {
				src.dedup.remove(h)
			}
		}
		src.inTx = false
	}
	x.pending = x.pending[:0]
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// ReadLog calls fn for the records of source's log with offsets >= from, in
// order, at most max of them (max <= 0: no limit). rec is valid only during
// the call. Records before the first retained one (TruncateLog) are skipped.
// An error of fn stops the read and is returned.
func (x *DB) ReadLog(source string, from uint64, max int, fn func(off uint64, rec []byte) error) error {
	return x.ReadLogEntries(source, from, max, func(off uint64, _ int64, rec []byte) error { return fn(off, rec) })
}

// ReadLogEntries is ReadLog that also gives each record's append time (unix
// ms: when the group commit that logged it ran; 0 for records logged by
// versions that did not keep it).
func (x *DB) ReadLogEntries(source string, from uint64, max int, fn func(off uint64, appended int64, rec []byte) error) error {
	if ok, err := x.readTail(source, from, max, fn); ok {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return x.view(func(tx *bolt.Tx) error {
		b := logBucket(tx, source)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Seek(be64(nil, from))
		switch {
		case k == nil:
			k, v = c.Last()
		case binary.BigEndian.Uint64(k) > from:
			if k, v = c.Prev(); k == nil {
				k, v = c.First()
			}
		}
		n := 0
		for ; k != nil; k, v = c.Next() {
			first := binary.BigEndian.Uint64(k)
			var at int64
			if v == nil {
				if t := b.Bucket(k).Get(frameTimeKey); len(t) == 8 {
					at = int64(binary.BigEndian.Uint64(t))
				}
			}
			_, err := x.codec.readFrame(source, first, frameValue(b, k, v), bp, func(i int, _, rec []byte) error {
				off := first + uint64(i)
				if off < from {
					return nil
				}
				if err := fn(off, at, rec); err != nil {
					return err
				}
				n++
				if max > 0 && n >= max {
					return errStop
				}
				return nil
			})
			if err == errStop {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

// TruncateLog deletes the records of source's log with offsets < before
// (retention once a checkpoint covers them). Frames are deleted whole: a frame
// holding offsets on both sides of before is kept until a later truncation.
// A truncation that deletes nothing writes nothing (no transaction is
// committed for it).
func (x *DB) TruncateLog(ctx context.Context, source string, before uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: KindLogTruncate, after: func() { x.tailDrop(source, before) }}
	r.apply = func(tx *bolt.Tx) error {
		r.noop = true
		b := logBucket(tx, source)
		if b == nil {
			return nil
		}
		var src *logSource
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			first := binary.BigEndian.Uint64(k)
			fv := frameValue(b, k, v)
			n, ok := frameCount(fv)
			if !ok {
				return &FrameError{Source: source, Offset: first, Err: errors.New("bad frame header")}
			}
			if first+n > before {
				if src == nil && x.logs[source] != nil && x.logs[source].st.First != first {
					src = x.touch(source)
					r.noop = false
				}
				if src != nil {
					src.txSt.First = first
				}
				return nil
			}
			if src == nil {
				src = x.touch(source)
				r.noop = false
			}
			src.txSt.Records -= n
			src.txSt.Bytes -= uint64(len(fv))
			var err error
			if v == nil {
				err = b.DeleteBucket(k)
			} else {
				err = c.Delete()
			}
			if err != nil {
				return err
			}
		}
		if src != nil {
			src.txSt.First = src.txSt.Next
		}
		return nil
	}
	return x.submit(r)
}

// loadDedup fills w with the hashes of the last records of source's log.
func (x *DB) loadDedup(tx *bolt.Tx, source string, w *dedupWindow) error {
	b := logBucket(tx, source)
	if b == nil {
		return nil
	}
	// Walk back until the frames hold at least the horizon's worth of records,
	// then forward, adding keys oldest first.
	c := b.Cursor()
	total := 0
	k, v := c.Last()
	for ; k != nil; k, v = c.Prev() {
		n, _ := frameCount(frameValue(b, k, v))
		total += int(n)
		if total >= x.opt.DedupHorizon {
			break
		}
	}
	if k == nil {
		k, v = c.First()
	}
	buf := make([]byte, 0, 64<<10)
	for ; k != nil; k, v = c.Next() {
		if _, err := x.codec.readFrame(source, binary.BigEndian.Uint64(k), frameValue(b, k, v), &buf, func(_ int, _, rec []byte) error {
			w.add(x.hashRecord(rec), x.opt.DedupHorizon)
			return nil
		}); err != nil {
			return &CorruptError{Path: x.path, Reason: "input log", Err: err}
		}
	}
	return nil
}
