package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// TestPartitionSnapshotRoundTrip: a partition's state and checkpoint,
// written by one database's snapshot and installed into another that held
// stale state of the same partition, read back exactly as committed (the
// stale rows gone); other partitions are untouched; a truncated stream is
// an error, never a partial install.
func TestPartitionSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openDB(t, filepath.Join(t.TempDir(), "a.db"), testOptions())
	dst := openDB(t, filepath.Join(t.TempDir(), "b.db"), testOptions())
	c := &engine.Commit{Pipeline: "p", Partition: 3, Epoch: 7, Watermark: 12345, Input: map[string]uint64{"in": 9}}
	for i := range 500 {
		c.State = append(c.State, engine.StateOp{Namespace: fmt.Sprintf("ns%d", i%3), Key: fmt.Appendf(nil, "k%04d", i), Val: fmt.Appendf(nil, "v%d", i)})
	}
	pc := &engine.Commit{Pipeline: "p", Partition: -1, Epoch: 7, Watermark: engine.NoWatermark, Input: map[string]uint64{"mqtt": 42}}
	if err := src.CommitAll(ctx, []*engine.Commit{pc, c}); err != nil {
		t.Fatal(err)
	}
	stale := []*engine.Commit{
		{Pipeline: "p", Partition: 3, Epoch: 9, State: []engine.StateOp{{Namespace: "ns0", Key: []byte("stale"), Val: []byte("x")}}},
		{Pipeline: "p", Partition: 4, Epoch: 2, State: []engine.StateOp{{Namespace: "ns0", Key: []byte("other"), Val: []byte("y")}}},
	}
	if err := dst.CommitAll(ctx, stale); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var seen engine.Checkpoint
	err := src.View(func(s *storage.Snapshot) error {
		n, err := s.WritePartition(&buf, "p", 3, func(cp engine.Checkpoint) []byte { seen = cp; return []byte("extra") })
		if n != 500 {
			t.Errorf("wrote %d rows; want 500", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Input["mqtt"] != 42 {
		t.Errorf("extra saw the pipeline checkpoint %+v; want input mqtt 42", seen)
	}
	if _, err := storage.ReadPartition(bytes.NewReader(buf.Bytes()[:buf.Len()-3])); err == nil {
		t.Error("a truncated snapshot was read without error")
	}
	snap, err := storage.ReadPartition(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Checkpoint.Epoch != 7 || snap.Checkpoint.Watermark != 12345 || snap.Pipeline.Input["mqtt"] != 42 || string(snap.Extra) != "extra" || len(snap.Rows) != 500 {
		t.Fatalf("read back %+v %+v %q with %d rows", snap.Checkpoint, snap.Pipeline, snap.Extra, len(snap.Rows))
	}
	cp := snap.Checkpoint
	cp.Input["@log:mqtt"] = 77
	if err := dst.InstallPartition(ctx, "p", 3, snap.Rows, cp); err != nil {
		t.Fatal(err)
	}
	got, err := dst.LastCheckpoint("p", 3)
	if err != nil || got.Epoch != 7 || got.Watermark != 12345 || got.Input["@log:mqtt"] != 77 || got.Input["in"] != 9 {
		t.Errorf("installed checkpoint %+v, %v", got, err)
	}
	for ns := range 3 {
		var rows []string
		dst.Scan("p", 3, fmt.Sprintf("ns%d", ns), func(k, v []byte) error {
			rows = append(rows, string(k)+"="+string(v))
			return nil
		})
		var want []string
		src.Scan("p", 3, fmt.Sprintf("ns%d", ns), func(k, v []byte) error {
			want = append(want, string(k)+"="+string(v))
			return nil
		})
		if fmt.Sprint(rows) != fmt.Sprint(want) {
			t.Errorf("namespace ns%d: %d rows installed, want %d (%v)", ns, len(rows), len(want), rows[:min(3, len(rows))])
		}
	}
	other := 0
	dst.Scan("p", 4, "ns0", func(k, v []byte) error { other++; return nil })
	if other != 1 {
		t.Errorf("partition 4 has %d rows after installing partition 3; want its 1", other)
	}
}
