package storage

import (
	"bytes"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// upgradeLayout carries a file of format edged-storage/1 over to
// edged-storage/2, inside Open's transaction (so either all of it or none
// commits): the nested state buckets become one flat bucket per pipeline
// (upgradeFlatState), the pipelines' own records move out of ckpt
// (upgradePipeRecords), and the logs' and spools' buckets move to the root
// (upgradeRootBuckets).
func (x *DB) upgradeLayout(tx *bolt.Tx) error {
	if err := upgradeFlatState(tx); err != nil {
		return fmt.Errorf("storage: %q: upgrade the state from %s: %w", x.path, formatMagic1, err)
	}
	if err := upgradePipeRecords(tx); err != nil {
		return fmt.Errorf("storage: %q: upgrade the checkpoints from %s: %w", x.path, formatMagic1, err)
	}
	if err := upgradeRootBuckets(tx, bktLog, logName); err != nil {
		return fmt.Errorf("storage: %q: upgrade the input logs from %s: %w", x.path, formatMagic1, err)
	}
	if err := upgradeRootBuckets(tx, bktSpool, spoolName); err != nil {
		return fmt.Errorf("storage: %q: upgrade the spools from %s: %w", x.path, formatMagic1, err)
	}
	if err := tx.Bucket(bktMeta).Put(keyFormat, []byte(formatMagic)); err != nil {
		return err
	}
	x.log.Info("storage upgraded", "path", x.path, "from", formatMagic1, "to", formatMagic)
	return nil
}

// upgradeFlatState copies every state row of state/<pipeline>/<partition>/
// <namespace> ('k' + key -> value) to pstate/<pipeline> under its flat key
// (stateNSPrefix + key) and deletes the old buckets.
func upgradeFlatState(tx *bolt.Tx) error {
	ps, err := tx.CreateBucketIfNotExists(bktPState)
	if err != nil {
		return err
	}
	old := tx.Bucket(bktState)
	if old == nil {
		return nil
	}
	var key []byte
	err = old.ForEachBucket(func(pipe []byte) error {
		pb := old.Bucket(pipe)
		np, err := ps.CreateBucketIfNotExists(pipe)
		if err != nil {
			return err
		}
		return pb.ForEachBucket(func(pk []byte) error {
			part, err := strconv.Atoi(string(pk))
			if err != nil {
				return fmt.Errorf("pipeline %q: partition bucket %q: %w", pipe, pk, err)
			}
			part32 := pb.Bucket(pk)
			return part32.ForEachBucket(func(ns []byte) error {
				return part32.Bucket(ns).ForEach(func(k, v []byte) error {
					if v == nil || len(k) == 0 || k[0] != statePrefix {
						return nil // what Scan skipped
					}
					key = append(stateNSPrefix(key[:0], part, string(ns)), k[1:]...)
					return np.Put(key, bytes.Clone(v))
				})
			})
		})
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bktState)
}

// A source's log frames and a sink's spool are buckets of the root, named
// "log/<source>" and "spool/<sink>", not sub-buckets of a "log" and a
// "spool" bucket (format edged-storage/1): bbolt rewrites every page from a
// changed leaf up to the root, so each level of buckets costs a page per
// transaction, and an input-log append and an epoch commit each had one
// more (see doc.go, "Flash wear").
var (
	logPrefix   = []byte("log/")
	spoolPrefix = []byte("spool/")
)

// logName is the root bucket name of source's log.
func logName(source string) []byte {
	return append(logPrefix[:len(logPrefix):len(logPrefix)], source...)
}

// spoolName is the root bucket name of sink's spool.
func spoolName(sink string) []byte {
	return append(spoolPrefix[:len(spoolPrefix):len(spoolPrefix)], sink...)
}

// logBucket returns the frames bucket of source's log, or nil.
func logBucket(tx *bolt.Tx, source string) *bolt.Bucket { return tx.Bucket(logName(source)) }

// spoolBucket returns the spool bucket of sink, or nil.
func spoolBucket(tx *bolt.Tx, sink string) *bolt.Bucket { return tx.Bucket(spoolName(sink)) }

// upgradeRootBuckets moves every sub-bucket of the edged-storage/1 bucket
// old ("log" or "spool") to the root under name(its key): a frame bucket
// moves whole (bbolt rewrites only the leaves that reference it, not the
// frame's pages, so a large log costs its references, not its size), a
// plain value (an inline spool frame, an entry or frame of older files) is
// copied; the bucket's sequence (a spool's next number) is kept.
func upgradeRootBuckets(tx *bolt.Tx, old []byte, name func(string) []byte) error {
	ob := tx.Bucket(old)
	if ob == nil {
		return nil
	}
	var subs [][]byte
	if err := ob.ForEach(func(k, v []byte) error {
		if v != nil {
			return fmt.Errorf("%s: value %q where a bucket was expected", old, k)
		}
		subs = append(subs, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, sub := range subs {
		from := ob.Bucket(sub)
		to, err := tx.CreateBucket(name(string(sub)))
		if err != nil {
			return fmt.Errorf("%s %q: %w", old, sub, err)
		}
		to.FillPercent = 1.0 // keys only grow
		if err := to.SetSequence(from.Sequence()); err != nil {
			return err
		}
		var frames [][]byte
		err = from.ForEach(func(k, v []byte) error {
			if v == nil {
				frames = append(frames, bytes.Clone(k))
				return nil
			}
			return to.Put(bytes.Clone(k), bytes.Clone(v))
		})
		if err != nil {
			return fmt.Errorf("%s %q: %w", old, sub, err)
		}
		for _, k := range frames {
			if err := tx.MoveBucket(k, from, to); err != nil {
				return fmt.Errorf("%s %q frame %x: %w", old, sub, k, err)
			}
		}
	}
	return tx.DeleteBucket(old)
}

// upgradePipeRecords moves the checkpoints of partitions < 0 (pipeline
// records, layouts) from ckpt to pipes (see ckptBucket).
func upgradePipeRecords(tx *bolt.Tx) error {
	ck := tx.Bucket(bktCkpt)
	pipes, err := tx.CreateBucketIfNotExists(bktPipes)
	if err != nil {
		return err
	}
	var keys [][]byte
	if err := ck.ForEach(func(k, v []byte) error {
		if i := bytes.LastIndexByte(k, 0); i >= 0 && i+1 < len(k) && k[i+1] == '-' && v != nil {
			keys = append(keys, bytes.Clone(k))
			return pipes.Put(bytes.Clone(k), bytes.Clone(v))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := ck.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
