package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

var _ engine.StateStore = (*DB)(nil)

// statePrefix precedes every stored state key, so that the engine's empty key
// (bbolt refuses empty keys) is storable; it keeps key order.
const statePrefix = 'k'

func ckptKey(b []byte, pipeline string, partition int) []byte {
	b = append(b, pipeline...)
	b = append(b, 0)
	return strconv.AppendInt(b, int64(partition), 10)
}

func encodeCheckpoint(b []byte, epoch uint64, wm int64, in map[string]uint64) []byte {
	b = be64(b, epoch)
	b = be64(b, uint64(wm))
	names := make([]string, 0, len(in))
	for s := range in {
		names = append(names, s)
	}
	sort.Strings(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, s := range names {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
		b = be64(b, in[s])
	}
	return b
}

func decodeCheckpoint(v []byte) (engine.Checkpoint, error) {
	bad := fmt.Errorf("malformed checkpoint (%d bytes)", len(v))
	if len(v) < 17 {
		return engine.Checkpoint{}, bad
	}
	cp := engine.Checkpoint{Epoch: binary.BigEndian.Uint64(v), Watermark: int64(binary.BigEndian.Uint64(v[8:]))}
	v = v[16:]
	n, k := binary.Uvarint(v)
	if k <= 0 {
		return cp, bad
	}
	v = v[k:]
	cp.Input = make(map[string]uint64, n)
	for range n {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l+8 {
			return cp, bad
		}
		name := string(v[k : k+int(l)])
		v = v[k+int(l):]
		cp.Input[name] = binary.BigEndian.Uint64(v)
		v = v[8:]
	}
	return cp, nil
}

// partBucket returns the state bucket of a pipeline partition, or nil.
func partBucket(tx *bolt.Tx, pipeline string, partition int) *bolt.Bucket {
	p := tx.Bucket(bktState).Bucket([]byte(pipeline))
	if p == nil {
		return nil
	}
	return p.Bucket(strconv.AppendInt(nil, int64(partition), 10))
}

// Commit implements engine.StateStore: the epoch's state changes, its
// checkpoint (epoch, watermark, input positions) and its outputs (appended to
// the spool of each sink) are written in ONE bbolt transaction, shared with
// whatever else the committer groups with it, and fsynced before Commit
// returns. An epoch not greater than the last committed one of the partition
// is refused: it would be a stale executor writing over newer state. Commit
// does not retain c; it returns only once bbolt is done with c's slices, so ctx
// bounds only the wait for queue space.
func (x *DB) Commit(ctx context.Context, c *engine.Commit) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: KindEpoch, apply: func(tx *bolt.Tx) error { return x.applyCommit(tx, c) }}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: commit pipeline %q partition %d epoch %d: %w", c.Pipeline, c.Partition, c.Epoch, err)
	}
	return nil
}

// CommitAll applies the commits of one epoch of a pipeline (one per
// partition that changed something, and the pipeline's own position record)
// in ONE transaction, with their dead letters, and fsyncs before returning:
// after a crash either the whole epoch is there or none of it. Each commit
// is checked and applied as Commit would. It does not retain cs.
func (x *DB) CommitAll(ctx context.Context, cs []*engine.Commit) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(cs) == 0 {
		return nil
	}
	r := &request{kind: KindEpoch, apply: func(tx *bolt.Tx) error {
		for _, c := range cs {
			if err := x.applyCommit(tx, c); err != nil {
				return fmt.Errorf("pipeline %q partition %d epoch %d: %w", c.Pipeline, c.Partition, c.Epoch, err)
			}
		}
		return nil
	}}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: commit pipeline %q epoch: %w", cs[0].Pipeline, err)
	}
	return nil
}

// stable copies b into the transaction arena: bbolt reads the slices given to
// Put until the transaction commits, so they must outlive the caller's buffers.
func (x *DB) stable(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	a := x.arena
	if len(a)+n > cap(a) {
		a = make([]byte, 0, max(2*cap(a), n, 64<<10))
	}
	start := len(a)
	for _, p := range parts {
		a = append(a, p...)
	}
	x.arena = a
	return a[start:len(a):len(a)]
}

func (x *DB) applyCommit(tx *bolt.Tx, c *engine.Commit) error {
	ck := tx.Bucket(bktCkpt)
	key := ckptKey(nil, c.Pipeline, c.Partition)
	if v := ck.Get(key); v != nil {
		last, err := decodeCheckpoint(v)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if c.Epoch <= last.Epoch {
			return fmt.Errorf("epoch %d is not after the committed epoch %d", c.Epoch, last.Epoch)
		}
	}
	if len(c.State) > 0 {
		pb, err := tx.Bucket(bktState).CreateBucketIfNotExists([]byte(c.Pipeline))
		if err != nil {
			return err
		}
		part, err := pb.CreateBucketIfNotExists(strconv.AppendInt(x.keyBuf[:0], int64(c.Partition), 10))
		if err != nil {
			return err
		}
		// Namespace buckets are looked up once per commit: ops usually come
		// grouped by namespace, and the map covers interleaved ones.
		clear(x.nsBuckets)
		var b *bolt.Bucket
		ns := ""
		for i := range c.State {
			op := &c.State[i]
			if b == nil || op.Namespace != ns {
				ns = op.Namespace
				if b = x.nsBuckets[ns]; b == nil {
					if b, err = part.CreateBucketIfNotExists([]byte(ns)); err != nil {
						return fmt.Errorf("state namespace %q: %w", ns, err)
					}
					x.nsBuckets[ns] = b
				}
			}
			// bbolt copies the key on Put and does not keep it on Delete, so
			// one scratch buffer serves every key.
			x.keyBuf = append(append(x.keyBuf[:0], statePrefix), op.Key...)
			if op.Delete {
				err = b.Delete(x.keyBuf)
			} else {
				// op.Val stays valid until Commit returns, which is after the commit.
				err = b.Put(x.keyBuf, op.Val)
			}
			if err != nil {
				return fmt.Errorf("state namespace %q: %w", ns, err)
			}
		}
		clear(x.nsBuckets)
	}
	if err := ck.Put(key, encodeCheckpoint(nil, c.Epoch, c.Watermark, c.Input)); err != nil {
		return err
	}
	for i := range c.DeadLetters {
		d := &c.DeadLetters[i]
		err := x.putDeadLetter(tx, DeadLetter{Pipeline: d.Pipeline, Source: d.Source, Step: d.Step,
			Topic: d.Topic, Log: d.Log, Offset: d.Offset, Payload: d.Payload, Reason: d.Reason,
			Time: time.UnixMilli(d.Time)})
		if err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
	}
	if err := x.applyTables(tx, c.Tables); err != nil {
		return err
	}
	x.spoolOutputs(c.Outputs)
	return nil
}

// LastCheckpoint implements engine.StateStore.
func (x *DB) LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error) {
	var cp engine.Checkpoint
	err := x.view(func(tx *bolt.Tx) error {
		var err error
		cp, err = (&Snapshot{tx: tx}).LastCheckpoint(pipeline, partition)
		return err
	})
	return cp, err
}

// Scan implements engine.StateStore. It runs in one read transaction, so it
// sees one committed epoch even while commits go on; key and val are valid only
// during fn. A long scan delays a commit that must grow the memory map.
func (x *DB) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	return x.view(func(tx *bolt.Tx) error {
		return (&Snapshot{tx: tx}).Scan(pipeline, partition, namespace, fn)
	})
}

// Snapshot is a consistent read-only view of the database: everything read
// through it belongs to the same committed transaction (bbolt MVCC). It is
// valid only inside the View callback.
type Snapshot struct{ tx *bolt.Tx }

// View calls fn with a snapshot. Queries that read several namespaces (or
// state and checkpoint together) use it to see one epoch. Commits proceed
// meanwhile; keep fn short.
func (x *DB) View(fn func(s *Snapshot) error) error {
	return x.view(func(tx *bolt.Tx) error { return fn(&Snapshot{tx: tx}) })
}

// LastCheckpoint returns the partition's checkpoint in the snapshot.
func (s *Snapshot) LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error) {
	v := s.tx.Bucket(bktCkpt).Get(ckptKey(nil, pipeline, partition))
	if v == nil {
		return engine.Checkpoint{}, nil
	}
	cp, err := decodeCheckpoint(v)
	if err != nil {
		return cp, fmt.Errorf("storage: pipeline %q partition %d: %w", pipeline, partition, err)
	}
	return cp, nil
}

// Scan calls fn for every state entry of a namespace in key order, as of the
// snapshot. key and val are valid only during fn.
func (s *Snapshot) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	part := partBucket(s.tx, pipeline, partition)
	if part == nil {
		return nil
	}
	b := part.Bucket([]byte(namespace))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil || len(k) == 0 || k[0] != statePrefix {
			continue
		}
		if err := fn(k[1:len(k):len(k)], v[:len(v):len(v)]); err != nil {
			return err
		}
	}
	return nil
}

// DeletePipeline frees what a deleted pipeline keeps: the checkpoints of
// all its partitions (and of the pipeline itself, so its input positions),
// its operator state and the entries of its own input logs (logs, e.g. its
// dead-letter replay log). The shared input log and the spool are not
// touched: the caller deletes a pipeline once its sinks drained their spools.
func (x *DB) DeletePipeline(ctx context.Context, pipeline string, logs ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: KindEpoch, apply: func(tx *bolt.Tx) error {
		ck := tx.Bucket(bktCkpt)
		prefix := append([]byte(pipeline), 0)
		c := ck.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if st := tx.Bucket(bktState); st.Bucket([]byte(pipeline)) != nil {
			if err := st.DeleteBucket([]byte(pipeline)); err != nil {
				return err
			}
		}
		return nil
	}}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: delete pipeline %q: %w", pipeline, err)
	}
	for _, lg := range logs {
		st, err := x.Stats()
		if err != nil {
			return err
		}
		if ls, ok := st.Log[lg]; ok && ls.Records > 0 {
			if err := x.TruncateLog(ctx, lg, ls.Next); err != nil {
				return err
			}
		}
	}
	return nil
}
