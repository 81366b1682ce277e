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

// statePrefix preceded every state key in a namespace bucket of format
// edged-storage/1, so that the engine's empty key (bbolt refuses empty keys)
// was storable; partition snapshots still carry it.
const statePrefix = 'k'

func ckptKey(b []byte, pipeline string, partition int) []byte {
	b = append(b, pipeline...)
	b = append(b, 0)
	return strconv.AppendInt(b, int64(partition), 10)
}

// The checkpoints of a pipeline's own records (partition < 0: the input
// positions and journal that every epoch commits, its partition layout) are
// in the bucket pipes, those of its partitions (written with their state) in
// ckpt: an epoch commit then rewrites the small leaf of the pipelines'
// records only, which the partitions' checkpoints would make a branch and
// two or three leaves (see doc.go, "Flash wear").
func ckptBucket(tx *bolt.Tx, partition int) *bolt.Bucket {
	if partition < 0 {
		return tx.Bucket(bktPipes)
	}
	return tx.Bucket(bktCkpt)
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

// The state of a pipeline is ONE bucket, pstate/<pipeline>, whose keys are
// the partition (a varint), the namespace (uvarint length, name) and the
// engine's key: a bucket without sub-buckets, so that bbolt keeps a small
// state (a watermark and an idle record per partition, a few sessions)
// inline in the leaf of pstate, and an epoch commit of a pipeline's state
// writes the leaves its keys are on and no page per partition or namespace
// (see doc.go, "Flash wear"). Both parts of the prefix are prefix-free, so
// a partition's rows, and a namespace's within them, are a key range.
// Files of format edged-storage/1 nest partition and namespace buckets;
// Open carries them over (upgradeFlatState).

// stateFill is the fill of the state buckets' pages when bbolt splits them.
// A state commit rewrites every leaf a changed key is on, which for state
// updated by every reading (per-sensor alert rules, anomaly models) is all
// of them: pages split at 70% instead of bbolt's half make it write fewer
// (the default install's alert rules: 6 leaves instead of 8). Leaves that
// keys are inserted into split differently with the fill, and what that
// costs depends on the order of the inserts: BenchmarkEpochCommit (10,000
// of 100,000 keys changed per commit, inserted in strides over the first
// commits) writes 4.0 MB a commit at 70%, 4.6 at 50% and 80%, 6.1 at 60%
// and 7.7 at 90% (4.3 in the nested layout of edged-storage/1 at 50%).
const stateFill = 0.7

// stateNSPrefix appends the key prefix of a partition's namespace.
func stateNSPrefix(b []byte, partition int, ns string) []byte {
	b = binary.AppendVarint(b, int64(partition))
	b = binary.AppendUvarint(b, uint64(len(ns)))
	return append(b, ns...)
}

// statePartPrefix appends the key prefix of a partition's state.
func statePartPrefix(b []byte, partition int) []byte {
	return binary.AppendVarint(b, int64(partition))
}

// splitStateKey returns the namespace and the engine's key of a flat state
// key.
func splitStateKey(k []byte) (ns, key []byte, ok bool) {
	_, p := binary.Varint(k)
	if p <= 0 {
		return nil, nil, false
	}
	l, n := binary.Uvarint(k[p:])
	if n <= 0 || uint64(len(k)-p-n) < l {
		return nil, nil, false
	}
	return k[p+n : p+n+int(l)], k[p+n+int(l):], true
}

// pipeState returns the state bucket of a pipeline, or nil.
func pipeState(tx *bolt.Tx, pipeline string) *bolt.Bucket {
	return tx.Bucket(bktPState).Bucket([]byte(pipeline))
}

// deletePrefix deletes the keys of b that start with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
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
	ck := ckptBucket(tx, c.Partition)
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
		pb, err := tx.Bucket(bktPState).CreateBucketIfNotExists([]byte(c.Pipeline))
		if err != nil {
			return err
		}
		pb.FillPercent = stateFill
		ns := ""
		var prefix int
		for i := range c.State {
			op := &c.State[i]
			if i == 0 || op.Namespace != ns {
				ns = op.Namespace
				x.nsBuf = stateNSPrefix(x.nsBuf[:0], c.Partition, ns)
				prefix = len(x.nsBuf)
			}
			// bbolt copies the key on Put and does not keep it on Delete, so
			// one scratch buffer serves every key.
			x.nsBuf = append(x.nsBuf[:prefix], op.Key...)
			if op.Delete {
				err = pb.Delete(x.nsBuf)
			} else {
				// op.Val stays valid until Commit returns, which is after the commit.
				err = pb.Put(x.nsBuf, op.Val)
			}
			if err != nil {
				return fmt.Errorf("state namespace %q: %w", ns, err)
			}
		}
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
	v := ckptBucket(s.tx, partition).Get(ckptKey(nil, pipeline, partition))
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
	pb := pipeState(s.tx, pipeline)
	if pb == nil {
		return nil
	}
	prefix := stateNSPrefix(nil, partition, namespace)
	c := pb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if v == nil {
			continue
		}
		if err := fn(k[len(prefix):len(k):len(k)], v[:len(v):len(v)]); err != nil {
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
		prefix := append([]byte(pipeline), 0)
		for _, ck := range [][]byte{bktCkpt, bktPipes} {
			if err := deletePrefix(tx.Bucket(ck), prefix); err != nil {
				return err
			}
		}
		if st := tx.Bucket(bktPState); st.Bucket([]byte(pipeline)) != nil {
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
