package storage_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/storage"
)

// TestAppendCommitsMarkAndDeadLettersWithRecords: a source's mark and the
// dead letters of an append are in the same transaction as its records,
// survive a reopen, and are not written when the append is refused.
func TestAppendCommitsMarkAndDeadLettersWithRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path, testOptions())
	ctx := context.Background()
	first, last, dropped, err := db.Append(ctx, &storage.Append{Log: "in", Recs: [][]byte{[]byte("a"), []byte("b"), []byte("a")},
		Dedup: true, MarkKey: "file/p/s", Mark: []byte("pos-1"),
		DeadLetters: []storage.DeadLetter{{Pipeline: "p", Source: "s", Topic: "$src/http/p/s", Payload: []byte("{bad"), Reason: "line 2: not JSON"}}})
	if err != nil || first != 1 || last != 2 || dropped != 1 {
		t.Fatalf("Append: %d..%d dropped %d, %v; want 1..2 dropped 1", first, last, dropped, err)
	}
	// Records without a mark keep the previous one.
	if _, _, _, err := db.Append(ctx, &storage.Append{Log: "in", Recs: [][]byte{[]byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path, testOptions())
	if m, err := db.Mark("file/p/s"); err != nil || string(m) != "pos-1" {
		t.Fatalf("Mark after reopen: %q, %v; want pos-1", m, err)
	}
	if m, _ := db.Mark("other"); m != nil {
		t.Fatalf("Mark of an unknown key: %q; want nil", m)
	}
	dls, err := db.ListDeadLetters(storage.DeadLetterFilter{Pipeline: "p"}, 0)
	if err != nil || len(dls) != 1 || string(dls[0].Payload) != "{bad" || dls[0].Topic != "$src/http/p/s" || dls[0].Time.IsZero() {
		t.Fatalf("dead letters: %+v, %v; want the one appended", dls, err)
	}
	var recs []string
	db.ReadLog("in", 1, 0, func(_ uint64, rec []byte) error { recs = append(recs, string(rec)); return nil })
	if len(recs) != 3 {
		t.Fatalf("log: %q; want a b c", recs)
	}
	if _, _, _, err := db.Append(ctx, &storage.Append{Log: "in", Mark: []byte("x")}); err == nil {
		t.Fatal("a mark without a key: got nil error")
	}
}

func TestAppendOverQuotaWritesNoMark(t *testing.T) {
	o := testOptions()
	o.QuotaBytes = 256 << 10
	o.Compression = storage.CompressNone
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	ctx := context.Background()
	big := make([][]byte, 64)
	for i := range big {
		big[i] = make([]byte, 1024)
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, _, _, err = db.Append(ctx, &storage.Append{Log: "s", Recs: big, MarkKey: "k", Mark: []byte{byte(i)}})
	}
	if !errors.Is(err, storage.ErrQuotaExceeded) {
		t.Fatalf("got %v; want ErrQuotaExceeded", err)
	}
	st, _ := db.Stats()
	m, _ := db.Mark("k")
	// Every committed append of 64 records carried mark i: the mark is the
	// last committed one, whose records are all in the log.
	if len(m) != 1 || uint64(m[0]+1)*64 != st.Log["s"].Records {
		t.Fatalf("mark %v with %d records logged: the refused append's mark was written", m, st.Log["s"].Records)
	}
}

// TestFailedAppendLeavesNoDedupTrace: the records of an append whose
// transaction failed (here its mark's key is too long for bbolt) are not
// remembered by the dedup window, so the retry logs them instead of dropping
// them as copies of records that were never committed.
func TestFailedAppendLeavesNoDedupTrace(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	if _, _, _, err := db.AppendLogDedup(ctx, "in", [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{[]byte("a"), []byte("b")}
	long := string(make([]byte, 40000)) // over bbolt's key limit
	if _, _, _, err := db.Append(ctx, &storage.Append{Log: "in", Recs: recs, Dedup: true, MarkKey: long, Mark: []byte("m")}); err == nil {
		t.Fatal("Append with a 40000-byte mark key succeeded; want an error")
	}
	first, last, dropped, err := db.AppendLogDedup(ctx, "in", recs)
	if err != nil || first != 2 || last != 3 || dropped != 0 {
		t.Fatalf("retry: %d..%d dropped %d, %v; want 2..3 dropped 0", first, last, dropped, err)
	}
	first, last, dropped, err = db.AppendLogDedup(ctx, "in", [][]byte{[]byte("b"), []byte("c"), []byte("c")})
	if err != nil || first != 4 || last != 4 || dropped != 2 {
		t.Fatalf("copies after the retry: %d..%d dropped %d, %v; want 4..4 dropped 2", first, last, dropped, err)
	}
}

// TestDedupAppendLargerThanTheHorizon: one append of many more records than
// the dedup horizon (the window's table holds the whole transaction until it
// commits) keeps them all, drops its own copies, and afterwards remembers
// only the last horizon records.
func TestDedupAppendLargerThanTheHorizon(t *testing.T) {
	o := testOptions()
	o.DedupHorizon = 16
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	ctx := context.Background()
	var recs [][]byte
	for i := range 5000 {
		recs = append(recs, []byte(fmt.Sprintf("r%d", i)))
	}
	recs = append(recs, recs[4990], recs[7])
	first, last, dropped, err := db.AppendLogDedup(ctx, "in", recs)
	if err != nil || first != 1 || last != 5000 || dropped != 2 {
		t.Fatalf("append of 5002: %d..%d dropped %d, %v; want 1..5000 dropped 2", first, last, dropped, err)
	}
	_, _, dropped, err = db.AppendLogDedup(ctx, "in", [][]byte{recs[4999], recs[4984], recs[4983], recs[0]})
	if err != nil || dropped != 2 {
		t.Fatalf("re-append of two in the window and two out of it: dropped %d, %v; want 2", dropped, err)
	}
}

// TestAppendOnceRecordsSkipTheDedupWindow: a record delivered at most once
// (Append.Once: MQTT QoS 0) is kept even when equal to a recent record or
// to one earlier in the same append, and does not enter the window, while
// the other records of the same appends are deduplicated as before.
func TestAppendOnceRecordsSkipTheDedupWindow(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	recs := records
	steps := []struct {
		recs        [][]byte
		once        []bool
		wantDropped int
		wantN       uint64
	}{
		{recs("a", "a", "q", "q"), []bool{false, false, true, true}, 1, 3}, // the second a is a copy; both q kept
		{recs("q", "a"), []bool{true, true}, 0, 2},                         // kept, equal or not to what the window holds
		{recs("q"), []bool{false}, 0, 1},                                   // no q entered the window: kept, and now in it
		{recs("q", "q"), []bool{false, true}, 1, 1},                        // the copy is dropped, the once record kept
	}
	for i, s := range steps {
		first, last, dropped, err := db.Append(ctx, &storage.Append{Log: "in", Recs: s.recs, Once: s.once, Dedup: true})
		if err != nil || dropped != s.wantDropped || last+1-first != s.wantN {
			t.Fatalf("step %d: %d..%d dropped %d, %v; want %d kept, %d dropped", i, first, last, dropped, err, s.wantN, s.wantDropped)
		}
	}
	if _, _, _, err := db.Append(ctx, &storage.Append{Log: "in", Recs: recs("a", "b"), Once: []bool{true}, Dedup: true}); err == nil {
		t.Error("Append with 1 Once flag for 2 records: got nil; want an error")
	}
}
