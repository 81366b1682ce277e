package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// snapMagic starts a partition snapshot stream (WritePartition).
const snapMagic = "edged-partition-snapshot-1\n"

// PartitionSnapshot is one pipeline partition's committed state as a peer
// sent it (ReadPartition): what a node that becomes a new holder of the
// partition installs (InstallPartition) before its runner restores it.
type PartitionSnapshot struct {
	// Checkpoint is the partition's own checkpoint (epoch, watermark).
	Checkpoint engine.Checkpoint
	// Pipeline is the pipeline's record (partition -1) of the same
	// transaction: the sender's input positions the state covers.
	Pipeline engine.Checkpoint
	// Extra is what the sender added (the node: its input anchors).
	Extra []byte
	// Rows are the state rows, by namespace then key, as stored.
	Rows []SnapshotRow
}

// SnapshotRow is one stored state row of a partition.
type SnapshotRow struct {
	Namespace string
	Key, Val  []byte // the stored key (with its prefix) and value
}

// WritePartition streams one partition's committed state as of the
// snapshot: magic, the partition's and the pipeline's checkpoints, extra
// (computed from the pipeline's checkpoint by the caller, may be nil), then
// every state row as uvarint-length-prefixed namespace, key and value, and
// a zero byte. It returns the number of rows written.
func (s *Snapshot) WritePartition(w io.Writer, pipeline string, partition int, extra func(pipe engine.Checkpoint) []byte) (int, error) {
	pcp := ckptBucket(s.tx, partition).Get(ckptKey(nil, pipeline, partition))
	ppl := ckptBucket(s.tx, -1).Get(ckptKey(nil, pipeline, -1))
	var ex []byte
	if extra != nil {
		cp, err := s.LastCheckpoint(pipeline, -1)
		if err != nil {
			return 0, err
		}
		ex = extra(cp)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	b = append(b, snapMagic...)
	for _, v := range [][]byte{pcp, ppl, ex} {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	if _, err := bw.Write(b); err != nil {
		return 0, err
	}
	rows := 0
	if pb := pipeState(s.tx, pipeline); pb != nil {
		prefix := statePartPrefix(nil, partition)
		c := pb.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ns, key, ok := splitStateKey(k)
			if v == nil || !ok {
				continue
			}
			// A row's key keeps the 'k' of the nested layout: the stream is
			// the same between versions.
			b = b[:0]
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(ns)))
			b = append(b, ns...)
			b = binary.AppendUvarint(b, uint64(len(key)+1))
			b = append(b, statePrefix)
			b = append(b, key...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
			rows++
			if _, err := bw.Write(b); err != nil {
				return rows, err
			}
		}
	}
	if err := bw.WriteByte(0); err != nil {
		return rows, err
	}
	return rows, bw.Flush()
}

// ReadPartition reads what WritePartition wrote.
func ReadPartition(r io.Reader) (*PartitionSnapshot, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	bad := func(what string, err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("partition snapshot: %s: %w", what, err)
	}
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapMagic {
		return nil, fmt.Errorf("partition snapshot: not a snapshot stream of this version")
	}
	field := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > 1<<30 {
			return nil, fmt.Errorf("field of %d bytes", n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	s := &PartitionSnapshot{}
	var head [3][]byte
	for i := range head {
		var err error
		if head[i], err = field(); err != nil {
			return nil, bad("header", err)
		}
	}
	for i, cp := range []*engine.Checkpoint{&s.Checkpoint, &s.Pipeline} {
		if len(head[i]) == 0 {
			continue
		}
		c, err := decodeCheckpoint(head[i])
		if err != nil {
			return nil, bad("checkpoint", err)
		}
		*cp = c
	}
	s.Extra = head[2]
	for {
		t, err := br.ReadByte()
		if err != nil {
			return nil, bad("rows", err)
		}
		if t == 0 {
			return s, nil
		}
		var f [3][]byte
		for i := range f {
			if f[i], err = field(); err != nil {
				return nil, bad("row "+strconv.Itoa(len(s.Rows)), err)
			}
		}
		s.Rows = append(s.Rows, SnapshotRow{Namespace: string(f[0]), Key: f[1], Val: f[2]})
	}
}

// InstallPartition replaces a partition's state with a snapshot's rows and
// its checkpoint with cp, in one durable transaction: a runner that
// restores the partition afterwards starts from exactly the snapshot.
func (x *DB) InstallPartition(ctx context.Context, pipeline string, partition int, rows []SnapshotRow, cp engine.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: KindEpoch, apply: func(tx *bolt.Tx) error {
		pb, err := tx.Bucket(bktPState).CreateBucketIfNotExists([]byte(pipeline))
		if err != nil {
			return err
		}
		pb.FillPercent = stateFill
		if err := deletePrefix(pb, statePartPrefix(nil, partition)); err != nil {
			return err
		}
		var key []byte
		for i := range rows {
			row := &rows[i]
			if len(row.Key) == 0 || row.Key[0] != statePrefix {
				continue // not a state row (Scan never gave it)
			}
			key = append(stateNSPrefix(key[:0], partition, row.Namespace), row.Key[1:]...)
			if err := pb.Put(key, row.Val); err != nil {
				return fmt.Errorf("state namespace %q: %w", row.Namespace, err)
			}
		}
		return ckptBucket(tx, partition).Put(ckptKey(nil, pipeline, partition), encodeCheckpoint(nil, cp.Epoch, cp.Watermark, cp.Input))
	}}
	if err := x.submit(r); err != nil {
		return fmt.Errorf("storage: install pipeline %q partition %d: %w", pipeline, partition, err)
	}
	return nil
}
