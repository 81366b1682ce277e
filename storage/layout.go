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
// (upgradeFlatState).
func (x *DB) upgradeLayout(tx *bolt.Tx) error {
	if err := upgradeFlatState(tx); err != nil {
		return fmt.Errorf("storage: %q: upgrade the state from %s: %w", x.path, formatMagic1, err)
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
