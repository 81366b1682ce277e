package storage_test

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// buildState commits n keys of operator state through engine.StateStore in
// epochs of 25,000 puts (8-byte keys, 24-byte values, two namespaces) with real
// fsyncs, and returns the path of a copy of the file taken while the DB is
// still open: the file as a kill -9 after the last commit leaves it.
func buildState(t testing.TB, n int) string {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, "edged.db"), storage.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var store engine.StateStore = db
	const perEpoch = 25000
	arena := make([]byte, perEpoch*32)
	for e := 0; e*perEpoch < n; e++ {
		c := &engine.Commit{Pipeline: "p", Epoch: uint64(e + 1), Watermark: int64(e), Input: map[string]uint64{"in": uint64(e+1) * perEpoch}}
		for i := 0; i < perEpoch && e*perEpoch+i < n; i++ {
			id := uint64(e*perEpoch + i)
			k := binary.BigEndian.AppendUint64(arena[i*32:i*32], id)
			v := binary.BigEndian.AppendUint64(arena[i*32+8:i*32+8], id*3)
			v = append(v, "sum-count-max---"...)
			ns := "agg"
			if id%2 == 1 {
				ns = "win"
			}
			c.State = append(c.State, engine.StateOp{Namespace: ns, Key: k, Val: v})
		}
		if err := store.Commit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	// Copy the file while open: no clean Close.
	dst := filepath.Join(dir, "killed.db")
	src, err := os.Open(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// recoverToReady opens path and reads what a restarting node reads: the
// checkpoint and every state entry. It returns the number of entries.
func recoverToReady(t testing.TB, path string) (engine.Checkpoint, int) {
	db, err := storage.Open(path, storage.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cp, err := db.LastCheckpoint("p", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ns := range []string{"agg", "win"} {
		if err := db.Scan("p", 0, ns, func(k, v []byte) error {
			if len(k) != 8 || binary.BigEndian.Uint64(v) != 3*binary.BigEndian.Uint64(k) {
				t.Fatalf("namespace %s: entry %x = %x; want value 3*key", ns, k, v)
			}
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return cp, n
}

// TestRecoveryToReadyAfterKill protects restart after a kill: 100,000 keys of
// operator state (10,000 with -short) committed through engine.StateStore are
// all back, with the last checkpoint, from a copy of the file taken while it
// was open. It logs the time to ready; BenchmarkRecoveryToReady measures it.
func TestRecoveryToReadyAfterKill(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	path := buildState(t, n)
	start := time.Now()
	cp, got := recoverToReady(t, path)
	t.Logf("%d keys: recovery to ready (Open + LastCheckpoint + Scan) %v", n, time.Since(start))
	if got != n {
		t.Fatalf("recovered %d entries; want %d", got, n)
	}
	if want := uint64((n + 24999) / 25000); cp.Epoch != want {
		t.Fatalf("checkpoint epoch %d; want %d", cp.Epoch, want)
	}
}

// BenchmarkRecoveryToReady: Open + LastCheckpoint + Scan of 100,000 keys from
// a file copied while open (as after kill -9). Target < 1 s on a Pi.
func BenchmarkRecoveryToReady(b *testing.B) {
	path := buildState(b, 100000)
	b.ReportAllocs()
	for b.Loop() {
		if _, n := recoverToReady(b, path); n != 100000 {
			b.Fatalf("recovered %d entries; want 100000", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/recovery")
}
