package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter is a record that a pipeline rejected, kept for listing and
// replay.
type DeadLetter struct {
	ID       uint64 // assigned by the store, increasing
	Pipeline string // the first pipeline that rejected it
	Source   string
	Step     string // empty for input that did not decode
	// Topic is the MQTT topic the message came on ("" for other inputs).
	Topic string
	// Log and Offset locate an input dead letter in the input log. The store
	// keeps one dead letter per logged message: a second pipeline rejecting
	// the same message adds its name to Pipelines.
	Log    string
	Offset uint64
	// Pipelines lists every pipeline that rejected the message (Pipeline
	// first).
	Pipelines []string
	Payload   []byte // the bytes received, or the rejected record as JSON
	Reason    string
	Time      time.Time
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	Pipeline string
	Step     string
	AfterID  uint64 // only IDs greater than this (paging)
}

// dlV2 starts a dead letter with topic, log position and pipeline list (an
// older entry starts with its time, whose first byte is never 0xFF).
const dlV2 = 0xFF

func encodeDeadLetter(d *DeadLetter) []byte {
	b := append([]byte(nil), dlV2)
	b = be64(b, uint64(d.Time.UnixNano()))
	pipes := d.Pipelines
	if len(pipes) == 0 && d.Pipeline != "" {
		pipes = []string{d.Pipeline}
	}
	for _, s := range []string{d.Pipeline, d.Source, d.Step, d.Reason, d.Topic, d.Log, strings.Join(pipes, "\x00")} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, d.Offset)
	return append(b, d.Payload...)
}

func decodeDeadLetter(id uint64, v []byte) (DeadLetter, error) {
	d := DeadLetter{ID: id}
	v2 := len(v) > 0 && v[0] == dlV2
	if v2 {
		v = v[1:]
	}
	if len(v) < 8 {
		return d, errors.New("short dead letter")
	}
	d.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	v = v[8:]
	f := make([]string, 4, 7)
	if v2 {
		f = f[:7]
	}
	for i := range f {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return d, errors.New("malformed dead letter")
		}
		f[i] = string(v[k : k+int(l)])
		v = v[k+int(l):]
	}
	d.Pipeline, d.Source, d.Step, d.Reason = f[0], f[1], f[2], f[3]
	if v2 {
		d.Topic, d.Log = f[4], f[5]
		if f[6] != "" {
			d.Pipelines = strings.Split(f[6], "\x00")
		}
		off, k := binary.Uvarint(v)
		if k <= 0 {
			return d, errors.New("malformed dead letter offset")
		}
		d.Offset, v = off, v[k:]
	}
	if len(d.Pipelines) == 0 && d.Pipeline != "" {
		d.Pipelines = []string{d.Pipeline}
	}
	d.Payload = append([]byte(nil), v...)
	return d, nil
}

// dlIndex is the bucket, inside the dead-letter metadata, that maps an input
// message (log, offset) to its dead letter's id.
var dlIndex = []byte("\x00by-input")

func dlIndexKey(log string, off uint64) []byte {
	return be64(append([]byte(log), 0), off)
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func addU64(b *bolt.Bucket, k []byte, d int64) error {
	return b.Put(k, be64(nil, uint64(int64(getU64(b, k))+d)))
}

// PutDeadLetter stores d (its ID is assigned) through the group committer, so
// the dead letters of an epoch share fsyncs with the log appends. The store is
// bounded by Options.MaxDeadLetters: beyond it the oldest entry is deleted and
// counted in Stats.DeadLettersDropped (visible as a metric, never silent).
func (x *DB) PutDeadLetter(ctx context.Context, d DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	r := &request{kind: KindDeadLetter}
	r.apply = func(tx *bolt.Tx) error { return x.putDeadLetter(tx, d) }
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: dead letter of pipeline %q: %w", d.Pipeline, err)
	}
	return nil
}

// putDeadLetter stores d in tx. An input dead letter (Log set) of a message
// that already has one adds d.Pipeline to its list instead of a second entry;
// a replayed epoch rejecting the same message again changes nothing.
func (x *DB) putDeadLetter(tx *bolt.Tx, d DeadLetter) error {
	b, meta, pm := tx.Bucket(bktDLQ), tx.Bucket(bktMeta), tx.Bucket(bktDLQMeta)
	var idx *bolt.Bucket
	if d.Log != "" {
		var err error
		if idx, err = pm.CreateBucketIfNotExists(dlIndex); err != nil {
			return err
		}
		if id := idx.Get(dlIndexKey(d.Log, d.Offset)); len(id) == 8 {
			if old := b.Get(id); old != nil {
				od, err := decodeDeadLetter(binary.BigEndian.Uint64(id), old)
				if err != nil {
					return err
				}
				if slices.Contains(od.Pipelines, d.Pipeline) {
					return nil
				}
				od.Pipelines = append(od.Pipelines, d.Pipeline)
				return b.Put(id, encodeDeadLetter(&od))
			}
		}
	}
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	v := encodeDeadLetter(&d)
	{
		for getU64(meta, keyDLQTotal) >= uint64(x.opt.MaxDeadLetters) {
			c := b.Cursor()
			k, old := c.First()
			if k == nil {
				break
			}
			od, err := decodeDeadLetter(0, old)
			if err == nil {
				if err := addU64(pm, []byte(od.Pipeline), -1); err != nil {
					return err
				}
				if err := unindexDeadLetter(pm, &od); err != nil {
					return err
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
			if err := addU64(meta, keyDLQTotal, -1); err != nil {
				return err
			}
			if err := addU64(meta, keyDLQDropped, 1); err != nil {
				return err
			}
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(be64(nil, seq), v); err != nil {
			return err
		}
		if idx != nil {
			if err := idx.Put(dlIndexKey(d.Log, d.Offset), be64(nil, seq)); err != nil {
				return err
			}
		}
		if err := addU64(pm, []byte(d.Pipeline), 1); err != nil {
			return err
		}
		return addU64(meta, keyDLQTotal, 1)
	}
}

// ListDeadLetters returns up to limit (<= 0: all) dead letters matching f,
// oldest first. Replay is: list, feed the payloads back, DeleteDeadLetters.
func (x *DB) ListDeadLetters(f DeadLetterFilter, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := x.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktDLQ).Cursor()
		for k, v := c.Seek(be64(nil, f.AfterID+1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			d, err := decodeDeadLetter(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("storage: dead letter %x: %w", k, err)
			}
			if (f.Pipeline == "" || f.Pipeline == d.Pipeline) && (f.Step == "" || f.Step == d.Step) {
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// DeleteDeadLetters deletes the dead letters with the given IDs (unknown IDs
// are ignored) and returns how many were deleted.
func (x *DB) DeleteDeadLetters(ctx context.Context, ids ...uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	r := &request{kind: KindDeadLetter}
	r.apply = func(tx *bolt.Tx) error {
		var err error
		n, err = deleteDeadLetters(tx, ids)
		return err
	}
	if err := x.submit(r); err != nil {
		return 0, fmt.Errorf("storage: delete dead letters: %w", err)
	}
	return n, nil
}

func deleteDeadLetters(tx *bolt.Tx, ids []uint64) (int, error) {
	n := 0
	b, meta, pm := tx.Bucket(bktDLQ), tx.Bucket(bktMeta), tx.Bucket(bktDLQMeta)
	for _, id := range ids {
		k := be64(nil, id)
		v := b.Get(k)
		if v == nil {
			continue
		}
		if d, err := decodeDeadLetter(id, v); err == nil {
			if err := addU64(pm, []byte(d.Pipeline), -1); err != nil {
				return n, err
			}
			if err := unindexDeadLetter(pm, &d); err != nil {
				return n, err
			}
		}
		if err := b.Delete(k); err != nil {
			return n, err
		}
		if err := addU64(meta, keyDLQTotal, -1); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ReplayDeadLetters appends recs to their input logs (by log name) and
// deletes the dead letters ids, in ONE transaction: a crash leaves either
// the dead letters or their replayed copies, never both and never neither.
// It returns how many dead letters were deleted and the last offset
// appended to each log. At the disk quota it returns ErrQuotaExceeded with
// nothing changed.
func (x *DB) ReplayDeadLetters(ctx context.Context, recs map[string][][]byte, ids []uint64) (int, map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if x.opt.QuotaBytes > 0 && x.quotaHit.Load() {
		return 0, nil, ErrQuotaExceeded
	}
	n := 0
	last := map[string]uint64{}
	r := &request{kind: KindDeadLetter}
	r.apply = func(tx *bolt.Tx) error {
		for name, rs := range recs {
			sub := &request{source: name, recs: rs, kind: KindLog}
			if err := x.addLog(tx, sub); err != nil {
				return err
			}
			last[name] = sub.last
		}
		var err error
		n, err = deleteDeadLetters(tx, ids)
		return err
	}
	if err := x.submit(r); err != nil {
		return 0, nil, fmt.Errorf("storage: replay dead letters: %w", err)
	}
	return n, last, nil
}

// unindexDeadLetter removes d from the input index.
func unindexDeadLetter(pm *bolt.Bucket, d *DeadLetter) error {
	if d.Log == "" {
		return nil
	}
	if idx := pm.Bucket(dlIndex); idx != nil {
		return idx.Delete(dlIndexKey(d.Log, d.Offset))
	}
	return nil
}

// DeadLetterCounts returns the number of stored dead letters per pipeline.
func (x *DB) DeadLetterCounts() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := x.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktDLQMeta).ForEach(func(k, v []byte) error {
			if len(v) == 8 && binary.BigEndian.Uint64(v) > 0 {
				out[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return out, err
}
