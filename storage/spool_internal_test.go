package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// A spool written before frames (an entry per output) is read, in order
// with the frames written after it, and acknowledged.
func TestSpoolReadsEntriesWrittenBeforeFrames(t *testing.T) {
	db := openUnsynced(t, filepath.Join(t.TempDir(), "edged.db"))
	ctx := context.Background()
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(spoolName("p/out"))
		if err != nil {
			return err
		}
		for i := range 2 {
			seq, _ := b.NextSequence()
			id := fmt.Sprintf("p/0/1/%d", i)
			v := be64(nil, 1767225600000)
			v = binary.AppendUvarint(v, uint64(len(id)))
			v = append(append(v, id...), fmt.Sprintf("old%d", i)...)
			if err := b.Put(be64(nil, seq), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bktSpoolMeta).Put([]byte("p/out"), SpoolStats{Depth: 2, Bytes: 8}.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 2, Outputs: []engine.Output{
		{Sink: "p/out", ID: "p/0/2/0", Data: []byte("new0")}, {Sink: "p/out", ID: "p/0/2/1", Data: []byte("new1")}}}); err != nil {
		t.Fatal(err)
	}
	read := func() (s string) {
		if err := db.SpoolRead("p/out", 0, func(id string, data []byte) error {
			s += id + "=" + string(data) + " "
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := read(), "p/0/1/0=old0 p/0/1/1=old1 p/0/2/0=new0 p/0/2/1=new1 "; got != want {
		t.Fatalf("read %q; want %q", got, want)
	}
	if n, err := db.SpoolAck(ctx, "p/out", "p/0/1/1", "p/0/2/0"); err != nil || n != 2 {
		t.Fatalf("SpoolAck: %d, %v; want 2", n, err)
	}
	if got, want := read(), "p/0/1/0=old0 p/0/2/1=new1 "; got != want {
		t.Fatalf("after acknowledging one of each: read %q; want %q", got, want)
	}
	st, err := db.SpoolStats()
	if err != nil || st["p/out"].Depth != 2 || st["p/out"].Bytes != 8 || st["p/out"].Oldest.UnixMilli() != 1767225600000 {
		t.Fatalf("SpoolStats: %+v, %v; want depth 2, 8 bytes, the old entry's time", st["p/out"], err)
	}
}
