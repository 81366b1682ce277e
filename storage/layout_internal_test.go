package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// A file of format edged-storage/1 keeps its state in nested buckets
// (state/<pipeline>/<partition>/<namespace>, keys 'k' + key): Open carries
// every row over to the flat layout, the engine's empty key included, and
// drops what Scan never read; the file is then of format edged-storage/2
// and opens again as such.
func TestFormat1StateIsUpgradedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	o := DefaultOptions()
	o.Sync = SyncNever
	db := openUnsynced(t, path)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Turn it into a format-1 file with nested state.
	rewriteFile(t, path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bktPState); err != nil {
			return err
		}
		st, err := tx.CreateBucket(bktState)
		if err != nil {
			return err
		}
		rows := map[string]map[string]map[string]map[string]string{
			"p": {"0": {"win": {"ka": "1", "k": "empty", "x-not-state": "skip"}, "#idle": {"k\x00start": "5"}},
				"3": {"win": {"kb": "2"}}},
			"q": {"0": {"agg": {"kz": "9"}}},
		}
		for pipe, parts := range rows {
			pb, _ := st.CreateBucket([]byte(pipe))
			for part, nss := range parts {
				partB, _ := pb.CreateBucket([]byte(part))
				for ns, kv := range nss {
					nb, _ := partB.CreateBucket([]byte(ns))
					for k, v := range kv {
						if err := nb.Put([]byte(k), []byte(v)); err != nil {
							return err
						}
					}
				}
			}
		}
		// Format 1 kept the pipelines' records with the partitions'
		// checkpoints.
		if err := tx.DeleteBucket(bktPipes); err != nil {
			return err
		}
		ck := tx.Bucket(bktCkpt)
		for part, in := range map[int]map[string]uint64{-2: {"n": 4}, -1: {"mqtt": 77, "@j:0:t": 5}, 0: {"mqtt": 70}, 3: {"mqtt": 71}} {
			if err := ck.Put(ckptKey(nil, "p", part), encodeCheckpoint(nil, 9, 1, in)); err != nil {
				return err
			}
		}
		return tx.Bucket(bktMeta).Put(keyFormat, []byte(formatMagic1))
	})

	scan := func(db *DB, pipe string, part int, ns string) string {
		t.Helper()
		var s []string
		if err := db.Scan(pipe, part, ns, func(k, v []byte) error {
			s = append(s, fmt.Sprintf("%q=%s", k, v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(s, " ")
	}
	for round := range 2 { // upgraded, then opened as format 2
		db, err := Open(path, o)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, c := range []struct {
			pipe string
			part int
			ns   string
			want string
		}{
			{"p", 0, "win", `""=empty "a"=1`},
			{"p", 0, "#idle", `"\x00start"=5`},
			{"p", 3, "win", `"b"=2`},
			{"p", 1, "win", ``},
			{"q", 0, "agg", `"z"=9`},
			{"q", 0, "win", ``},
		} {
			if got := scan(db, c.pipe, c.part, c.ns); got != c.want {
				t.Errorf("round %d: %s/%d/%s: %s; want %s", round, c.pipe, c.part, c.ns, got, c.want)
			}
		}
		for part, want := range map[int]string{-2: "map[n:4]", -1: "map[@j:0:t:5 mqtt:77]", 0: "map[mqtt:70]", 3: "map[mqtt:71]", 1: "map[]"} {
			cp, err := db.LastCheckpoint("p", part)
			if got := fmt.Sprint(cp.Input); err != nil || got != want {
				t.Errorf("round %d: checkpoint of partition %d: %s, %v; want %s", round, part, got, err, want)
			}
		}
		// A partition snapshot carries the rows in the stream's own form.
		var buf bytes.Buffer
		err = db.View(func(s *Snapshot) error {
			_, err := s.WritePartition(&buf, "p", 0, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := ReadPartition(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, r := range ps.Rows {
			rows = append(rows, fmt.Sprintf("%s:%q=%s", r.Namespace, r.Key, r.Val))
		}
		if got, want := strings.Join(rows, " "), `win:"k"=empty win:"ka"=1 #idle:"k\x00start"=5`; got != want {
			t.Errorf("round %d: snapshot rows %s; want %s", round, got, want)
		}
		err = db.bdb.View(func(tx *bolt.Tx) error {
			if f := tx.Bucket(bktMeta).Get(keyFormat); string(f) != formatMagic {
				return fmt.Errorf("format %q; want %q", f, formatMagic)
			}
			if tx.Bucket(bktState) != nil {
				return fmt.Errorf("the nested state bucket is still there")
			}
			if n := tx.Bucket(bktCkpt).Stats().KeyN; n != 2 {
				return fmt.Errorf("ckpt holds %d keys; want the 2 partitions' checkpoints", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// nestUnder moves the root bucket name (as edged-storage/2 has it) into
// bucket parent under key sub (as edged-storage/1 had it): the reverse of
// upgradeRootBuckets, to make a format-1 file.
func nestUnder(tx *bolt.Tx, name, parent, sub []byte) error {
	from := tx.Bucket(name)
	pb, err := tx.CreateBucketIfNotExists(parent)
	if err != nil {
		return err
	}
	to, err := pb.CreateBucket(sub)
	if err != nil {
		return err
	}
	if err := to.SetSequence(from.Sequence()); err != nil {
		return err
	}
	var frames [][]byte
	if err := from.ForEach(func(k, v []byte) error {
		if v == nil {
			frames = append(frames, bytes.Clone(k))
			return nil
		}
		return to.Put(bytes.Clone(k), bytes.Clone(v))
	}); err != nil {
		return err
	}
	for _, k := range frames {
		if err := tx.MoveBucket(k, from, to); err != nil {
			return err
		}
	}
	return tx.DeleteBucket(name)
}

// A file of format edged-storage/1 keeps each log's frames in log/<source>
// and each spool in spool/<sink>: Open moves them to the root, and the logs
// and spools read and continue as before (offsets, the spool's order).
func TestFormat1LogsAndSpoolsAreUpgradedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openUnsynced(t, path)
	ctx := context.Background()
	for i := range 3 {
		var recs [][]byte
		for j := range 50 {
			recs = append(recs, fmt.Appendf(nil, "rec-%d-%d", i, j))
		}
		if _, _, _, err := db.AppendLogDedup(ctx, "mqtt", recs); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("x"), 3000) // a frame bucket of its own
	for e := range 3 {
		outs := []engine.Output{{Sink: "p/small", ID: fmt.Sprintf("p/0/1/%d/0", e), Data: []byte("s")}}
		for j := range 4 {
			outs = append(outs, engine.Output{Sink: "p/big", ID: fmt.Sprintf("p/0/1/%d/%d", e, j), Data: fmt.Appendf(nil, "%d%s", j, big)})
		}
		if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: uint64(e + 1), Outputs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SpoolAck(ctx, "p/big", "p/0/1/0/0"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewriteFile(t, path, func(tx *bolt.Tx) error {
		for _, m := range []struct{ name, parent, sub string }{
			{"log/mqtt", "log", "mqtt"}, {"spool/p/small", "spool", "p/small"}, {"spool/p/big", "spool", "p/big"},
		} {
			if err := nestUnder(tx, []byte(m.name), []byte(m.parent), []byte(m.sub)); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return tx.Bucket(bktMeta).Put(keyFormat, []byte(formatMagic1))
	})

	db = openUnsynced(t, path)
	// The log reads whole from the file (not the tail of a new handle:
	// there is none), deduplicates against its old records and goes on.
	var got []string
	if err := db.ReadLog("mqtt", 1, 0, func(off uint64, rec []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", off, rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 || got[0] != "1:rec-0-0" || got[149] != "150:rec-2-49" {
		t.Fatalf("log after the upgrade: %d records, %v ... ; want 150, 1:rec-0-0 ... 150:rec-2-49", len(got), got[:min(3, len(got))])
	}
	first, last, dropped, err := db.AppendLogDedup(ctx, "mqtt", [][]byte{[]byte("rec-2-49"), []byte("new")})
	if err != nil || first != 151 || last != 151 || dropped != 1 {
		t.Fatalf("append after the upgrade: %d..%d, %d dropped, %v; want 151..151, 1 dropped", first, last, dropped, err)
	}
	// The spools keep their order, and new frames come after the old ones.
	if err := db.Commit(ctx, &engine.Commit{Pipeline: "p", Epoch: 4, Outputs: []engine.Output{
		{Sink: "p/small", ID: "p/0/1/3/0", Data: []byte("s")}, {Sink: "p/big", ID: "p/0/1/3/0", Data: big}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sink, want string }{
		{"p/small", "p/0/1/0/0 p/0/1/1/0 p/0/1/2/0 p/0/1/3/0"},
		{"p/big", "p/0/1/0/1 p/0/1/0/2 p/0/1/0/3 p/0/1/1/0 p/0/1/1/1 p/0/1/1/2 p/0/1/1/3 p/0/1/2/0 p/0/1/2/1 p/0/1/2/2 p/0/1/2/3 p/0/1/3/0"},
	} {
		var ids []string
		if err := db.SpoolRead(c.sink, 0, func(id string, _ []byte) error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(ids, " "); s != c.want {
			t.Errorf("spool %s after the upgrade: %s; want %s", c.sink, s, c.want)
		}
	}
	st, err := db.SpoolStats()
	if err != nil {
		t.Fatal(err)
	}
	if st["p/big"].Depth != 12 || st["p/big"].Oldest.IsZero() {
		t.Errorf("spool p/big stats %+v; want depth 12 and its oldest time", st["p/big"])
	}
	err = db.bdb.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktLog) != nil || tx.Bucket(bktSpool) != nil {
			return fmt.Errorf("the nested log or spool bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// commitPages commits cs and returns the pages the transaction wrote (the
// meta page not counted), by owner.
func commitPages(t *testing.T, db *DB, cs ...*engine.Commit) (map[string]int, int) {
	t.Helper()
	before, err := walkPages(db.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CommitAll(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	after, err := walkPages(db.path)
	if err != nil {
		t.Fatal(err)
	}
	return writtenPages(before, after)
}

// TestSmallPartitionStateSharesAPage protects the flash cost of committing
// the state of a partitioned pipeline whose partitions keep a few rows each
// (a stateless pipeline's idle record and watermark: the default install's
// etl has 8 partitions): the rows of all partitions share the leaf of the
// state bucket, so the commit writes the root, that leaf and the
// checkpoints' leaf. With a bucket per partition and per namespace it wrote
// a page per partition and one per pipeline besides (11 pages).
func TestSmallPartitionStateSharesAPage(t *testing.T) {
	db := openUnsynced(t, filepath.Join(t.TempDir(), "edged.db"))
	epoch := func(e uint64) []*engine.Commit {
		var cs []*engine.Commit
		for part := range 8 {
			cs = append(cs, &engine.Commit{Pipeline: "etl", Partition: part, Epoch: e, Watermark: int64(e),
				State: []engine.StateOp{
					{Namespace: "#idle", Key: []byte("\x00start"), Val: []byte{1}},
					{Namespace: "#idle", Key: []byte("readings"), Val: fmt.Appendf(nil, "%d", e)},
					{Namespace: "dedup", Key: fmt.Appendf(nil, "s-%d", part), Val: fmt.Appendf(nil, "%d", e)},
				}})
		}
		return cs
	}
	commitPages(t, db, epoch(1)...) // creates the buckets
	by, total := commitPages(t, db, epoch(2)...)
	t.Logf("a state commit of 8 small partitions wrote %d pages:\n%s", total, formatPages(by))
	if total > 3 {
		t.Errorf("a state commit of 8 small partitions wrote %d pages; want at most 3 (root, state leaf, checkpoints):\n%s", total, formatPages(by))
	}
	// The rows are there.
	for part := range 8 {
		var got []string
		for _, ns := range []string{"#idle", "dedup"} {
			if err := db.Scan("etl", part, ns, func(k, v []byte) error {
				got = append(got, fmt.Sprintf("%s/%q=%s", ns, k, v))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		want := fmt.Sprintf(`#idle/"\x00start"=%s #idle/"readings"=2 dedup/"s-%d"=2`, []byte{1}, part)
		if s := strings.Join(got, " "); s != want {
			t.Errorf("partition %d: %s; want %s", part, s, want)
		}
	}
}

// TestEpochRecordsShareALeaf protects the flash cost of an epoch commit
// between state commits (runner's Config.StateEvery): it writes each
// pipeline's record (input positions and a journal of the epochs since the
// last state commit), which share one leaf apart from the partitions'
// checkpoints. Kept together (edged-storage/1), the partitions' checkpoints
// of five pipelines made that bucket a branch and several leaves, all
// rewritten by every epoch.
func TestEpochRecordsShareALeaf(t *testing.T) {
	db := openUnsynced(t, filepath.Join(t.TempDir(), "edged.db"))
	pipes := []string{"alerts", "enrichment", "etl", "history", "sessions"}
	record := func(p string, e uint64) *engine.Commit {
		in := map[string]uint64{"mqtt": 1000 * e}
		for j := range 10 { // the journal of 10 epochs
			in[fmt.Sprintf("@j:%d:t", j)] = 1767225600000 + 1000*uint64(j)
			in[fmt.Sprintf("@j:%d:mqtt", j)] = 1000*e + uint64(j)
		}
		return &engine.Commit{Pipeline: p, Partition: -1, Epoch: e, Watermark: engine.NoWatermark, Input: in}
	}
	var cs []*engine.Commit
	for _, p := range pipes {
		cs = append(cs, record(p, 1))
		for part := range 8 {
			cs = append(cs, &engine.Commit{Pipeline: p, Partition: part, Epoch: 1, Watermark: 5,
				Input: map[string]uint64{"mqtt": 900, "@skip:mqtt/100": 120}})
		}
	}
	commitPages(t, db, cs...)
	cs = cs[:0]
	for _, p := range pipes {
		cs = append(cs, record(p, 2))
	}
	by, total := commitPages(t, db, cs...)
	t.Logf("an epoch commit of 5 pipelines' records wrote %d pages:\n%s", total, formatPages(by))
	if total > 2 {
		t.Errorf("an epoch commit of 5 pipelines' records wrote %d pages; want at most 2 (root, their leaf):\n%s", total, formatPages(by))
	}
	for _, p := range pipes {
		cp, err := db.LastCheckpoint(p, -1)
		if err != nil || cp.Epoch != 2 || cp.Input["mqtt"] != 2000 {
			t.Errorf("%s: record epoch %d mqtt %d, %v; want epoch 2 at 2000", p, cp.Epoch, cp.Input["mqtt"], err)
		}
		cp, err = db.LastCheckpoint(p, 7)
		if err != nil || cp.Epoch != 1 || cp.Input["mqtt"] != 900 {
			t.Errorf("%s partition 7: epoch %d mqtt %d, %v; want epoch 1 at 900", p, cp.Epoch, cp.Input["mqtt"], err)
		}
	}
}

// TestStateCommitPacksItsLeaves protects the flash cost of a state commit
// that changes every key (the default install's alert rules keep 3 rows
// per sensor, updated by every reading): the leaves bbolt writes are
// packed to stateFill, so 300 rows take 6 leaves, not the 8 of bbolt's
// half-full default.
func TestStateCommitPacksItsLeaves(t *testing.T) {
	db := openUnsynced(t, filepath.Join(t.TempDir(), "edged.db"))
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(100) // sensors appear in no order
	var by map[string]int
	for e := 1; e <= 10; e++ {
		var ops []engine.StateOp
		for _, ns := range []string{"damp", "fast-rise", "overheat"} {
			for _, i := range perm {
				ops = append(ops, engine.StateOp{Namespace: ns, Key: fmt.Appendf(nil, "s-%04d", i), Val: make([]byte, 20+rng.IntN(12))})
			}
		}
		by, _ = commitPages(t, db, &engine.Commit{Pipeline: "alerts", Partition: 0, Epoch: uint64(e), State: ops})
	}
	t.Logf("a state commit of 300 rows:\n%s", formatPages(by))
	if n := by["pstate/alerts leaf"]; n > 6 {
		t.Errorf("a state commit of 300 rows wrote %d leaves; want at most 6:\n%s", n, formatPages(by))
	}
}

// TestCaughtUpSinkFrameIsItsBucketsLeaf protects the flash cost of a sink
// that keeps up with a pipeline that outputs every reading (the default
// install's etl): its frame, larger than a small frame, goes into its spool
// bucket as a value when the spool is empty, so the epoch writes that
// bucket's leaf (2 pages for a 6 KB frame), not a leaf of frame references
// and the frame bucket's (3). A sink that falls behind appends frame
// buckets (its first frame moves into one, so that appends do not rewrite
// it), and its outputs stay in order through partial acknowledgements.
func TestCaughtUpSinkFrameIsItsBucketsLeaf(t *testing.T) {
	db := openUnsynced(t, filepath.Join(t.TempDir(), "edged.db"))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	epoch := func(e int) (*engine.Commit, []string) {
		c := &engine.Commit{Pipeline: "etl", Partition: 0, Epoch: uint64(e)}
		var ids []string
		for i := range 40 {
			id := fmt.Sprintf("etl/0/1/%d/%d", e, i)
			data := make([]byte, 150) // incompressible: a frame of 6 KB
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			c.Outputs = append(c.Outputs, engine.Output{Sink: "etl/clean", ID: id, Data: data})
			ids = append(ids, id)
		}
		return c, ids
	}
	for e := 1; e <= 4; e++ {
		c, ids := epoch(e)
		by, total := commitPages(t, db, c)
		if e > 1 {
			t.Logf("epoch %d: %d pages\n%s", e, total, formatPages(by))
			if total > 3 || by["spool/etl/clean leaf"] != 2 {
				t.Errorf("epoch %d to a caught-up sink wrote %d pages; want the root and the sink's leaf of 2 pages:\n%s", e, total, formatPages(by))
			}
		}
		if n, err := db.SpoolAck(ctx, "etl/clean", ids...); err != nil || n != 40 {
			t.Fatalf("ack epoch %d: %d, %v", e, n, err)
		}
	}
	// Behind: three frames wait, the first a value, then frame buckets.
	var want []string
	for e := 5; e <= 7; e++ {
		c, ids := epoch(e)
		by, total := commitPages(t, db, c)
		want = append(want, ids...)
		// Once behind, the first frame (a value) moved into a bucket: an
		// append writes its own frame, not that one again.
		if e == 7 && (total > 4 || by["spool/etl/clean/# leaf"] != 2) {
			t.Errorf("epoch %d to a sink behind wrote %d pages; want the root, the leaf of frame references and the new frame's 2:\n%s", e, total, formatPages(by))
		}
	}
	read := func() []string {
		var got []string
		if err := db.SpoolRead("etl/clean", 0, func(id string, _ []byte) error {
			got = append(got, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("spool behind: %d outputs %v...; want %d in order", len(got), got[:min(3, len(got))], len(want))
	}
	// Part of the value frame, then a part reaching into the next frame.
	if n, err := db.SpoolAck(ctx, "etl/clean", want[:5]...); err != nil || n != 5 {
		t.Fatalf("partial ack: %d, %v", n, err)
	}
	if n, err := db.SpoolAckThrough(ctx, "etl/clean", want[50]); err != nil || n != 46 {
		t.Fatalf("ack through the second frame's 11th output: %d, %v; want 46", n, err)
	}
	if got := read(); strings.Join(got, " ") != strings.Join(want[51:], " ") {
		t.Fatalf("after the acknowledgements: %d outputs starting %v; want %d from %s", len(got), got[:min(1, len(got))], len(want)-51, want[51])
	}
	if n, err := db.SpoolAck(ctx, "etl/clean", want[51:]...); err != nil || n != len(want)-51 {
		t.Fatalf("ack the rest: %d, %v", n, err)
	}
	st, err := db.SpoolStats()
	if err != nil || st["etl/clean"].Depth != 0 || st["etl/clean"].Bytes != 0 {
		t.Fatalf("spool stats %+v, %v; want empty", st["etl/clean"], err)
	}
}

// openUnsynced opens the store at path without fsyncs and closes it when
// the test ends (closing twice is harmless).
func openUnsynced(t *testing.T, path string) *DB {
	t.Helper()
	o := DefaultOptions()
	o.Sync = SyncNever
	db, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rewriteFile changes the closed store at path with bbolt directly, in one
// transaction (to make a file of an older format).
func rewriteFile(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
