package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/storage"
)

// The recovery pipeline: every input record passes through to sink "raw"
// (so the spool shows which records each epoch consumed) and feeds a sliding
// per-key sum (window 5 s, slide 1 s) to sink "agg".
func newRecoveryExecutor(store engine.StateStore) (*engine.Executor, error) {
	schema := engine.MustSchema(engine.Field{Name: "key", Kind: engine.KindNumber}, engine.Field{Name: "value", Kind: engine.KindNumber})
	b := engine.NewBuilder("rec")
	in := b.Source("in", schema)
	b.Sink("raw", in)
	b.Sink("agg", in.Then("win", engine.ReduceByKeyAndWindow("key", "value", engine.Sum, 5*time.Second, time.Second)))
	p, err := b.Build()
	if err != nil {
		return nil, err
	}
	return engine.NewExecutor(p, engine.Options{Store: store, Encode: decode.AppendJSON})
}

// logRecord is the input log's record format: "key,value".
func logRecord(i int) []byte { return fmt.Appendf(nil, "%d,%d", (i*7919)%23, i%10) }

// runLogEpoch runs one epoch over at most max records of the log after the
// executor's position, at processing time epoch*1000 (deterministic).
func runLogEpoch(ctx context.Context, x *engine.Executor, db *storage.DB, max int) (int, error) {
	in := x.Input("in")
	pos := x.Position("in")
	n := 0
	err := db.ReadLog("in", pos, max, func(off uint64, rec []byte) error {
		k, v, _ := strings.Cut(string(rec), ",")
		ki, _ := strconv.Atoi(k)
		vi, _ := strconv.Atoi(v)
		r := in.Append()
		r.Vals[0], r.Vals[1] = engine.Int(int64(ki)), engine.Int(int64(vi))
		pos = off + 1
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	x.SetPosition("in", pos)
	_, err = x.RunEpochAt(ctx, int64(x.Epoch()+1)*1000)
	return n, err
}

type spooled struct{ id, data string }

func spoolAll(t testing.TB, db *storage.DB, sink string) []spooled {
	t.Helper()
	var out []spooled
	if err := db.SpoolRead(sink, 0, func(id string, data []byte) error {
		out = append(out, spooled{id, string(data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// referenceOutputs runs the pipeline uninterrupted on a MemStore, epoch e
// consuming perEpoch[e-1] records of the log, and returns the outputs per sink.
func referenceOutputs(t testing.TB, db *storage.DB, perEpoch []int) map[string][]spooled {
	t.Helper()
	mem := &copyingStore{MemStore: engine.NewMemStore()}
	x, err := newRecoveryExecutor(mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range perEpoch {
		if got, err := runLogEpoch(context.Background(), x, db, n); err != nil || got != n {
			t.Fatalf("reference epoch %d: consumed %d, %v; want %d", x.Epoch(), got, err, n)
		}
	}
	out := map[string][]spooled{}
	for _, o := range mem.outputs {
		out[o.Sink] = append(out[o.Sink], o.s)
	}
	return out
}

// copyingStore keeps copies of the outputs: MemStore.KeepOutputs retains the
// Data slices, which the executor reuses in the next epoch.
type copyingStore struct {
	*engine.MemStore
	outputs []struct {
		Sink string
		s    spooled
	}
}

func (c *copyingStore) Commit(ctx context.Context, cm *engine.Commit) error {
	for _, o := range cm.Outputs {
		c.outputs = append(c.outputs, struct {
			Sink string
			s    spooled
		}{o.Sink, spooled{o.ID, string(o.Data)}})
	}
	return c.MemStore.Commit(ctx, cm)
}

func compareSpool(t testing.TB, db *storage.DB, want map[string][]spooled) {
	t.Helper()
	for _, sink := range []string{"raw", "agg"} {
		got := spoolAll(t, db, sink)
		w := want[sink]
		if len(got) != len(w) {
			t.Fatalf("sink %s: got %d spooled outputs; want %d", sink, len(got), len(w))
		}
		for i := range got {
			if got[i] != w[i] {
				t.Fatalf("sink %s output %d: got %s %s; want %s %s", sink, i, got[i].id, got[i].data, w[i].id, w[i].data)
			}
		}
	}
}

// TestRecoveryContinuesByteForByte protects exactly-once recovery: a pipeline
// run for some epochs on a DB, closed, reopened with a fresh plan and
// executor, continues with outputs (ids and bytes) equal to an uninterrupted
// run's.
func TestRecoveryContinuesByteForByte(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, p, testOptions())
	var all [][]byte
	for i := range 2000 {
		all = append(all, logRecord(i))
	}
	if _, _, err := db.AppendLog(ctx, "in", all); err != nil {
		t.Fatal(err)
	}
	const epochs, stopAt = 40, 17
	perEpoch := make([]int, epochs)
	for i := range perEpoch {
		perEpoch[i] = 20 + (i*13)%50
	}
	x, err := newRecoveryExecutor(db)
	if err != nil {
		t.Fatal(err)
	}
	for e := 0; e < stopAt; e++ {
		if _, err := runLogEpoch(ctx, x, db, perEpoch[e]); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = openDB(t, p, testOptions())
	x, err = newRecoveryExecutor(db)
	if err != nil {
		t.Fatal(err)
	}
	if x.Epoch() != stopAt {
		t.Fatalf("restored epoch: got %d; want %d", x.Epoch(), stopAt)
	}
	for e := stopAt; e < epochs; e++ {
		if _, err := runLogEpoch(ctx, x, db, perEpoch[e]); err != nil {
			t.Fatal(err)
		}
	}
	compareSpool(t, db, referenceOutputs(t, db, perEpoch))
}
