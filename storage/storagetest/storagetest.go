// Package storagetest is a conformance suite for engine.StateStore
// implementations: every store (engine.MemStore, storage.DB) must pass Run.
//
// # Reopening
//
// A store that also implements Reopener is additionally checked for
// durability: what was committed before Reopen is visible after it.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/edgedio/edged/engine"
)

// Reopener is implemented by stores that can be closed and opened again on the
// same durable data (a test wrapper around a file-backed store).
type Reopener interface {
	Reopen() (engine.StateStore, error)
}

// Run runs the suite. newStore returns a fresh, empty store for each subtest
// (and arranges its cleanup with t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) engine.StateStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s engine.StateStore)
	}{
		{"EmptyStoreHasZeroCheckpoint", testEmpty},
		{"CheckpointRoundTrip", testCheckpoint},
		{"ScanIsInKeyOrder", testScanOrder},
		{"DeleteAndOverwrite", testDeleteOverwrite},
		{"NamespacesPartitionsPipelinesAreSeparate", testSeparation},
		{"CommitDoesNotRetainSlices", testNoRetain},
		{"EmptyKeyAndValue", testEmptyKeyValue},
		{"ScanStopsOnError", testScanError},
		{"CommitIsAtomicForConcurrentScans", testAtomic},
		{"ReopenKeepsCommittedEpochs", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

type kv struct{ k, v string }

func scan(t *testing.T, s engine.StateStore, pipeline string, part int, ns string) []kv {
	t.Helper()
	var out []kv
	if err := s.Scan(pipeline, part, ns, func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q, %d, %q): %v", pipeline, part, ns, err)
	}
	return out
}

func commit(t *testing.T, s engine.StateStore, c *engine.Commit) {
	t.Helper()
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatalf("Commit(epoch %d): %v", c.Epoch, err)
	}
}

func put(ns, k, v string) engine.StateOp {
	return engine.StateOp{Namespace: ns, Key: []byte(k), Val: []byte(v)}
}

func del(ns, k string) engine.StateOp {
	return engine.StateOp{Namespace: ns, Key: []byte(k), Delete: true}
}

func sameKV(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testEmpty(t *testing.T, s engine.StateStore) {
	cp, err := s.LastCheckpoint("p", 0)
	if err != nil || cp.Epoch != 0 {
		t.Fatalf("LastCheckpoint of an empty store: got %+v, %v; want epoch 0, nil", cp, err)
	}
	if got := scan(t, s, "p", 0, "ns"); len(got) != 0 {
		t.Fatalf("Scan of an empty store: got %v; want nothing", got)
	}
}

func testCheckpoint(t *testing.T, s engine.StateStore) {
	in := map[string]uint64{"a": 7, "b": 0, "sensors/x": 1 << 40}
	commit(t, s, &engine.Commit{Pipeline: "p", Partition: 3, Epoch: 1, Watermark: -5, Input: in})
	commit(t, s, &engine.Commit{Pipeline: "p", Partition: 3, Epoch: 2, Watermark: 1700000000000,
		Input: map[string]uint64{"a": 9, "b": 1, "sensors/x": 1<<40 + 1}})
	in["a"] = 1000 // the store must not share the caller's map
	cp, err := s.LastCheckpoint("p", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Checkpoint{Epoch: 2, Watermark: 1700000000000, Input: map[string]uint64{"a": 9, "b": 1, "sensors/x": 1<<40 + 1}}
	if fmt.Sprint(cp) != fmt.Sprint(want) {
		t.Fatalf("LastCheckpoint: got %+v; want %+v", cp, want)
	}
	if cp, _ := s.LastCheckpoint("p", 4); cp.Epoch != 0 {
		t.Fatalf("LastCheckpoint of another partition: got epoch %d; want 0", cp.Epoch)
	}
}

func testScanOrder(t *testing.T, s engine.StateStore) {
	r := rand.New(rand.NewPCG(1, 2))
	var ops []engine.StateOp
	var want []kv
	seen := map[string]bool{}
	for len(want) < 200 {
		k := make([]byte, 1+r.IntN(6))
		for i := range k {
			k[i] = byte(r.IntN(256))
		}
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		v := fmt.Sprint(r.Int())
		ops = append(ops, put("ns", string(k), v))
		want = append(want, kv{string(k), v})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].k < want[j].k })
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 1, State: ops})
	if got := scan(t, s, "p", 0, "ns"); !sameKV(got, want) {
		t.Fatalf("Scan order: got %d entries %q...; want %d in byte order", len(got), got[:min(3, len(got))], len(want))
	}
}

func testDeleteOverwrite(t *testing.T, s engine.StateStore) {
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 1, State: []engine.StateOp{
		put("ns", "a", "1"), put("ns", "b", "2"), put("ns", "c", "3")}})
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 2, State: []engine.StateOp{
		del("ns", "b"), put("ns", "c", "33333333"), del("ns", "missing"), put("ns", "d", "4"), del("ns", "d")}})
	want := []kv{{"a", "1"}, {"c", "33333333"}}
	if got := scan(t, s, "p", 0, "ns"); !sameKV(got, want) {
		t.Fatalf("after deletes and overwrites: got %v; want %v", got, want)
	}
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 3, State: []engine.StateOp{put("ns", "c", "x")}})
	if got := scan(t, s, "p", 0, "ns"); !sameKV(got, []kv{{"a", "1"}, {"c", "x"}}) {
		t.Fatalf("after shrinking a value: got %v; want [{a 1} {c x}]", got)
	}
}

func testSeparation(t *testing.T, s engine.StateStore) {
	commit(t, s, &engine.Commit{Pipeline: "p", Partition: 0, Epoch: 1, State: []engine.StateOp{put("n1", "k", "p0n1"), put("n2", "k", "p0n2")}})
	commit(t, s, &engine.Commit{Pipeline: "p", Partition: 1, Epoch: 1, State: []engine.StateOp{put("n1", "k", "p1n1")}})
	commit(t, s, &engine.Commit{Pipeline: "q", Partition: 0, Epoch: 1, State: []engine.StateOp{put("n1", "k", "q0n1")}})
	for _, c := range []struct {
		p    string
		part int
		ns   string
		want string
	}{{"p", 0, "n1", "p0n1"}, {"p", 0, "n2", "p0n2"}, {"p", 1, "n1", "p1n1"}, {"q", 0, "n1", "q0n1"}} {
		got := scan(t, s, c.p, c.part, c.ns)
		if !sameKV(got, []kv{{"k", c.want}}) {
			t.Errorf("Scan(%q, %d, %q): got %v; want [{k %s}]", c.p, c.part, c.ns, got, c.want)
		}
	}
	if got := scan(t, s, "q", 1, "n1"); len(got) != 0 {
		t.Errorf("Scan of an unused partition: got %v; want nothing", got)
	}
}

func testNoRetain(t *testing.T, s engine.StateStore) {
	k, v := []byte("key"), []byte("value")
	c := &engine.Commit{Pipeline: "p", Epoch: 1, State: []engine.StateOp{{Namespace: "ns", Key: k, Val: v}},
		Input: map[string]uint64{"src": 1}}
	commit(t, s, c)
	copy(k, "XXX")
	copy(v, "YYYYY")
	c.Input["src"] = 99
	if got := scan(t, s, "p", 0, "ns"); !sameKV(got, []kv{{"key", "value"}}) {
		t.Fatalf("after the caller reused its buffers: got %v; want [{key value}]", got)
	}
	if cp, _ := s.LastCheckpoint("p", 0); cp.Input["src"] != 1 {
		t.Fatalf("checkpoint input after the caller changed its map: got %d; want 1", cp.Input["src"])
	}
}

func testEmptyKeyValue(t *testing.T, s engine.StateStore) {
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 1, State: []engine.StateOp{put("ns", "", "v"), put("ns", "a", "")}})
	if got := scan(t, s, "p", 0, "ns"); !sameKV(got, []kv{{"", "v"}, {"a", ""}}) {
		t.Fatalf("empty key and value: got %q; want [{\"\" v} {a \"\"}]", got)
	}
}

func testScanError(t *testing.T, s engine.StateStore) {
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 1, State: []engine.StateOp{put("ns", "a", "1"), put("ns", "b", "2")}})
	stop := errors.New("stop")
	n := 0
	err := s.Scan("p", 0, "ns", func(k, v []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Scan with fn failing: got %v after %d calls; want stop after 1", err, n)
	}
}

func testAtomic(t *testing.T, s engine.StateStore) {
	const keys, epochs = 50, 30
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var first []byte
			n := 0
			err := s.Scan("p", 0, "ns", func(k, v []byte) error {
				n++
				if first == nil {
					first = bytes.Clone(v)
				} else if !bytes.Equal(v, first) {
					return fmt.Errorf("key %q has value %q while the first key has %q: a half-applied commit", k, v, first)
				}
				return nil
			})
			if err == nil && n != 0 && n != keys {
				err = fmt.Errorf("scan saw %d keys; want 0 or %d", n, keys)
			}
			if err != nil {
				select {
				case errc <- err:
				default:
				}
				return
			}
		}
	}()
	for e := uint64(1); e <= epochs; e++ {
		ops := make([]engine.StateOp, keys)
		for i := range ops {
			ops[i] = put("ns", fmt.Sprintf("k%03d", i), fmt.Sprint(e))
		}
		commit(t, s, &engine.Commit{Pipeline: "p", Epoch: e, State: ops})
	}
	cancel()
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func testReopen(t *testing.T, s engine.StateStore) {
	r, ok := s.(Reopener)
	if !ok {
		t.Skip("store does not implement Reopener")
	}
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 1, Watermark: 10, Input: map[string]uint64{"in": 5},
		State: []engine.StateOp{put("ns", "a", "1"), put("ns", "b", "2")}})
	commit(t, s, &engine.Commit{Pipeline: "p", Epoch: 2, Watermark: 20, Input: map[string]uint64{"in": 8},
		State: []engine.StateOp{del("ns", "a"), put("ns", "c", "3")}})
	s2, err := r.Reopen()
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	cp, err := s2.LastCheckpoint("p", 0)
	if err != nil || cp.Epoch != 2 || cp.Watermark != 20 || cp.Input["in"] != 8 {
		t.Fatalf("checkpoint after reopen: got %+v, %v; want epoch 2, watermark 20, in=8", cp, err)
	}
	if got := scan(t, s2, "p", 0, "ns"); !sameKV(got, []kv{{"b", "2"}, {"c", "3"}}) {
		t.Fatalf("state after reopen: got %v; want [{b 2} {c 3}]", got)
	}
}
