package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgedio/edged/storage"
	bolt "go.etcd.io/bbolt"
)

// TestOpenRefusesDamagedFile protects the rule that edged never silently starts
// from empty state: a truncated or corrupted file fails Open with an error
// naming the file and what to do.
func TestOpenRefusesDamagedFile(t *testing.T) {
	populated := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "edged.db")
		o := testOptions()
		o.InitialMmapSize = 32 << 10
		o.Compression = storage.CompressNone
		db, err := storage.Open(p, o)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if _, _, err := db.AppendLog(context.Background(), "s", recs("x", 500)); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		return p
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, p string)
		want   string
	}{
		{"truncated", func(t *testing.T, p string) {
			if err := os.Truncate(p, 3*4096); err != nil {
				t.Fatal(err)
			}
		}, "references"},
		{"both meta pages overwritten", func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			defer f.Close()
			junk := []byte(strings.Repeat("\xAB", 200))
			f.WriteAt(junk, 0)
			f.WriteAt(junk, 4096)
		}, "no valid bbolt meta page"},
		{"shorter than a page", func(t *testing.T, p string) {
			os.Truncate(p, 100)
		}, "file is 100 bytes"},
		{"not a database", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(strings.Repeat("hello world\n", 2000)), 0o600)
		}, "bad magic"},
		{"bbolt file of another application", func(t *testing.T, p string) {
			os.Remove(p)
			b, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			b.Close()
		}, "without an edged meta bucket"},
		{"wrong format version", func(t *testing.T, p string) {
			b, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("edged-storage/99"))
			})
			b.Close()
		}, "format key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := populated(t)
			tc.damage(t, p)
			db, err := storage.Open(p, testOptions())
			if err == nil {
				db.Close()
				t.Fatalf("Open of a damaged file: got nil error; want ErrCorrupt")
			}
			msg := err.Error()
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(msg, p) || !strings.Contains(msg, tc.want) ||
				!strings.Contains(msg, "restore the file from a backup") {
				t.Fatalf("Open error: got %q; want ErrCorrupt naming %q, saying %q and what to do", msg, p, tc.want)
			}
			if fi, _ := os.Stat(p); fi.Size() == 0 {
				t.Fatal("Open replaced the damaged file with an empty one")
			}
		})
	}
}

func TestOpenIsExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edged.db")
	openDB(t, p, testOptions())
	o := testOptions()
	o.OpenTimeout = 1 // 1ns: fail at once
	if db, err := storage.Open(p, o); err == nil || !strings.Contains(err.Error(), "another edged") {
		if db != nil {
			db.Close()
		}
		t.Fatalf("second Open of a locked file: got %v; want an error saying another process holds it", err)
	}
}
