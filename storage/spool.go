package storage

import (
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

// spoolOutputs appends outs to their sinks' spools, in order.
func (x *DB) spoolOutputs(tx *bolt.Tx, outs []engine.Output, now int64) error {
	if len(outs) == 0 {
		return nil
	}
	sp, meta := tx.Bucket(bktSpool), tx.Bucket(bktSpoolMeta)
	var b *bolt.Bucket
	var st SpoolStats
	sink := ""
	flush := func() error {
		if b == nil {
			return nil
		}
		return meta.Put([]byte(sink), st.encode())
	}
	var hdr []byte
	for i := range outs {
		o := &outs[i]
		if b == nil || o.Sink != sink {
			if err := flush(); err != nil {
				return err
			}
			var err error
			if b, err = sp.CreateBucketIfNotExists([]byte(o.Sink)); err != nil {
				return fmt.Errorf("spool %q: %w", o.Sink, err)
			}
			// Keys are sequence numbers, appended in order: pack the leaves
			// (bbolt's default of half-full pages doubles the pages written).
			b.FillPercent = 1.0
			sink = o.Sink
			st = decodeSpoolMeta(meta.Get([]byte(sink)))
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		hdr = be64(hdr[:0], uint64(now))
		hdr = binary.AppendUvarint(hdr, uint64(len(o.ID)))
		v := x.stable(hdr, []byte(o.ID), o.Data)
		if err := b.Put(x.stable(be64(hdr[:0], seq)), v); err != nil {
			return fmt.Errorf("spool %q: %w", o.Sink, err)
		}
		st.Depth++
		st.Bytes += uint64(len(o.Data))
	}
	return flush()
}

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
	return x.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSpool).Bucket([]byte(sink))
		if b == nil {
			return nil
		}
		n := 0
		c := b.Cursor()
		for k, v := c.First(); k != nil && (max <= 0 || n < max); k, v = c.Next() {
			_, id, data, err := decodeSpoolEntry(v)
			if err != nil {
				return fmt.Errorf("storage: spool %q entry %x: %w", sink, k, err)
			}
			if err := fn(string(id), data); err != nil {
				return err
			}
			n++
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
	if err := x.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSpool).Bucket([]byte(sink))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if _, eid, _, err := decodeSpoolEntry(v); err == nil && string(eid) == id {
				found = true
				return nil
			}
		}
		return nil
	}); err != nil || !found {
		return 0, err
	}
	done := false
	return x.spoolDelete(ctx, sink, false, func(eid []byte) (bool, bool) {
		if done {
			return false, true
		}
		done = string(eid) == id
		return true, false
	})
}

func (x *DB) spoolDelete(ctx context.Context, sink string, lazy bool, match func(id []byte) (del, stop bool)) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	r := &request{kind: KindSpoolAck, lazy: lazy}
	r.apply = func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bktSpool).Bucket([]byte(sink))
		if b == nil {
			return nil
		}
		meta := tx.Bucket(bktSpoolMeta)
		st := decodeSpoolMeta(meta.Get([]byte(sink)))
		c := b.Cursor()
		var kbuf []byte
		for k, v := c.First(); k != nil; {
			_, id, data, err := decodeSpoolEntry(v)
			if err != nil {
				return fmt.Errorf("spool %q entry %x: %w", sink, k, err)
			}
			del, stop := match(id)
			if del {
				st.Depth--
				st.Bytes -= uint64(len(data))
				kc := append(kbuf[:0], k...)
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				// After Delete bbolt's Next may skip an entry: seek past the deleted key.
				k, v = c.Seek(kc)
			} else {
				k, v = c.Next()
			}
			if stop {
				break
			}
		}
		return meta.Put([]byte(sink), st.encode())
	}
	if err := x.submit(r); err != nil {
		return 0, fmt.Errorf("storage: spool %q ack: %w", sink, err)
	}
	return n, nil
}

// SpoolStats returns the spool statistics of every sink with a spool.
func (x *DB) SpoolStats() (map[string]SpoolStats, error) {
	out := map[string]SpoolStats{}
	err := x.view(func(tx *bolt.Tx) error {
		sp := tx.Bucket(bktSpool)
		return tx.Bucket(bktSpoolMeta).ForEach(func(k, v []byte) error {
			st := decodeSpoolMeta(v)
			if b := sp.Bucket(k); b != nil {
				if _, e := b.Cursor().First(); e != nil {
					if t, _, _, err := decodeSpoolEntry(e); err == nil {
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
