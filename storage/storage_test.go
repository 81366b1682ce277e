package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/storage/storagetest"
)

// testOptions are fast options for tests: no fsync, natural group commit.
func testOptions() storage.Options {
	o := storage.DefaultOptions()
	o.Sync = storage.SyncNever
	o.GroupMaxDelay = 0
	return o
}

func openDB(t testing.TB, path string, o storage.Options) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reopenable wraps a DB for the conformance suite's durability test.
type reopenable struct {
	*storage.DB
	t    *testing.T
	path string
}

func (r *reopenable) Reopen() (engine.StateStore, error) {
	if err := r.DB.Close(); err != nil {
		return nil, err
	}
	db := openDB(r.t, r.path, testOptions())
	return &reopenable{db, r.t, r.path}, nil
}

func TestStateStoreConformance(t *testing.T) {
	t.Run("MemStore", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) engine.StateStore { return engine.NewMemStore() })
	})
	t.Run("DB", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) engine.StateStore {
			p := filepath.Join(t.TempDir(), "edged.db")
			return &reopenable{openDB(t, p, testOptions()), t, p}
		})
	})
}

func readAll(t *testing.T, db *storage.DB, src string, from uint64, max int) (offs []uint64, recs []string) {
	t.Helper()
	if err := db.ReadLog(src, from, max, func(off uint64, rec []byte) error {
		offs = append(offs, off)
		recs = append(recs, string(rec))
		return nil
	}); err != nil {
		t.Fatalf("ReadLog: %v", err)
	}
	return offs, recs
}

// records returns one record per string.
func records(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

func recs(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"dev":"%s-%d","temp":%d.5}`, prefix, i%7, i)
	}
	return out
}

func TestInputLogAppendReadTruncate(t *testing.T) {
	for _, comp := range []storage.Compression{storage.CompressZstd, storage.CompressS2, storage.CompressNone} {
		t.Run(fmt.Sprint(comp), func(t *testing.T) {
			o := testOptions()
			o.Compression = comp
			p := filepath.Join(t.TempDir(), "edged.db")
			db := openDB(t, p, o)
			ctx := context.Background()
			var want []string
			for g := 0; g < 5; g++ {
				rs := recs(fmt.Sprint("g", g), 10+g)
				first, last, err := db.AppendLog(ctx, "s", rs)
				if err != nil {
					t.Fatal(err)
				}
				if first != uint64(len(want))+1 || last != first+uint64(len(rs))-1 {
					t.Fatalf("group %d: got offsets %d..%d; want %d..%d", g, first, last, len(want)+1, len(want)+len(rs))
				}
				for _, r := range rs {
					want = append(want, string(r))
				}
			}
			offs, got := readAll(t, db, "s", 0, 0)
			if strings.Join(got, "\n") != strings.Join(want, "\n") || offs[0] != 1 || offs[len(offs)-1] != uint64(len(want)) {
				t.Fatalf("ReadLog from 0: got %d records (offsets %d..%d); want %d", len(got), offs[0], offs[len(offs)-1], len(want))
			}
			// From the middle of a frame, bounded.
			offs, got = readAll(t, db, "s", 15, 4)
			if fmt.Sprint(offs) != "[15 16 17 18]" || got[0] != want[14] {
				t.Fatalf("ReadLog(from 15, max 4): got %v %q; want [15 16 17 18] starting %q", offs, got[0], want[14])
			}
			if offs, _ := readAll(t, db, "s", 1000, 0); len(offs) != 0 {
				t.Fatalf("ReadLog past the end: got %v; want nothing", offs)
			}
			// Truncation drops whole frames below the position only.
			if err := db.TruncateLog(ctx, "s", 25); err != nil {
				t.Fatal(err)
			}
			st, _ := db.Stats()
			ls := st.Log["s"]
			if ls.First != 22 || ls.Next != 61 || ls.Records != 39 {
				t.Fatalf("after TruncateLog(25): got %+v; want First 22 (frame start), Next 61, Records 39", ls)
			}
			offs, _ = readAll(t, db, "s", 0, 0)
			if offs[0] != 22 {
				t.Fatalf("ReadLog after truncation: first offset %d; want 22", offs[0])
			}
			// Offsets survive a reopen.
			db.Close()
			db = openDB(t, p, o)
			first, _, err := db.AppendLog(ctx, "s", recs("x", 1))
			if err != nil || first != 61 {
				t.Fatalf("append after reopen: got first %d, %v; want 61", first, err)
			}
		})
	}
}

func TestAppendLogDedupDropsRedeliveries(t *testing.T) {
	o := testOptions()
	o.DedupHorizon = 4
	p := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, p, o)
	ctx := context.Background()
	r := records
	// Before the first AppendLogDedup the source has no window: AppendLog
	// keeps equal records, and they enter the window once it is built.
	if _, last, err := db.AppendLog(ctx, "s", r("x", "x")); err != nil || last != 2 {
		t.Fatalf("AppendLog: got last %d, %v; want 2", last, err)
	}
	steps := []struct {
		recs        [][]byte
		wantDropped int
		wantFirst   uint64
		wantLast    uint64
	}{
		{r("x", "a", "b", "a"), 2, 3, 4}, // x from AppendLog; a twice within the call
		{r("b", "c"), 1, 5, 5},           // b seen before
		{r("a", "d", "e"), 1, 6, 7},      // a still within the horizon of 4 (a b c d)
		{r("a"), 0, 8, 8},                // a fell out of the horizon (b c d e)
		{r("e", "e"), 2, 9, 8},           // all dropped: empty range
		{r("A"), 0, 9, 9},                // byte for byte: case matters
	}
	for i, s := range steps {
		first, last, dropped, err := db.AppendLogDedup(ctx, "s", s.recs)
		if err != nil || dropped != s.wantDropped || first != s.wantFirst || last != s.wantLast {
			t.Fatalf("step %d: got %d..%d dropped %d, %v; want %d..%d dropped %d", i, first, last, dropped, err, s.wantFirst, s.wantLast, s.wantDropped)
		}
	}
	// Once the source deduplicates, AppendLog's records enter the window.
	if _, _, err := db.AppendLog(ctx, "s", r("f")); err != nil {
		t.Fatal(err)
	}
	if _, _, dropped, err := db.AppendLogDedup(ctx, "s", r("f")); err != nil || dropped != 1 {
		t.Fatalf("after AppendLog: got dropped %d, %v; want 1 (f remembered)", dropped, err)
	}
	// The window is rebuilt from the log's records at open (new hash seeds).
	db.Close()
	db = openDB(t, p, o)
	_, _, dropped, err := db.AppendLogDedup(ctx, "s", r("A", "zz"))
	if err != nil || dropped != 1 {
		t.Fatalf("after reopen: got dropped %d, %v; want 1 (A remembered)", dropped, err)
	}
	st, _ := db.Stats()
	if st.DedupDropped != 1 {
		t.Fatalf("Stats.DedupDropped after reopen: got %d; want 1", st.DedupDropped)
	}
	// Another source has a window of its own.
	if _, _, dropped, err := db.AppendLogDedup(ctx, "t", r("zz")); err != nil || dropped != 0 {
		t.Fatalf("source t: got dropped %d, %v; want 0", dropped, err)
	}
}

// TestAppendLogDedupStoresNoKeys protects the flash-wear budget: the dedup
// window costs no bytes in the log (each record carries an empty key).
func TestAppendLogDedupStoresNoKeys(t *testing.T) {
	o := testOptions()
	o.Compression = storage.CompressNone
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	ctx := context.Background()
	recs := recs("reading", 100)
	if _, _, _, err := db.AppendLogDedup(ctx, "s", recs); err != nil {
		t.Fatal(err)
	}
	raw := 0
	for _, r := range recs {
		raw += len(r)
	}
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Per record: a key length byte (0), a length byte and the record; the
	// frame adds a count and a codec byte.
	if got, want := st.Log["s"].Bytes, uint64(raw+2*len(recs)+2); got != want {
		t.Fatalf("stored frame bytes: got %d; want %d (records %d bytes)", got, want, raw)
	}
}

func TestGroupCommitBatchesConcurrentAppends(t *testing.T) {
	o := testOptions()
	o.GroupMaxDelay = 1 << 62 // commit only when GroupMaxRecords are queued
	o.GroupMaxRecords = 40
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	var wg sync.WaitGroup
	seen := make([][2]uint64, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, l, err := db.AppendLog(context.Background(), "s", recs("c", 1))
			if err != nil {
				t.Error(err)
			}
			seen[i] = [2]uint64{f, l}
		}()
	}
	wg.Wait()
	st, _ := db.Stats()
	if st.Commits != 1 || st.RecordsAppended != 40 {
		t.Fatalf("40 concurrent appends: got %d commits, %d records; want 1 commit, 40 records", st.Commits, st.RecordsAppended)
	}
	used := map[uint64]bool{}
	for _, s := range seen {
		if s[0] != s[1] || used[s[0]] || s[0] < 1 || s[0] > 40 {
			t.Fatalf("offsets %v: want distinct single offsets in 1..40", seen)
		}
		used[s[0]] = true
	}
}

func TestSpoolReadAck(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	for e := uint64(1); e <= 3; e++ {
		var outs []engine.Output
		for i := range 3 {
			outs = append(outs, engine.Output{Sink: "out", ID: fmt.Sprintf("p/0/%d/%d", e, i), Data: fmt.Appendf(nil, "%d.%d", e, i)})
		}
		outs = append(outs, engine.Output{Sink: "mqtt", ID: fmt.Sprintf("p/0/%d/9", e), Data: []byte("m")})
		if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: e, Outputs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(sink string, max int) string {
		var out []string
		if err := db.SpoolRead(sink, max, func(id string, data []byte) error { out = append(out, id+"="+string(data)); return nil }); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, " ")
	}
	if got, want := ids("out", 4), "p/0/1/0=1.0 p/0/1/1=1.1 p/0/1/2=1.2 p/0/2/0=2.0"; got != want {
		t.Fatalf("SpoolRead: got %s; want %s", got, want)
	}
	if n, err := db.SpoolAck(ctx, "out", "p/0/1/1", "p/0/1/0", "nope"); err != nil || n != 2 {
		t.Fatalf("SpoolAck: got %d, %v; want 2", n, err)
	}
	if n, err := db.SpoolAckThrough(ctx, "out", "p/0/2/1"); err != nil || n != 3 {
		t.Fatalf("SpoolAckThrough: got %d, %v; want 3", n, err)
	}
	if got, want := ids("out", 0), "p/0/2/2=2.2 p/0/3/0=3.0 p/0/3/1=3.1 p/0/3/2=3.2"; got != want {
		t.Fatalf("SpoolRead after acks: got %s; want %s", got, want)
	}
	st, err := db.SpoolStats()
	if err != nil || st["out"].Depth != 4 || st["mqtt"].Depth != 3 || st["out"].Oldest.IsZero() {
		t.Fatalf("SpoolStats: got %+v, %v; want out depth 4 with an oldest time, mqtt depth 3", st, err)
	}
}

func TestDeadLettersBoundedAndCounted(t *testing.T) {
	o := testOptions()
	o.MaxDeadLetters = 3
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	ctx := context.Background()
	for i := range 5 {
		pl := []string{"a", "b"}[i%2]
		if err := db.PutDeadLetter(ctx, storage.DeadLetter{Pipeline: pl, Source: "mqtt", Step: "parse",
			Payload: fmt.Appendf(nil, "bad%d", i), Reason: "not JSON"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.ListDeadLetters(storage.DeadLetterFilter{}, 0)
	if err != nil || len(all) != 3 || string(all[0].Payload) != "bad2" || all[0].Reason != "not JSON" {
		t.Fatalf("ListDeadLetters: got %d (%v); want the newest 3 starting with bad2", len(all), err)
	}
	a, _ := db.ListDeadLetters(storage.DeadLetterFilter{Pipeline: "a"}, 0)
	if len(a) != 2 {
		t.Fatalf("ListDeadLetters(pipeline a): got %d; want 2", len(a))
	}
	st, _ := db.Stats()
	if st.DeadLetters != 3 || st.DeadLettersDropped != 2 || st.DeadLettersByPipeline["a"] != 2 || st.DeadLettersByPipeline["b"] != 1 {
		t.Fatalf("Stats: got %d stored, %d dropped, by pipeline %v; want 3, 2, a=2 b=1", st.DeadLetters, st.DeadLettersDropped, st.DeadLettersByPipeline)
	}
	if n, err := db.DeleteDeadLetters(ctx, a[0].ID, a[1].ID, 999); err != nil || n != 2 {
		t.Fatalf("DeleteDeadLetters: got %d, %v; want 2", n, err)
	}
	if c, _ := db.DeadLetterCounts(); c["a"] != 0 || c["b"] != 1 {
		t.Fatalf("DeadLetterCounts after delete: got %v; want b=1 only", c)
	}
}

func TestQuotaBackPressuresAppends(t *testing.T) {
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
		_, _, err = db.AppendLog(ctx, "s", big)
	}
	if !errors.Is(err, storage.ErrQuotaExceeded) {
		t.Fatalf("appending 6.4 MB under a 256 KiB quota: got %v; want ErrQuotaExceeded", err)
	}
	st, _ := db.Stats()
	if !st.QuotaExceeded {
		t.Fatalf("Stats.QuotaExceeded: got false; want true")
	}
	// Epoch commits still go through, and truncation frees the quota.
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 1, Input: map[string]uint64{"s": st.Log["s"].Next}}); err != nil {
		t.Fatalf("Commit over quota: %v", err)
	}
	if err := db.TruncateLog(ctx, "s", st.Log["s"].Next); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AppendLog(ctx, "s", big[:1]); err != nil {
		t.Fatalf("append after truncation: %v; want nil", err)
	}
}

func TestCompactKeepsDataAndShrinks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edged.db")
	o := testOptions()
	o.Compression = storage.CompressNone
	o.InitialMmapSize = 32 << 10
	db := openDB(t, p, o)
	ctx := context.Background()
	for range 50 {
		if _, _, err := db.AppendLog(ctx, "s", recs("c", 500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 1, State: []engine.StateOp{{Namespace: "n", Key: []byte("k"), Val: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.TruncateLog(ctx, "s", 24001); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := db.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	after, _ := os.Stat(p)
	if after.Size() >= before.Size() {
		t.Fatalf("file size after Compact: got %d; want < %d", after.Size(), before.Size())
	}
	offs, _ := readAll(t, db, "s", 0, 0)
	if len(offs) != 1000 || offs[0] != 24001 {
		t.Fatalf("log after Compact: got %d records from %d; want 1000 from 24001", len(offs), offs[0])
	}
	if cp, _ := db.LastCheckpoint("p", 0); cp.Epoch != 1 {
		t.Fatalf("checkpoint after Compact: got epoch %d; want 1", cp.Epoch)
	}
	if first, _, err := db.AppendLog(ctx, "s", recs("c", 1)); err != nil || first != 25001 {
		t.Fatalf("append after Compact: got %d, %v; want 25001", first, err)
	}
}

func TestCommitRefusesStaleEpoch(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 2, State: []engine.StateOp{{Namespace: "n", Key: []byte("k")}}}); err == nil {
		t.Fatal("Commit of an already committed epoch: got nil; want an error")
	}
	if n := 0; db.Scan("p", 0, "n", func(k, v []byte) error { n++; return nil }) != nil || n != 0 {
		t.Fatal("the refused commit left state behind")
	}
}

func TestClosedDB(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	db.Close()
	if _, _, err := db.AppendLog(context.Background(), "s", recs("x", 1)); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("AppendLog after Close: got %v; want ErrClosed", err)
	}
	if _, err := db.LastCheckpoint("p", 0); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("LastCheckpoint after Close: got %v; want ErrClosed", err)
	}
}

// With AppendsSkipDelay a log append does not wait out GroupMaxDelay: a
// publisher waiting for its acknowledgement, with a bounded in-flight
// window, would see the delay as a throughput cap.
func TestAppendsSkipGroupDelay(t *testing.T) {
	o := testOptions()
	o.GroupMaxDelay = time.Hour
	o.AppendsSkipDelay = true
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
	done := make(chan error, 1)
	go func() {
		_, _, err := db.AppendLog(context.Background(), "s", recs("c", 3))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a log append waited for GroupMaxDelay (an hour) although AppendsSkipDelay is set")
	}
}
