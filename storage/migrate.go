package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// Upgrading a data directory of edged 0.1 (one input log per pipeline
// source, named "<pipeline>/<source>"; one executor per pipeline, its
// checkpoint at partition 0; spools named by the sink alone, "<sink>", shared
// by the pipelines that had a sink of that name).
//
// Pipelines are upgraded one at a time, when they are loaded (at start, or
// when a pipeline written by the old version is applied later), each in ONE
// transaction: a crash leaves a pipeline either wholly in the old layout
// (and the next start upgrades it again) or wholly in the new.

// Upgrade says how one pipeline moves from the old layout to the new one.
type Upgrade struct {
	// Pipeline is the pipeline's name.
	Pipeline string
	// Sources maps each source of the pipeline to the input log that takes
	// over the entries of its old log ("<pipeline>/<source>") that the
	// pipeline had not consumed. The entries keep their offsets, so the old
	// checkpoint's position stays valid; the log must not exist yet.
	Sources map[string]string
	// Reads are the other logs the pipeline reads now: it starts at their
	// current end, as a new pipeline would.
	Reads []string
	// Sinks are the pipeline's sinks: its outputs still in the old spool of
	// a sink ("<sink>") move to Spool(sink), in order.
	Sinks []string
	// Spool names the spool of one of the pipeline's sinks in the new layout.
	Spool func(sink string) string
	// Record is the checkpoint partition of the pipeline's own record (its
	// epoch and input positions in the new layout). It is written with the
	// old checkpoint's epoch and the positions of Sources and Reads.
	Record int
	// Also are further commits applied in the same transaction (e.g. the
	// record of the partition count the old state is laid out in).
	Also []*engine.Commit
}

// UpgradeReport says what Upgrade moved.
type UpgradeReport struct {
	// Upgraded is false when the pipeline had nothing in the old layout.
	Upgraded bool
	// Epoch is the old checkpoint's epoch (0: none).
	Epoch uint64
	// Entries counts, per new log, the unconsumed entries moved to it.
	Entries map[string]uint64
	// Outputs counts, per new spool, the undelivered outputs moved to it.
	Outputs map[string]uint64
}

// OldLogName is the input log of a pipeline's source in edged 0.1.
func OldLogName(pipeline, source string) string { return pipeline + "/" + source }

// UpgradePipeline moves one pipeline's input, checkpoint and spooled outputs
// from the layout of edged 0.1 to the current one, in one transaction, if
// the pipeline is in the old layout: it has no record at u.Record, and it has
// a checkpoint at partition 0 or an old input log. Otherwise it does nothing.
// State stays where it is (partition 0), as does the old checkpoint, which
// the partition's executor restores.
func (x *DB) UpgradePipeline(ctx context.Context, u Upgrade) (UpgradeReport, error) {
	if err := ctx.Err(); err != nil {
		return UpgradeReport{}, err
	}
	// Most loads find nothing to do: find out without a write transaction.
	todo := false
	if err := x.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktLogMeta)
		if ckptBucket(tx, u.Record).Get(ckptKey(nil, u.Pipeline, u.Record)) != nil {
			return nil
		}
		todo = ckptBucket(tx, 0).Get(ckptKey(nil, u.Pipeline, 0)) != nil
		for src := range u.Sources {
			todo = todo || meta.Get([]byte(OldLogName(u.Pipeline, src))) != nil
		}
		return nil
	}); err != nil || !todo {
		return UpgradeReport{}, err
	}
	var rep UpgradeReport
	var newLogs map[string]LogStats
	var oldLogs []string
	r := &request{kind: KindEpoch}
	r.apply = func(tx *bolt.Tx) error {
		rep, newLogs, oldLogs = UpgradeReport{Entries: map[string]uint64{}, Outputs: map[string]uint64{}}, map[string]LogStats{}, nil
		if ckptBucket(tx, u.Record).Get(ckptKey(nil, u.Pipeline, u.Record)) != nil {
			return nil // already in the new layout
		}
		var old engine.Checkpoint
		v := ckptBucket(tx, 0).Get(ckptKey(nil, u.Pipeline, 0))
		if v != nil {
			var err error
			if old, err = decodeCheckpoint(v); err != nil {
				return fmt.Errorf("checkpoint of pipeline %q: %w", u.Pipeline, err)
			}
		}
		meta := tx.Bucket(bktLogMeta)
		hasOld := v != nil
		for src := range u.Sources {
			if meta.Get([]byte(OldLogName(u.Pipeline, src))) != nil {
				hasOld = true
			}
		}
		if !hasOld {
			return nil
		}
		rep.Upgraded, rep.Epoch = true, old.Epoch
		pos := map[string]uint64{}
		for _, lg := range u.Reads {
			pos[lg] = 1
			if s := x.logs[lg]; s != nil {
				pos[lg] = max(s.st.Next, 1)
			}
		}
		for src, to := range u.Sources {
			from := OldLogName(u.Pipeline, src)
			at := max(old.Input[src], 1)
			st, moved, err := x.moveLog(tx, from, to, at)
			if err != nil {
				return err
			}
			if st.Next == 0 { // no old log: the source starts at the new log's end
				at = 1
				if s := x.logs[to]; s != nil {
					at = max(s.st.Next, 1)
				}
			} else {
				newLogs[to] = st
				oldLogs = append(oldLogs, from)
				rep.Entries[to] = moved
			}
			pos[to] = at
		}
		for _, sk := range u.Sinks {
			n, err := x.moveSpool(tx, u.Pipeline, sk, u.Spool(sk))
			if err != nil {
				return err
			}
			if n > 0 {
				rep.Outputs[u.Spool(sk)] = n
			}
		}
		rec := &engine.Commit{Pipeline: u.Pipeline, Partition: u.Record, Epoch: old.Epoch,
			Watermark: engine.NoWatermark, Input: pos}
		if err := ckptBucket(tx, u.Record).Put(ckptKey(nil, u.Pipeline, u.Record), encodeCheckpoint(nil, rec.Epoch, rec.Watermark, rec.Input)); err != nil {
			return err
		}
		for _, c := range u.Also {
			if err := x.applyCommit(tx, c); err != nil {
				return err
			}
		}
		return nil
	}
	r.after = func() {
		x.statMu.Lock()
		defer x.statMu.Unlock()
		for _, lg := range oldLogs {
			delete(x.logs, lg)
			delete(x.logStats, lg)
		}
		for lg, st := range newLogs {
			x.logs[lg] = &logSource{name: lg, st: st}
			x.logStats[lg] = st
		}
	}
	if err := x.submit(r); err != nil {
		return UpgradeReport{}, fmt.Errorf("storage: upgrade pipeline %q from the old layout: %w", u.Pipeline, err)
	}
	return rep, nil
}

// moveLog moves the frames of log from holding entries at offsets >= at to
// log to (which must not exist), keeping their offsets and append times, and
// deletes log from. It returns the new log's metadata (zero when from does
// not exist) and how many entries at or after at it holds.
func (x *DB) moveLog(tx *bolt.Tx, from, to string, at uint64) (LogStats, uint64, error) {
	meta := tx.Bucket(bktLogMeta)
	mv := meta.Get([]byte(from))
	if mv == nil {
		return LogStats{}, 0, nil
	}
	ost, _, ok := decodeLogMeta(mv)
	if !ok {
		return LogStats{}, 0, &CorruptError{Path: x.path, Reason: fmt.Sprintf("log metadata of source %q is malformed", from)}
	}
	if meta.Get([]byte(to)) != nil || logBucket(tx, to) != nil {
		return LogStats{}, 0, fmt.Errorf("log %q: cannot take over the entries of %q: it exists already", to, from)
	}
	st := LogStats{First: ost.Next, Next: ost.Next}
	var moved uint64
	if ob := logBucket(tx, from); ob != nil {
		nb, err := tx.CreateBucket(logName(to))
		if err != nil {
			return LogStats{}, 0, fmt.Errorf("log %q: %w", to, err)
		}
		nb.FillPercent = 1.0
		c := ob.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			first := binary.BigEndian.Uint64(k)
			fv := frameValue(ob, k, v)
			n, ok := frameCount(fv)
			if !ok {
				return LogStats{}, 0, &FrameError{Source: from, Offset: first, Err: fmt.Errorf("bad frame header")}
			}
			if first+n <= at {
				continue // consumed
			}
			if st.Records == 0 {
				st.First = first
			}
			st.Records += n
			st.Bytes += uint64(len(fv))
			moved += min(n, first+n-at)
			if v != nil {
				err = nb.Put(k, v)
			} else {
				var fb *bolt.Bucket
				if fb, err = nb.CreateBucket(k); err == nil {
					fb.FillPercent = 1.0
					err = fb.Put(frameKey, fv)
					if t := ob.Bucket(k).Get(frameTimeKey); err == nil && t != nil {
						err = fb.Put(frameTimeKey, t)
					}
				}
			}
			if err != nil {
				return LogStats{}, 0, fmt.Errorf("log %q frame %d: %w", to, first, err)
			}
		}
		if err := tx.DeleteBucket(logName(from)); err != nil {
			return LogStats{}, 0, err
		}
	}
	if err := meta.Delete([]byte(from)); err != nil {
		return LogStats{}, 0, err
	}
	if err := meta.Put([]byte(to), encodeLogMeta(nil, st, false)); err != nil {
		return LogStats{}, 0, err
	}
	return st, moved, nil
}

// moveSpool moves the entries of pipeline in the old spool of sink (shared
// by every pipeline with a sink of that name) to the spool to, in order, and
// drops the old spool once empty. It returns how many it moved.
func (x *DB) moveSpool(tx *bolt.Tx, pipeline, sink, to string) (uint64, error) {
	meta := tx.Bucket(bktSpoolMeta)
	ob := spoolBucket(tx, sink)
	if ob == nil || sink == to {
		return 0, nil
	}
	prefix := []byte(pipeline + "/")
	ost := decodeSpoolMeta(meta.Get([]byte(sink)))
	var raw []byte
	var moved, bytesMoved uint64
	var first int64
	var f spoolFilter
	_, err := x.filterSpool(ob, sink, &ost, &f, func(id []byte) (bool, bool) {
		return bytes.HasPrefix(id, prefix), false
	}, func(t int64, id, data []byte) {
		if moved == 0 {
			first = t
		}
		raw = binary.AppendUvarint(raw, uint64(len(id)))
		raw = append(raw, id...)
		raw = binary.AppendUvarint(raw, uint64(len(data)))
		raw = append(raw, data...)
		moved++
		bytesMoved += uint64(len(data))
	})
	if err != nil || moved == 0 {
		return 0, err
	}
	nb, err := tx.CreateBucketIfNotExists(spoolName(to))
	if err != nil {
		return 0, fmt.Errorf("spool %q: %w", to, err)
	}
	nb.FillPercent = 1.0
	seq, err := nb.NextSequence()
	if err != nil {
		return 0, err
	}
	frame := x.stable(x.codec.compress(binary.AppendUvarint(nil, moved), raw))
	if err := x.putSpoolFrame(nb, seq, frame, first); err != nil {
		return 0, fmt.Errorf("spool %q: %w", to, err)
	}
	nst := decodeSpoolMeta(meta.Get([]byte(to)))
	nst.Depth += moved
	nst.Bytes += bytesMoved
	if err := meta.Put([]byte(to), nst.encode()); err != nil {
		return 0, err
	}
	if k, _ := ob.Cursor().First(); k == nil {
		if err := tx.DeleteBucket(spoolName(sink)); err != nil {
			return 0, err
		}
		return moved, meta.Delete([]byte(sink))
	}
	return moved, meta.Put([]byte(sink), ost.encode())
}

// DeleteLog removes an input log that nothing reads any more (its frames
// and its metadata). Use it only for a log no one appends to.
func (x *DB) DeleteLog(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: KindLogTruncate, apply: func(tx *bolt.Tx) error {
		if logBucket(tx, name) != nil {
			if err := tx.DeleteBucket(logName(name)); err != nil {
				return err
			}
		}
		return tx.Bucket(bktLogMeta).Delete([]byte(name))
	}}
	r.after = func() {
		x.statMu.Lock()
		delete(x.logs, name)
		delete(x.logStats, name)
		x.statMu.Unlock()
	}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: delete log %q: %w", name, err)
	}
	return nil
}
