package storage

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Append is one input-log append together with what must commit with it.
type Append struct {
	// Log is the input log appended to.
	Log string
	// Recs are the records, as for AppendLog.
	Recs [][]byte
	// Dedup drops redelivered copies, as AppendLogDedup does.
	Dedup bool
	// Once, when not nil, holds a flag per record of Recs: a record whose
	// flag is set was delivered at most once by its protocol (MQTT QoS 0,
	// not a retained copy), so no copy of it can come again. With Dedup it
	// is kept even when equal to a recent record (two equal readings are
	// two readings) and does not enter the dedup window.
	Once []bool
	// MarkKey names a source's position; Mark, when not nil, is stored
	// under it in the same transaction as Recs (see Mark), so that a
	// source resuming from its mark neither loses nor repeats a record.
	MarkKey string
	Mark    []byte
	// DeadLetters are stored in the same transaction (input that was
	// rejected before it reached the log, such as a malformed line of an
	// HTTP push).
	DeadLetters []DeadLetter
}

// markPrefix prefixes the keys of source marks in the meta bucket.
const markPrefix = "mark/"

// Append appends a.Recs to a.Log and commits a.Mark and a.DeadLetters in
// the same transaction: all of it is durable when it returns nil, none of
// it when it returns an error (ErrQuotaExceeded at the disk quota, with
// nothing written). It returns the offsets of the kept records and how many
// were dropped as copies, like AppendLogDedup. The committer is done with
// a's slices when Append returns.
func (x *DB) Append(ctx context.Context, a *Append) (first, last uint64, dropped int, err error) {
	if a.Log == "" {
		return 0, 0, 0, fmt.Errorf("storage: Append: empty log name")
	}
	if a.Mark != nil && a.MarkKey == "" {
		return 0, 0, 0, fmt.Errorf("storage: Append to %q: a mark without a key", a.Log)
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	if a.Once != nil && len(a.Once) != len(a.Recs) {
		return 0, 0, 0, fmt.Errorf("storage: Append to %q: %d flags in Once for %d records", a.Log, len(a.Once), len(a.Recs))
	}
	r := &request{source: a.Log, recs: a.Recs, once: a.Once, dedup: a.Dedup && x.opt.DedupHorizon > 0, kind: KindLog}
	if a.Mark != nil || len(a.DeadLetters) > 0 {
		now := time.Now()
		r.with = func(tx *bolt.Tx) error {
			if a.Mark != nil {
				if err := tx.Bucket(bktMeta).Put([]byte(markPrefix+a.MarkKey), a.Mark); err != nil {
					return err
				}
			}
			for _, d := range a.DeadLetters {
				if d.Time.IsZero() {
					d.Time = now
				}
				if err := x.putDeadLetter(tx, d); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := x.submit(r); err != nil {
		return 0, 0, 0, err
	}
	return r.first, r.last, r.drop, nil
}

// Mark returns the mark last committed under key by Append (a copy), or
// nil if there is none.
func (x *DB) Mark(key string) ([]byte, error) {
	var out []byte
	err := x.bdb.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktMeta).Get([]byte(markPrefix + key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	return out, err
}
