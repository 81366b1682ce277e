package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// oldLayout writes what edged 0.1 left for pipeline p: its own input log
// "p/in" (offsets 1-5 and 6-10, two frames), a checkpoint at partition 0
// (epoch 3, position 7) with state, and undelivered outputs of p and of
// another pipeline q in the spool "out" that their sinks shared.
func oldLayout(t *testing.T, db *storage.DB) {
	t.Helper()
	ctx := context.Background()
	for f := range 2 {
		var recs [][]byte
		for i := range 5 {
			recs = append(recs, fmt.Appendf(nil, "rec-%d", f*5+i+1))
		}
		if _, _, _, err := db.AppendLogDedup(ctx, "p/in", recs); err != nil {
			t.Fatal(err)
		}
	}
	c := &engine.Commit{Pipeline: "p", Partition: 0, Epoch: 3, Input: map[string]uint64{"in": 7},
		State: []engine.StateOp{{Namespace: "agg", Key: []byte("k1"), Val: []byte("v1")}},
		Outputs: []engine.Output{{Sink: "out", ID: "q/0/1/0", Data: []byte("q0")}, {Sink: "out", ID: "p/0/3/0", Data: []byte("p0")},
			{Sink: "out", ID: "p/0/3/1", Data: []byte("p1")}}}
	if err := db.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Partition: 9, Epoch: 5}); err != nil {
		t.Fatal(err)
	}
}

func upgradeOf(also ...*engine.Commit) storage.Upgrade {
	return storage.Upgrade{Pipeline: "p", Sources: map[string]string{"in": "up/p/in"}, Reads: []string{"mqtt"},
		Sinks: []string{"out"}, Spool: func(s string) string { return "p/" + s }, Record: -1, Also: also}
}

func spoolIDs(t *testing.T, db *storage.DB, sink string) (ids []string) {
	t.Helper()
	if err := db.SpoolRead(sink, 0, func(id string, _ []byte) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestUpgradePipelineIsAllOrNothing: a failure in the middle of a
// pipeline's upgrade (here its last write fails) leaves the old layout
// whole, and the next attempt moves the unconsumed entries (at their
// offsets), the epoch and position, and the pipeline's spooled outputs;
// a further attempt does nothing.
func TestUpgradePipelineIsAllOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path, testOptions())
	oldLayout(t, db)
	ctx := context.Background()
	if _, _, _, err := db.AppendLogDedup(ctx, "mqtt", [][]byte{[]byte("new-1"), []byte("new-2")}); err != nil {
		t.Fatal(err)
	}

	// Injected failure: the last commit of the transaction is refused (an
	// epoch not after the partition's committed one).
	_, err := db.UpgradePipeline(ctx, upgradeOf(&engine.Commit{Pipeline: "p", Partition: 9, Epoch: 1}))
	if err == nil {
		t.Fatal("UpgradePipeline with a failing step: no error")
	}
	st, _ := db.Stats()
	if _, ok := st.Log["p/in"]; !ok {
		t.Error("after a failed upgrade the old log is gone")
	}
	if _, ok := st.Log["up/p/in"]; ok {
		t.Error("after a failed upgrade the new log exists")
	}
	if cp, _ := db.LastCheckpoint("p", -1); cp.Input != nil {
		t.Errorf("after a failed upgrade the pipeline record exists: %+v", cp)
	}
	if got := spoolIDs(t, db, "out"); len(got) != 3 {
		t.Errorf("after a failed upgrade the old spool holds %v; want 3 entries", got)
	}

	rep, err := db.UpgradePipeline(ctx, upgradeOf())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Upgraded || rep.Epoch != 3 || rep.Entries["up/p/in"] != 4 || rep.Outputs["p/out"] != 2 {
		t.Errorf("report %+v; want upgraded at epoch 3, 4 entries, 2 outputs", rep)
	}
	db.Close()
	db = openDB(t, path, testOptions())
	defer db.Close()
	st, _ = db.Stats()
	if _, ok := st.Log["p/in"]; ok {
		t.Error("the old log is still there")
	}
	if ls := st.Log["up/p/in"]; ls.Next != 11 {
		t.Errorf("new log: %+v; want next 11", ls)
	}
	var got []string
	if err := db.ReadLog("up/p/in", 7, 0, func(off uint64, rec []byte) error {
		got = append(got, fmt.Sprintf("%d=%s", off, rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[7=rec-7 8=rec-8 9=rec-9 10=rec-10]" {
		t.Errorf("unconsumed entries: %v", got)
	}
	cp, _ := db.LastCheckpoint("p", -1)
	if cp.Epoch != 3 || cp.Input["up/p/in"] != 7 || cp.Input["mqtt"] != 3 {
		t.Errorf("pipeline record %+v; want epoch 3, up/p/in at 7, mqtt at its end (3)", cp)
	}
	if cp, _ := db.LastCheckpoint("p", 0); cp.Epoch != 3 {
		t.Errorf("partition 0's checkpoint: %+v; want it kept", cp)
	}
	if got := fmt.Sprint(spoolIDs(t, db, "out"), spoolIDs(t, db, "p/out")); got != "[q/0/1/0] [p/0/3/0 p/0/3/1]" {
		t.Errorf("spools: %s; want q's output left in the shared spool, p's moved in order", got)
	}
	if rep, err := db.UpgradePipeline(ctx, upgradeOf()); err != nil || rep.Upgraded {
		t.Errorf("second upgrade: %+v, %v; want nothing done", rep, err)
	}
}
