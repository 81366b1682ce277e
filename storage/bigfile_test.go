package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/edgedio/edged/storage"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bigEnv enables TestLargeDatabase (a size in MiB; e.g. EDGED_STORAGE_BIG_MB=400).
const bigEnv = "EDGED_STORAGE_BIG_MB"

// incompressible returns n bytes that zstd cannot shrink, so the file grows
// by what is appended.
func incompressible(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// TestLargeDatabase protects large files on 32-bit ARM: it grows a database
// to EDGED_STORAGE_BIG_MB MiB (the memory map with it, up to the 1 GiB
// MaxMapBytes default on 32-bit), then reads the first and last records,
// reopens and reads again. Skipped unless the variable is set (make test-arm
// sets 400), as it writes hundreds of MB.
func TestLargeDatabase(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv(bigEnv))
	if mb <= 0 || testing.Short() {
		t.Skipf("set %s=<MiB> to grow a database that large", bigEnv)
	}
	path := filepath.Join(t.TempDir(), "edged.db")
	o := testOptions()
	o.Compression = storage.CompressNone // the file grows by what is appended
	db, err := storage.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := incompressible(64<<10, 1)
	batch := make([][]byte, 16) // 1 MiB per append
	for i := range batch {
		batch[i] = rec
	}
	var last uint64
	for i := 0; i < mb; i++ {
		if _, last, err = db.AppendLog(ctx, "in", batch); err != nil {
			t.Fatalf("append %d MiB: %v", i, err)
		}
	}
	check := func(db *storage.DB) {
		t.Helper()
		for _, off := range []uint64{1, last} {
			n := 0
			if err := db.ReadLog("in", off, 1, func(o uint64, r []byte) error {
				if o != off || len(r) != len(rec) || r[0] != rec[0] || r[len(r)-1] != rec[len(rec)-1] {
					t.Fatalf("record %d: offset %d, %d bytes; want offset %d, %d bytes", off, o, len(r), off, len(rec))
				}
				n++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("read %d records at offset %d; want 1", n, off)
			}
		}
	}
	check(db)
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file %d MiB, %d records", st.FileBytes>>20, last)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path, o)
	check(db)
}

// TestMaxMapBytesRefusesGrowthCleanly protects the address-space cap: an
// append that would grow the file beyond MaxMapBytes fails with bbolt's
// ErrMaxSizeReached instead of crashing, and the database stays readable and
// writable for what fits.
func TestMaxMapBytesRefusesGrowthCleanly(t *testing.T) {
	o := testOptions()
	o.MaxMapBytes = 16 << 20
	o.InitialMmapSize = 1 << 20
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	ctx := context.Background()
	rec := [][]byte{incompressible(256<<10, 2)}
	var err error
	var last uint64
	for i := 0; i < 200; i++ {
		var l uint64
		if _, l, err = db.AppendLog(ctx, "in", rec); err != nil {
			break
		}
		last = l
	}
	if !errors.Is(err, bolterrors.ErrMaxSizeReached) {
		t.Fatalf("append past MaxMapBytes: got %v; want ErrMaxSizeReached", err)
	}
	n := 0
	if err := db.ReadLog("in", 1, 0, func(uint64, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if uint64(n) != last {
		t.Fatalf("read %d records after the refused append; want %d", n, last)
	}
	if err := db.TruncateLog(ctx, "in", last+1); err != nil {
		t.Fatalf("truncate after the refused append: %v", err)
	}
	if _, _, err := db.AppendLog(ctx, "in", rec); err != nil {
		t.Fatalf("append after truncation freed pages: %v", err)
	}
}
