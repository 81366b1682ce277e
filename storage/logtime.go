package storage

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Input-log time. Every frame keeps its append time (the group commit's
// time, unix ms), so the log can be read by arrival time: a backfill finds
// where a period starts, retention keeps a period, and a runner that cuts
// its epochs by arrival time (runner.Config.ArrivalCut) waits until every
// frame appended before the cut is visible.

// settle tracks the commit in flight for LogSettled.
type settle struct {
	building atomic.Int64 // append time of the commit in flight, 0 when none
	mu       sync.Mutex   // held by the committer from the append time to visibility
}

// LogSettled returns once every frame appended before t (unix ms) is
// visible to readers. Call it at or after wall time t: a commit that starts
// later gets an append time >= t, so at most the commit in flight is waited
// for (one group commit and its fsync).
func (x *DB) LogSettled(t int64) {
	if b := x.settle.building.Load(); b != 0 && b < t {
		x.settle.mu.Lock()
		x.settle.mu.Unlock() //nolint:staticcheck // a barrier: wait for the commit in flight
	}
}

// frameTime returns the append time of the frame under key k (0 if the
// frame predates append times).
func frameTime(b *bolt.Bucket, k, v []byte) int64 {
	if v != nil {
		return 0
	}
	if fb := b.Bucket(k); fb != nil {
		if t := fb.Get(frameTimeKey); len(t) == 8 {
			return int64(binary.BigEndian.Uint64(t))
		}
	}
	return 0
}

// LogFrame describes one frame of an input log (one group commit's records).
type LogFrame struct {
	First    uint64 // offset of its first record
	Records  uint64
	Appended int64 // append time, unix ms (0 if unknown)
	Bytes    int   // stored (compressed) bytes
}

// LogFrames calls fn for the frames of source's log, oldest first, until fn
// returns false. It reads the frames' headers only (nothing is
// decompressed); walking a whole day of frames takes about a second on a
// Raspberry Pi, so callers stop as soon as they can.
func (x *DB) LogFrames(source string, fn func(f LogFrame) bool) error {
	return x.view(func(tx *bolt.Tx) error {
		b := logBucket(tx, source)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			fv := frameValue(b, k, v)
			n, ok := frameCount(fv)
			first := binary.BigEndian.Uint64(k)
			if !ok {
				return &FrameError{Source: source, Offset: first, Err: errors.New("bad frame header")}
			}
			if !fn(LogFrame{First: first, Records: n, Appended: frameTime(b, k, v), Bytes: len(fv)}) {
				return nil
			}
		}
		return nil
	})
}

// LogOffsetAt returns the offset of the first retained record of source's
// log appended at or after t (unix ms), and that record's append time; the
// log's next offset (and 0) if there is none. Frames without an append time
// count as appended before any t.
func (x *DB) LogOffsetAt(source string, t int64) (off uint64, at int64, err error) {
	found := false
	err = x.LogFrames(source, func(f LogFrame) bool {
		if f.Appended >= t && f.Appended != 0 {
			off, at, found = f.First, f.Appended, true
			return false
		}
		return true
	})
	if err != nil || found {
		return off, at, err
	}
	x.statMu.Lock()
	next := x.logStats[source].Next
	x.statMu.Unlock()
	return max(next, 1), 0, nil
}
