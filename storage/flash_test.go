package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// readings returns n JSON readings of about 110 bytes, like the flash
// benchmark's.
func readings(n, from int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		k := from + i
		recs[i] = fmt.Appendf(nil, `sensors/s-%04d/reading {"seq":%d,"ts":%d,"temp":%.1f,"hum":%d}`,
			k%100, k, 1767225600000+int64(k)*2, 20+float64(k%97)/10, 40+k%20)
	}
	return recs
}

func mustStats(t *testing.T, db *storage.DB) storage.Stats {
	t.Helper()
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAppendWriteCost protects the flash cost of an input-log append, which
// is paid per transaction and per page: a group commit of 100 readings
// writes at most maxPages pages (meta page included) by storage's count,
// and the kernel counts (write_bytes) no more than that: bbolt's meta
// pages, written at every commit, must not sit in a large page-cache folio
// that the kernel counts whole (it counted 16 KiB per 4 KiB meta write).
func TestAppendWriteCost(t *testing.T) {
	const (
		appends = 40
		perTx   = 100
		// meta, frame, frame-reference leaf (the log's bucket, a bucket of
		// the root), root (logmeta is inline in it): 4.3 measured; 5.3
		// with the log's bucket inside a "log" bucket.
		maxPages = 5
	)
	o := storage.DefaultOptions() // fsync'd: write_bytes is counted as the device sees it
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path, o)
	ctx := context.Background()
	for i := range 20 { // a log of some depth
		if _, _, err := db.AppendLog(ctx, "mqtt", readings(perTx, i*perTx)); err != nil {
			t.Fatal(err)
		}
	}
	next := 20
	// In a new file, and in one opened again (its first pages read at open).
	for _, phase := range []string{"new file", "reopened"} {
		if phase == "reopened" {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, path, o)
		}
		st0 := mustStats(t, db)
		for range appends {
			if _, _, err := db.AppendLog(ctx, "mqtt", readings(perTx, next*perTx)); err != nil {
				t.Fatal(err)
			}
			next++
		}
		st1 := mustStats(t, db)
		commits := st1.Commits - st0.Commits
		if commits != appends {
			t.Fatalf("%s: %d sequential appends took %d commits; want %d", phase, appends, commits, appends)
		}
		written := st1.BytesWritten - st0.BytesWritten
		t.Logf("%s: an append of %d readings: %.2f pages by storage's count; write_bytes %.2fx that", phase,
			perTx, float64(written)/4096/float64(commits), float64(st1.ProcWriteBytes-st0.ProcWriteBytes)/float64(written))
		if pages := float64(written) / 4096 / float64(commits); pages > maxPages {
			t.Errorf("%s: an append of %d readings writes %.2f pages; want at most %d", phase, perTx, pages, maxPages)
		}
		if st0.ProcWriteBytes < 0 {
			continue // no /proc/self/io
		}
		proc := st1.ProcWriteBytes - st0.ProcWriteBytes
		if proc == 0 {
			t.Logf("write_bytes did not move (tmpfs?): kernel count not checked")
			continue
		}
		if limit := written + written/4 + 64<<10; proc > limit {
			t.Errorf("%s: the kernel counted %d bytes written for %d by storage's count (%.2fx); want at most %d",
				phase, proc, written, float64(proc)/float64(written), limit)
		}
	}
}

// TestLazyWritesRideWithTheNextCommit protects the sharing of transactions:
// deferred spool acknowledgements wait for the next write and commit in its
// transaction (one commit for the three); alone, one commits after
// DeferMaxDelay; a truncation that deletes nothing writes nothing.
func TestLazyWritesRideWithTheNextCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.DeferMaxDelay = time.Minute
		db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), o)
		ctx := context.Background()
		for i := range 3 {
			if _, _, err := db.AppendLog(ctx, "mqtt", readings(10, i*10)); err != nil {
				t.Fatal(err)
			}
		}
		outs := []engine.Output{{Sink: "a", ID: "p/0/1/0", Data: []byte("x")}, {Sink: "b", ID: "p/0/1/1", Data: []byte("y")},
			{Sink: "a", ID: "p/0/1/2", Data: []byte("z")}}
		if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Partition: 0, Epoch: 1, Outputs: outs}); err != nil {
			t.Fatal(err)
		}
		st0 := mustStats(t, db)
		start := time.Now()
		done := make(chan error, 2)
		for _, o := range outs[:2] {
			go func() { _, err := db.SpoolAckDeferred(ctx, o.Sink, o.ID); done <- err }()
		}
		synctest.Wait() // both queued, waiting for a transaction to share
		if st := mustStats(t, db); st.Commits != st0.Commits {
			t.Fatalf("deferred acknowledgements committed on their own (%d commits)", st.Commits-st0.Commits)
		}
		if _, _, err := db.AppendLog(ctx, "mqtt", readings(10, 30)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("deferred acknowledgements returned after %v; want at once with the append", d)
		}
		st1 := mustStats(t, db)
		if c := st1.Commits - st0.Commits; c != 1 {
			t.Errorf("append + 2 acknowledgements took %d commits; want 1", c)
		}
		if a, b := st1.Spool["a"].Depth, st1.Spool["b"].Depth; a != 1 || b != 0 {
			t.Errorf("spool depths a=%d b=%d after the acknowledgements; want 1 and 0", a, b)
		}

		// Alone, a deferred acknowledgement waits DeferMaxDelay, then commits.
		start = time.Now()
		if _, err := db.SpoolAckDeferred(ctx, "a", outs[2].ID); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != o.DeferMaxDelay {
			t.Errorf("a lone deferred acknowledgement returned after %v; want %v", d, o.DeferMaxDelay)
		}
		st2 := mustStats(t, db)
		if c := st2.Commits - st1.Commits; c != 1 || st2.Spool["a"].Depth != 0 {
			t.Errorf("lone acknowledgement: %d commits, spool depth %d; want 1 and 0", c, st2.Spool["a"].Depth)
		}

		// A truncation with nothing to delete (the first frame holds
		// offsets 1-10) writes nothing.
		if err := db.TruncateLog(ctx, "mqtt", 5); err != nil {
			t.Fatal(err)
		}
		st3 := mustStats(t, db)
		if st3.Commits != st2.Commits || st3.BytesWritten != st2.BytesWritten {
			t.Errorf("a truncation that deletes nothing committed %d transactions, %d bytes; want none",
				st3.Commits-st2.Commits, st3.BytesWritten-st2.BytesWritten)
		}
		if err := db.TruncateLog(ctx, "mqtt", 11); err != nil {
			t.Fatal(err)
		}
		if st := mustStats(t, db); st.Commits != st3.Commits+1 || st.Log["mqtt"].First != 11 {
			t.Errorf("truncation before 11: %d commits, log starts at %d; want 1 and 11", st.Commits-st3.Commits, st.Log["mqtt"].First)
		}
		db.Close()
	})
}

// TestEpochOutputsWriteOneFrame protects the flash cost of an epoch's
// outputs: the 500 outputs an epoch of a pass-through pipeline spools for
// one sink are one compressed frame, so its commit writes a few pages
// (maxPages), not a leaf entry per output (about 17 pages for these). They
// read back in order across a reopen, and a partial acknowledgement keeps
// the rest of the frame.
func TestEpochOutputsWriteOneFrame(t *testing.T) {
	const (
		outputs  = 500
		epochs   = 10
		maxPages = 10 // meta, root, ckpt, spool, spool/sink, spoolmeta, the frame (3-4)
	)
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path, storage.DefaultOptions())
	ctx := context.Background()
	id := func(e, i int) string { return fmt.Sprintf("etl/0/1/%d/%d", e, i) }
	commit := func(e int) {
		outs := make([]engine.Output, outputs)
		for i := range outs {
			k := e*outputs + i
			outs[i] = engine.Output{Sink: "etl/clean", ID: id(e, i), Data: fmt.Appendf(nil,
				`{"sensor":"s-%04d","ts":"2026-12-07T00:%02d:%02d.%03dZ","temp_f":%.2f,"hum":%d}`,
				k%100, k/60000%60, k/1000%60, k%1000, 68+float64(k%97)/10, 40+k%20)}
		}
		if err := db.Commit(ctx, &engine.Commit{Pipeline: "etl", Partition: 0, Epoch: uint64(e), Outputs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	for e := 1; e <= 5; e++ { // a spool of some depth
		commit(e)
	}
	st0 := mustStats(t, db)
	for e := 6; e < 6+epochs; e++ {
		commit(e)
	}
	st1 := mustStats(t, db)
	pages := float64(st1.BytesWritten-st0.BytesWritten) / 4096 / float64(st1.Commits-st0.Commits)
	t.Logf("an epoch of %d outputs: %.2f pages", outputs, pages)
	if pages > maxPages {
		t.Errorf("an epoch commit of %d outputs writes %.2f pages; want at most %d", outputs, pages, maxPages)
	}
	if d := st1.Spool["etl/clean"].Depth; d != (5+epochs)*outputs {
		t.Fatalf("spool depth %d; want %d", d, (5+epochs)*outputs)
	}
	// Acknowledge part of the first frame, out of order, then through the
	// middle of the second; reopen and read the rest.
	if n, err := db.SpoolAck(ctx, "etl/clean", id(1, 3), id(1, 0), id(1, 1), id(1, 2)); err != nil || n != 4 {
		t.Fatalf("SpoolAck: %d, %v; want 4", n, err)
	}
	if n, err := db.SpoolAckThrough(ctx, "etl/clean", id(2, 9)); err != nil || n != outputs-4+10 {
		t.Fatalf("SpoolAckThrough: %d, %v; want %d", n, err, outputs-4+10)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path, storage.DefaultOptions())
	var got []string
	if err := db.SpoolRead("etl/clean", 3, func(id string, data []byte) error {
		got = append(got, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{id(2, 10), id(2, 11), id(2, 12)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the acknowledgements and a reopen: read %v; want %v", got, want)
	}
	st, err := db.SpoolStats()
	if err != nil || st["etl/clean"].Depth != uint64((5+epochs)*outputs-outputs-10) || st["etl/clean"].Oldest.IsZero() {
		t.Errorf("SpoolStats: %+v, %v; want depth %d with an oldest time", st["etl/clean"], err, (5+epochs)*outputs-outputs-10)
	}
}

// TestSmallSpoolFramesShareAPage protects the flash cost of sinks that
// spool a few outputs per epoch (alerts, events) and deliver them at once:
// their frames are values of their sink buckets, which then stay inline in
// the root's leaf, so an epoch spooling to three such sinks and their
// acknowledgements write the pages of one sink, not a leaf per sink.
func TestSmallSpoolFramesShareAPage(t *testing.T) {
	const (
		epochs   = 20
		maxPages = 2.5 // 2 measured (meta, root); 3 with the sinks' buckets in a "spool" bucket, 6 with a bucket per frame
	)
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), storage.DefaultOptions())
	ctx := context.Background()
	sinks := []string{"alerts/overheat", "alerts/rise", "alerts/damp"}
	id := func(e, i int) string { return fmt.Sprintf("alerts/0/1/%d/%d", e, i) }
	var commitBytes int64
	epoch := func(e int) {
		var outs []engine.Output
		for _, s := range sinks {
			for i := range 2 {
				outs = append(outs, engine.Output{Sink: s, ID: id(e, i),
					Data: fmt.Appendf(nil, `{"rule":"%s","sensor":"s-%04d","value":%d}`, s, e%100, e+i)})
			}
		}
		before := mustStats(t, db).BytesWritten
		if err := db.Commit(ctx, &engine.Commit{Pipeline: "alerts", Partition: 0, Epoch: uint64(e), Outputs: outs}); err != nil {
			t.Fatal(err)
		}
		if e > 3 {
			commitBytes += mustStats(t, db).BytesWritten - before
		}
		for _, s := range sinks { // delivered at once
			if n, err := db.SpoolAck(ctx, s, id(e, 0), id(e, 1)); err != nil || n != 2 {
				t.Fatalf("%s: SpoolAck = %d, %v; want 2", s, n, err)
			}
		}
	}
	for e := 1; e <= 3; e++ {
		epoch(e)
	}
	for e := 4; e < 4+epochs; e++ {
		epoch(e)
	}
	pages := float64(commitBytes) / 4096 / epochs
	t.Logf("an epoch commit spooling 2 outputs to each of %d sinks (delivered at once): %.2f pages", len(sinks), pages)
	if pages > maxPages {
		t.Errorf("an epoch commit spooling 2 outputs to each of %d sinks (delivered at once) writes %.2f pages; want at most %g", len(sinks), pages, maxPages)
	}
	if st := mustStats(t, db); st.Spool["alerts/rise"].Depth != 0 {
		t.Errorf("spool depth %d after acknowledging everything; want 0", st.Spool["alerts/rise"].Depth)
	}
}
