package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

func encodeLogMeta(b []byte, s LogStats) []byte {
	b = be64(b, s.First)
	b = be64(b, s.Next)
	b = be64(b, s.Records)
	return be64(b, s.Bytes)
}

func decodeLogMeta(v []byte) (LogStats, bool) {
	if len(v) != 32 {
		return LogStats{}, false
	}
	u := binary.BigEndian.Uint64
	return LogStats{First: u(v), Next: u(v[8:]), Records: u(v[16:]), Bytes: u(v[24:])}, true
}

// logSource is the committer's view of one source's log.
type logSource struct {
	name  string
	st    LogStats
	dedup *dedupWindow

	// The transaction being built.
	inTx    bool
	txSt    LogStats
	txFirst uint64 // offset of the frame being built
	txN     int
	txRaw   []byte
	txKeys  []string
	txSeen  map[string]struct{}
	txBytes uint64 // raw record bytes appended
	metaBuf []byte // encoded txSt, read by bbolt until the commit
}

func (s *logSource) reset() { s.inTx = false }

// dedupWindow remembers the last n dedup keys of a source.
type dedupWindow struct {
	set  map[string]struct{}
	ring []string
	pos  int
}

func newDedupWindow(n int) *dedupWindow {
	return &dedupWindow{set: make(map[string]struct{}), ring: make([]string, 0, min(n, 1024)), pos: 0}
}

func (w *dedupWindow) has(k []byte) bool { _, ok := w.set[string(k)]; return ok }

func (w *dedupWindow) add(k string, horizon int) {
	if len(w.ring) < horizon {
		w.ring = append(w.ring, k)
	} else {
		delete(w.set, w.ring[w.pos])
		w.ring[w.pos] = k
		w.pos = (w.pos + 1) % horizon
	}
	w.set[k] = struct{}{}
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
	first, last, _, err = x.AppendLogDedup(ctx, source, recs, nil)
	return first, last, err
}

// AppendLogDedup is AppendLog with a dedup key per record (keys[i] for
// recs[i]; a nil or empty key, or a nil keys, is never deduplicated). A record
// whose key was appended to the same source among the last
// Options.DedupHorizon keys (or earlier in the same call) is dropped and
// counted in dropped; the kept records still get consecutive offsets. MQTT
// ingest passes a key derived from the message so that a QoS 1 redelivery of an
// already logged message is acknowledged without a second copy in the log. The
// window is rebuilt from the log tail at Open, so it survives restarts as far
// as the retained log reaches.
func (x *DB) AppendLogDedup(ctx context.Context, source string, recs, keys [][]byte) (first, last uint64, dropped int, err error) {
	if source == "" {
		return 0, 0, 0, fmt.Errorf("storage: AppendLog: empty source name")
	}
	if keys != nil && len(keys) != len(recs) {
		return 0, 0, 0, fmt.Errorf("storage: AppendLog: %d keys for %d records", len(keys), len(recs))
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	r := &request{source: source, recs: recs, keys: keys}
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
		if x.opt.DedupHorizon > 0 {
			src.dedup = newDedupWindow(x.opt.DedupHorizon)
		}
		x.logs[name] = src
	}
	if !src.inTx {
		src.inTx = true
		src.txSt = src.st
		src.txFirst = src.st.Next
		src.txN = 0
		src.txRaw = src.txRaw[:0]
		src.txKeys = src.txKeys[:0]
		src.txBytes = 0
		clear(src.txSeen)
		x.pending = append(x.pending, src)
	}
	return src
}

// addLog adds r's records to its source's frame of the transaction.
func (x *DB) addLog(r *request) {
	src := x.touch(r.source)
	r.first = src.txFirst + uint64(src.txN)
	r.drop = 0
	for i, rec := range r.recs {
		var key []byte
		if r.keys != nil && src.dedup != nil {
			key = r.keys[i]
		}
		if len(key) > 0 {
			if _, seen := src.txSeen[string(key)]; seen || src.dedup.has(key) {
				r.drop++
				continue
			}
			if src.txSeen == nil {
				src.txSeen = map[string]struct{}{}
			}
			k := string(key)
			src.txSeen[k] = struct{}{}
			src.txKeys = append(src.txKeys, k)
		}
		src.txRaw = binary.AppendUvarint(src.txRaw, uint64(len(key)))
		src.txRaw = append(src.txRaw, key...)
		src.txRaw = binary.AppendUvarint(src.txRaw, uint64(len(rec)))
		src.txRaw = append(src.txRaw, rec...)
		src.txN++
		src.txBytes += uint64(len(rec))
	}
	r.last = src.txFirst + uint64(src.txN) - 1
}

// writeFrames puts the frame of every source touched by the transaction and
// its log metadata. A frame goes into a bucket of its own under its first
// offset: bbolt then writes the frame's pages once, and appending rewrites
// only the small leaf of frame references instead of a leaf holding the last
// frames themselves (see doc.go, "Flash wear").
func (x *DB) writeFrames(tx *bolt.Tx) error {
	logs, meta := tx.Bucket(bktLog), tx.Bucket(bktLogMeta)
	logs.FillPercent = 1.0
	for _, src := range x.pending {
		if src.txN > 0 {
			b, err := logs.CreateBucketIfNotExists([]byte(src.name))
			if err != nil {
				return fmt.Errorf("storage: log %q: %w", src.name, err)
			}
			b.FillPercent = 1.0 // keys only grow: pack the leaves
			// A fresh buffer: bbolt reads it until the transaction commits.
			frame := make([]byte, 0, 16+len(src.txRaw)/2)
			frame = binary.AppendUvarint(frame, uint64(src.txN))
			frame = x.codec.compress(frame, src.txRaw)
			fb, err := b.CreateBucket(be64(nil, src.txFirst))
			if err == nil {
				fb.FillPercent = 1.0
				err = fb.Put(frameKey, frame)
			}
			if err != nil {
				return fmt.Errorf("storage: log %q frame %d: %w", src.name, src.txFirst, err)
			}
			src.txSt.Next += uint64(src.txN)
			src.txSt.Records += uint64(src.txN)
			src.txSt.Bytes += uint64(len(frame))
		}
		src.metaBuf = encodeLogMeta(src.metaBuf[:0], src.txSt)
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
			for _, k := range src.txKeys {
				src.dedup.add(k, x.opt.DedupHorizon)
			}
		}
		x.appended.Add(uint64(src.txN))
		x.appendedRaw.Add(src.txBytes)
		x.logStats[src.name] = src.st
		src.inTx = false
	}
	x.statMu.Unlock()
	x.pending = x.pending[:0]
}

func (x *DB) abortLogs() {
	for _, src := range x.pending {
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
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return x.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktLog).Bucket([]byte(source))
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
			_, err := x.codec.readFrame(source, first, frameValue(b, k, v), bp, func(i int, _, rec []byte) error {
				off := first + uint64(i)
				if off < from {
					return nil
				}
				if err := fn(off, rec); err != nil {
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
func (x *DB) TruncateLog(ctx context.Context, source string, before uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{}
	r.apply = func(tx *bolt.Tx) error {
		b := tx.Bucket(bktLog).Bucket([]byte(source))
		if b == nil {
			return nil
		}
		src := x.touch(source)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			first := binary.BigEndian.Uint64(k)
			fv := frameValue(b, k, v)
			n, ok := frameCount(fv)
			if !ok {
				return &FrameError{Source: source, Offset: first, Err: errors.New("bad frame header")}
			}
			if first+n > before {
				src.txSt.First = first
				return nil
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
		src.txSt.First = src.txSt.Next
		return nil
	}
	return x.submit(r)
}

// loadDedup fills w with the last keys of source's log.
func (x *DB) loadDedup(tx *bolt.Tx, source string, w *dedupWindow) error {
	b := tx.Bucket(bktLog).Bucket([]byte(source))
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
		if _, err := x.codec.readFrame(source, binary.BigEndian.Uint64(k), frameValue(b, k, v), &buf, func(_ int, key, _ []byte) error {
			if len(key) > 0 {
				w.add(string(key), x.opt.DedupHorizon)
			}
			return nil
		}); err != nil {
			return &CorruptError{Path: x.path, Reason: "input log", Err: err}
		}
	}
	return nil
}
