package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgedio/edged/storage"
)

type logEntry struct {
	off uint64
	at  int64
	rec string
}

func readEntries(t *testing.T, db *storage.DB, source string, from uint64, max int) []logEntry {
	t.Helper()
	var out []logEntry
	if err := db.ReadLogEntries(source, from, max, func(off uint64, at int64, rec []byte) error {
		out = append(out, logEntry{off, at, string(rec)})
		return nil
	}); err != nil {
		t.Fatalf("ReadLogEntries(%q, %d, %d): %v", source, from, max, err)
	}
	return out
}

// The in-memory tail serves a reader close behind the writers exactly what
// the file holds (offsets, append times, records, truncation), and a read
// that starts before it reads the file.
func TestLogTailReadsWhatTheFileHolds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "edged.db")
	o := testOptions()
	o.TailBytes = 600 // a few of the batches below
	db := openDB(t, path, o)
	rec := func(i int) []byte { return fmt.Appendf(nil, `{"sensor":"s%d","temp":%d.5}`, i%7, i) }
	next := 0
	for range 20 {
		var batch [][]byte
		for range 5 {
			batch = append(batch, rec(next))
			next++
		}
		if _, _, _, err := db.AppendLogDedup(ctx, "mqtt", batch); err != nil {
			t.Fatal(err)
		}
	}
	want := func(from uint64) []string {
		var w []string
		for i := int(from) - 1; i < next; i++ {
			w = append(w, string(rec(i)))
		}
		return w
	}
	recs := func(es []logEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.rec)
		}
		return out
	}
	st0, _ := db.Stats()
	near := readEntries(t, db, "mqtt", 96, 0) // in the tail
	st1, _ := db.Stats()
	if st1.Tail.Reads != st0.Tail.Reads+1 {
		t.Fatalf("a read of the last records did not use the tail: %+v -> %+v", st0.Tail, st1.Tail)
	}
	if !slices.Equal(recs(near), want(96)) || near[0].off != 96 {
		t.Fatalf("tail read from 96 = %v, want %v", near, want(96))
	}
	if got := readEntries(t, db, "mqtt", 97, 2); len(got) != 2 || got[0].off != 97 || got[1].off != 98 {
		t.Fatalf("tail read from 97, max 2 = %v", got)
	}
	if got := readEntries(t, db, "mqtt", uint64(next)+1, 0); len(got) != 0 {
		t.Fatalf("read past the end = %v, want nothing", got)
	}
	all := readEntries(t, db, "mqtt", 1, 0) // before the tail: the file
	st2, _ := db.Stats()
	if st2.Tail.Misses != st1.Tail.Misses+1 || st2.Tail.Reads != st1.Tail.Reads+1 {
		t.Fatalf("read from 1 should read the file: %+v -> %+v", st1.Tail, st2.Tail)
	}
	if !slices.Equal(recs(all), want(1)) {
		t.Fatalf("file read from 1 = %d records, want %d", len(all), next)
	}

	// Truncation: the tail skips what the file no longer holds.
	if err := db.TruncateLog(ctx, "mqtt", 98); err != nil {
		t.Fatal(err)
	}
	afterTrunc := readEntries(t, db, "mqtt", 90, 0) // 90..95 are gone
	fileFirst := readEntries(t, db, "mqtt", 1, 0)[0].off

	// The same reads from the file alone (a reopened DB has no tail) give the
	// same offsets, append times and records.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	o.TailBytes = -1
	db2 := openDB(t, path, o)
	if got := readEntries(t, db2, "mqtt", 90, 0); !slices.Equal(got, afterTrunc) {
		t.Fatalf("after truncation: tail gave %v, file gives %v", afterTrunc, got)
	}
	if afterTrunc[0].off != fileFirst {
		t.Fatalf("after truncation the tail starts at %d, the file at %d", afterTrunc[0].off, fileFirst)
	}
	if got := readEntries(t, db2, "mqtt", 96, 0); !slices.Equal(got[len(got)-3:], near[len(near)-3:]) {
		t.Fatalf("tail entries %v differ from the file's %v", near[len(near)-3:], got[len(got)-3:])
	}
}

// A reopened DB has no tail: the first reads go to the file.
func TestLogTailStartsEmptyAfterOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path, testOptions())
	if _, _, err := db.AppendLog(ctx, "file", [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, path, testOptions())
	if got := readEntries(t, db, "file", 1, 0); len(got) != 2 || got[1].rec != "b" {
		t.Fatalf("read after reopen = %v", got)
	}
	if st, _ := db.Stats(); st.Tail.Misses != 1 || st.Tail.Reads != 0 {
		t.Fatalf("tail stats after reopen = %+v, want one miss", st.Tail)
	}
	if _, _, err := db.AppendLog(ctx, "file", [][]byte{[]byte("c")}); err != nil {
		t.Fatal(err)
	}
	if got := readEntries(t, db, "file", 3, 0); len(got) != 1 || got[0].rec != "c" || got[0].at == 0 {
		t.Fatalf("tail read of the new record = %v", got)
	}
	if st, _ := db.Stats(); st.Tail.Reads != 1 {
		t.Fatalf("tail stats = %+v, want one read", st.Tail)
	}
}
