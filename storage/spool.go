package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// SpoolStats describe the output spool of one sink.
type SpoolStats struct {
	Depth  uint64    // entries not yet acknowledged
	Bytes  uint64    // their data bytes
	Oldest time.Time // commit time of the oldest entry; zero when empty
}

func (s SpoolStats) encode() []byte { return be64(be64(nil, s.Depth), s.Bytes) }

func decodeSpoolMeta(v []byte) SpoolStats {
	if len(v) != 16 {
		return SpoolStats{}
	}
	return SpoolStats{Depth: binary.BigEndian.Uint64(v), Bytes: binary.BigEndian.Uint64(v[8:])}
}

// spoolFrame is the outputs one transaction spools for one sink, written
// as one frame at its end (writeSpoolFrames).
type spoolFrame struct {
	sink  string
	raw   []byte // per output: uvarint id length, id, uvarint data length, data
	n     int
	bytes uint64
	frame []byte // the encoded frame, read by bbolt until the commit
}

// spoolOutputs adds outs to the frames of their sinks in the transaction
// being built, in order; writeSpoolFrames writes them.
func (x *DB) spoolOutputs(outs []engine.Output) {
	var f *spoolFrame
	for i := range outs {
		o := &outs[i]
		if f == nil || f.sink != o.Sink {
			f = x.spoolFrameOf(o.Sink)
		}
		f.raw = binary.AppendUvarint(f.raw, uint64(len(o.ID)))
		f.raw = append(f.raw, o.ID...)
		f.raw = binary.AppendUvarint(f.raw, uint64(len(o.Data)))
		f.raw = append(f.raw, o.Data...)
		f.n++
		f.bytes += uint64(len(o.Data))
	}
}

// spoolFrameOf returns the frame of sink in the transaction being built.
func (x *DB) spoolFrameOf(sink string) *spoolFrame {
	for _, f := range x.spoolTx {
		if f.sink == sink {
			return f
		}
	}
	var f *spoolFrame
	if n := len(x.spoolTx); n < cap(x.spoolTx) && x.spoolTx[:n+1][n] != nil {
		f = x.spoolTx[:n+1][n] // reuse the buffers of an earlier transaction
	} else {
		f = &spoolFrame{}
	}
	f.sink, f.raw, f.n, f.bytes = sink, f.raw[:0], 0, 0
	x.spoolTx = append(x.spoolTx, f)
	return f
}

// writeSpoolFrames writes the outputs the transaction spooled: per sink, one
// compressed frame in a bucket of its own under the spool's next sequence
// number (as log frames: appending never rewrites the earlier frames, and
// one frame of an epoch's outputs costs a few compressed pages instead of a
// leaf entry per output). Frames are written in the order their sinks were
// first spooled to.
func (x *DB) writeSpoolFrames(tx *bolt.Tx) error {
	if len(x.spoolTx) == 0 {
		return nil
	}
	meta := tx.Bucket(bktSpoolMeta)
	for _, f := range x.spoolTx {
		b, err := tx.CreateBucketIfNotExists(spoolName(f.sink))
		if err != nil {
			return fmt.Errorf("spool %q: %w", f.sink, err)
		}
		// Keys are sequence numbers, appended in order: pack the leaves
		// (bbolt's default of half-full pages doubles the pages written).
		b.FillPercent = 1.0
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		f.frame = binary.AppendUvarint(f.frame[:0], uint64(f.n))
		f.frame = x.codec.compress(f.frame, f.raw)
		if err := x.putSpoolFrame(b, seq, f.frame, x.txTime); err != nil {
			return fmt.Errorf("spool %q frame %d: %w", f.sink, seq, err)
		}
		st := decodeSpoolMeta(meta.Get([]byte(f.sink)))
		st.Depth += uint64(f.n)
		st.Bytes += f.bytes
		if err := meta.Put([]byte(f.sink), st.encode()); err != nil {
			return err
		}
	}
	return nil
}

// Small frames (a few outputs: events, alerts) are a plain value of the
// sink's bucket, marked, instead of a bucket of their own: a sink bucket
// holding only such values stays inline in the root's leaf, so the sinks
// that spool little share one page instead of a page each per epoch (and a
// frame of any size is such a value when the spool is empty, see
// putSpoolFrame).
const (
	spoolInlineMark = 0xff // first byte of an inline frame's value (an older entry starts with its time's top byte, 0)
	maxInlineFrame  = 512
)

// putSpoolFrame puts frame (read by bbolt until the commit) under seq in
// spool bucket b, with its commit time t: a small one, or any one when the
// spool is empty, as a marked value; a larger one behind other frames into
// a bucket of its own. A sink that keeps up (its spool is empty when the
// next epoch commits) then costs its bucket's leaf, which holds the frame,
// instead of that leaf and the frame bucket's. A sink that falls behind
// appends frame buckets, so that an append does not rewrite the frames
// before it: the first frame, if it is a large value, moves into a bucket
// of its own then (written twice, once).
func (x *DB) putSpoolFrame(b *bolt.Bucket, seq uint64, frame []byte, t int64) error {
	c := b.Cursor()
	k, v := c.First()
	if len(frame) <= maxInlineFrame || k == nil {
		return b.Put(x.stable(be64(nil, seq)), x.stable([]byte{spoolInlineMark}, be64(nil, uint64(t)), frame))
	}
	if len(v) > 9+maxInlineFrame && v[0] == spoolInlineMark {
		k, v = x.stable(k), x.stable(v)
		if err := b.Delete(k); err != nil {
			return err
		}
		if err := x.putFrameBucket(b, k, v[9:], v[1:9]); err != nil {
			return err
		}
	}
	return x.putFrameBucket(b, be64(nil, seq), frame, be64(nil, uint64(t)))
}

// putFrameBucket puts frame and its 8-byte time into a bucket of its own
// under key k of spool bucket b.
func (x *DB) putFrameBucket(b *bolt.Bucket, k, frame, t []byte) error {
	fb, err := b.CreateBucket(k)
	if err != nil {
		return err
	}
	fb.FillPercent = 1.0
	if err := fb.Put(frameKey, frame); err != nil {
		return err
	}
	return fb.Put(frameTimeKey, t)
}

// resetSpoolTx forgets the frames of a transaction that was committed or
// abandoned (their buffers are kept for the next one).
func (x *DB) resetSpoolTx() { x.spoolTx = x.spoolTx[:0] }

// spoolEntries calls fn for every output held under key k of a spool bucket
// whose cursor gave v, in order: one output for an entry written before
// frames (v holds it), the frame's outputs for a frame bucket. t is the
// commit time. buf is reused for decompression. A false return of fn stops.
func (x *DB) spoolEntries(b *bolt.Bucket, sink string, k, v []byte, buf *[]byte, fn func(t int64, id, data []byte) (bool, error)) (bool, error) {
	var t int64
	var frame []byte
	switch {
	case len(v) > 9 && v[0] == spoolInlineMark:
		t, frame = int64(binary.BigEndian.Uint64(v[1:])), v[9:]
	case v != nil:
		t, id, data, err := decodeSpoolEntry(v)
		if err != nil {
			return false, fmt.Errorf("storage: spool %q entry %x: %w", sink, k, err)
		}
		return fn(t, id, data)
	default:
		fb := b.Bucket(k)
		if fb == nil {
			return false, fmt.Errorf("storage: spool %q entry %x: neither an output nor a frame", sink, k)
		}
		if tv := fb.Get(frameTimeKey); len(tv) == 8 {
			t = int64(binary.BigEndian.Uint64(tv))
		}
		frame = fb.Get(frameKey)
	}
	more := true
	_, err := x.codec.readFrame(sink, 0, frame, buf, func(_ int, id, data []byte) error {
		ok, err := fn(t, id, data)
		if err == nil && !ok {
			more = false
			return errStopFrame
		}
		return err
	})
	if errors.Is(err, errStopFrame) {
		err = nil
	}
	var fe *FrameError
	if errors.As(err, &fe) {
		err = fmt.Errorf("storage: spool %q frame %x: %w", sink, k, fe.Err)
	}
	return more && err == nil, err
}

var errStopFrame = errors.New("stop")

// decodeSpoolEntry decodes an output spooled before frames: commit time,
// uvarint id length, id, data.
func decodeSpoolEntry(v []byte) (t int64, id, data []byte, err error) {
	if len(v) < 9 {
		return 0, nil, nil, errors.New("short spool entry")
	}
	t = int64(binary.BigEndian.Uint64(v))
	l, k := binary.Uvarint(v[8:])
	if k <= 0 || uint64(len(v)-8-k) < l {
		return 0, nil, nil, errors.New("malformed spool entry")
	}
	id = v[8+k : 8+k+int(l)]
	data = v[8+k+int(l):]
	return t, id, data[:len(data):len(data)], nil
}

// SpoolRead calls fn for the unacknowledged outputs of sink in commit order,
// at most max of them (max <= 0: all), from one snapshot. id is the output's
// deterministic id; data is valid only during the call. Reading does not
// remove: acknowledge delivered entries with SpoolAck or SpoolAckThrough. An
// error of fn stops the read and is returned.
func (x *DB) SpoolRead(sink string, max int, fn func(id string, data []byte) error) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return x.view(func(tx *bolt.Tx) error {
		b := spoolBucket(tx, sink)
		if b == nil {
			return nil
		}
		n := 0
		c := b.Cursor()
		for k, v := c.First(); k != nil && (max <= 0 || n < max); k, v = c.Next() {
			more, err := x.spoolEntries(b, sink, k, v, bp, func(_ int64, id, data []byte) (bool, error) {
				if err := fn(string(id), data); err != nil {
					return false, err
				}
				n++
				return max <= 0 || n < max, nil
			})
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// SpoolAck deletes the entries of sink with the given ids (delivered). Ids not
// in the spool are ignored, so acknowledging twice is harmless. It scans from
// the oldest entry and stops once every id was found, so acknowledging in
// delivery order is cheap. It returns how many entries were deleted.
func (x *DB) SpoolAck(ctx context.Context, sink string, ids ...string) (int, error) {
	return x.spoolAck(ctx, sink, false, ids)
}

// SpoolAckDeferred is SpoolAck for a sink that is not behind: the deletion
// waits up to Options.DeferMaxDelay to share the transaction of another
// write (the next epoch's commit, usually) instead of costing one of its
// own. Until it commits a crash redelivers the entries, as it would between
// a delivery and its SpoolAck; a sink draining a backlog uses SpoolAck.
func (x *DB) SpoolAckDeferred(ctx context.Context, sink string, ids ...string) (int, error) {
	return x.spoolAck(ctx, sink, true, ids)
}

func (x *DB) spoolAck(ctx context.Context, sink string, lazy bool, ids []string) (int, error) {
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	return x.spoolDelete(ctx, sink, lazy, func(id []byte) (del, stop bool) {
		if _, ok := want[string(id)]; ok {
			delete(want, string(id))
			return true, len(want) == 0
		}
		return false, len(want) == 0
	})
}

// SpoolAckThrough deletes the entries of sink from the oldest up to and
// including the one with id (ack-up-to semantics, for sinks that deliver in
// order). If id is not in the spool nothing is deleted. It returns how many
// entries were deleted.
func (x *DB) SpoolAckThrough(ctx context.Context, sink, id string) (int, error) {
	found := false
	if err := x.SpoolRead(sink, 0, func(eid string, _ []byte) error {
		if eid == id {
			found = true
			return errStopFrame
		}
		return nil
	}); (err != nil && !errors.Is(err, errStopFrame)) || !found {
		return 0, err
	}
	done := false
	return x.spoolDelete(ctx, sink, false, func(eid []byte) (bool, bool) {
		if done {
			return false, true
		}
		done = string(eid) == id
		return true, done
	})
}

// spoolDelete deletes, from the oldest, the outputs of sink that match says
// to, until it says stop (after the output it was asked about). An entry
// written before frames is deleted alone; a frame whose outputs are all
// deleted is dropped, and one that keeps some is written again with those.
func (x *DB) spoolDelete(ctx context.Context, sink string, lazy bool, match func(id []byte) (del, stop bool)) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	var f spoolFilter
	r := &request{kind: KindSpoolAck, lazy: lazy}
	r.apply = func(tx *bolt.Tx) error {
		n = 0
		b := spoolBucket(tx, sink)
		if b == nil {
			r.noop = true
			return nil
		}
		meta := tx.Bucket(bktSpoolMeta)
		st := decodeSpoolMeta(meta.Get([]byte(sink)))
		var err error
		if n, err = x.filterSpool(b, sink, &st, &f, match, nil); err != nil || n == 0 {
			r.noop = n == 0
			return err
		}
		return meta.Put([]byte(sink), st.encode())
	}
	if err := x.submit(r); err != nil {
		return 0, fmt.Errorf("storage: spool %q ack: %w", sink, err)
	}
	return n, nil
}

// spoolFilter holds filterSpool's buffers.
type spoolFilter struct{ buf, keep []byte }

// filterSpool deletes, from the oldest, the outputs of spool bucket b that
// match says to, until it says stop (after the output it was asked about),
// and calls moved (if not nil) with each, in order; st is updated. An entry
// written before frames is deleted alone; a frame whose outputs are all
// deleted is dropped, and one that keeps some is written again with those.
// It returns how many outputs it deleted.
func (x *DB) filterSpool(b *bolt.Bucket, sink string, st *SpoolStats, f *spoolFilter,
	match func(id []byte) (del, stop bool), moved func(t int64, id, data []byte)) (int, error) {
	n := 0
	c := b.Cursor()
	stop := false
	for k, v := c.First(); k != nil && !stop; {
		kept, dropped := 0, 0
		f.keep = f.keep[:0]
		_, err := x.spoolEntries(b, sink, k, v, &f.buf, func(t int64, id, data []byte) (bool, error) {
			del := false
			if !stop {
				del, stop = match(id)
			}
			if del {
				st.Depth--
				st.Bytes -= uint64(len(data))
				dropped++
				if moved != nil {
					moved(t, id, data)
				}
				return true, nil
			}
			kept++
			f.keep = binary.AppendUvarint(f.keep, uint64(len(id)))
			f.keep = append(f.keep, id...)
			f.keep = binary.AppendUvarint(f.keep, uint64(len(data)))
			f.keep = append(f.keep, data...)
			return true, nil
		})
		if err != nil {
			return n, err
		}
		if dropped == 0 {
			k, v = c.Next()
			continue
		}
		kc := append([]byte(nil), k...)
		switch {
		case kept == 0 && v != nil:
			err = c.Delete()
		case kept == 0:
			err = b.DeleteBucket(kc)
		case v != nil: // part of an inline frame goes: keep the rest
			frame := x.codec.compress(binary.AppendUvarint(nil, uint64(kept)), f.keep)
			err = b.Put(kc, x.stable(v[:9], frame))
		default: // part of a frame goes: keep the rest
			frame := binary.AppendUvarint(nil, uint64(kept))
			frame = x.stable(x.codec.compress(frame, f.keep))
			err = b.Bucket(kc).Put(frameKey, frame)
		}
		if err != nil {
			return n, fmt.Errorf("spool %q entry %x: %w", sink, kc, err)
		}
		n += dropped
		// After a deletion bbolt's Next may skip an entry: seek past the key.
		k, v = c.Seek(kc)
		if k != nil && bytes.Equal(k, kc) {
			k, v = c.Next()
		}
	}
	return n, nil
}

// SpoolStats returns the spool statistics of every sink with a spool.
func (x *DB) SpoolStats() (map[string]SpoolStats, error) {
	out := map[string]SpoolStats{}
	err := x.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktSpoolMeta).ForEach(func(k, v []byte) error {
			st := decodeSpoolMeta(v)
			if b := spoolBucket(tx, string(k)); b != nil {
				if fk, e := b.Cursor().First(); fk != nil {
					if e == nil {
						// A frame: its time is beside it.
						if fb := b.Bucket(fk); fb != nil {
							if tv := fb.Get(frameTimeKey); len(tv) == 8 {
								st.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(tv)))
							}
						}
					} else if len(e) > 9 && e[0] == spoolInlineMark {
						st.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(e[1:])))
					} else if t, _, _, err := decodeSpoolEntry(e); err == nil {
						st.Oldest = time.UnixMilli(t)
					}
				}
			}
			out[string(k)] = st
			return nil
		})
	})
	return out, err
}
