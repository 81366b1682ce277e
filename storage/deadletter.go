package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter is a record that a pipeline rejected, kept for listing and
// replay.
type DeadLetter struct {
	ID       uint64 // assigned by PutDeadLetter, increasing
	Pipeline string
	Source   string
	Step     string
	Payload  []byte
	Reason   string
	Time     time.Time
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	Pipeline string
	Step     string
	AfterID  uint64 // only IDs greater than this (paging)
}

func encodeDeadLetter(d *DeadLetter) []byte {
	b := be64(nil, uint64(d.Time.UnixNano()))
	for _, s := range []string{d.Pipeline, d.Source, d.Step, d.Reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, d.Payload...)
}

func decodeDeadLetter(id uint64, v []byte) (DeadLetter, error) {
	d := DeadLetter{ID: id}
	if len(v) < 8 {
		return d, errors.New("short dead letter")
	}
	d.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	v = v[8:]
	var f [4]string
	for i := range f {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return d, errors.New("malformed dead letter")
		}
		f[i] = string(v[k : k+int(l)])
		v = v[k+int(l):]
	}
	d.Pipeline, d.Source, d.Step, d.Reason = f[0], f[1], f[2], f[3]
	d.Payload = append([]byte(nil), v...)
	return d, nil
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
	v := encodeDeadLetter(&d)
	r := &request{kind: KindDeadLetter}
	r.apply = func(tx *bolt.Tx) error {
		b, meta, pm := tx.Bucket(bktDLQ), tx.Bucket(bktMeta), tx.Bucket(bktDLQMeta)
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
		if err := addU64(pm, []byte(d.Pipeline), 1); err != nil {
			return err
		}
		return addU64(meta, keyDLQTotal, 1)
	}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: dead letter of pipeline %q: %w", d.Pipeline, err)
	}
	return nil
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
		n = 0
		b, meta, pm := tx.Bucket(bktDLQ), tx.Bucket(bktMeta), tx.Bucket(bktDLQMeta)
		for _, id := range ids {
			k := be64(nil, id)
			v := b.Get(k)
			if v == nil {
				continue
			}
			if d, err := decodeDeadLetter(id, v); err == nil {
				if err := addU64(pm, []byte(d.Pipeline), -1); err != nil {
					return err
				}
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			if err := addU64(meta, keyDLQTotal, -1); err != nil {
				return err
			}
			n++
		}
		return nil
	}
	if err := x.submit(r); err != nil {
		return 0, fmt.Errorf("storage: delete dead letters: %w", err)
	}
	return n, nil
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
