package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// scanAll returns the namespace's entries of a MemStore as key=value strings.
func scanAll(t *testing.T, m *MemStore, ns string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := m.Scan("p", 0, ns, func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestMemStoreMovingStateReusesBuffers protects MemStore's reuse of deleted
// entries' value buffers: state that moves on (a window's entries deleted as
// the next one's are written) reads back exactly, and costs no value
// allocation per entry in the steady state.
func TestMemStoreMovingStateReusesBuffers(t *testing.T) {
	m := NewMemStore()
	ctx := context.Background()
	c := &Commit{Pipeline: "p", Input: map[string]uint64{}}
	val := make([]byte, 4096)
	step := 0
	commit := func(del bool) {
		c.Epoch++
		c.State = c.State[:0]
		if del {
			c.State = append(c.State, StateOp{Namespace: "w", Key: fmt.Appendf(nil, "k%d", step-1), Delete: true})
		}
		val[0] = byte(step)
		c.State = append(c.State, StateOp{Namespace: "w", Key: fmt.Appendf(nil, "k%d", step), Val: val})
		step++
		if err := m.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	commit(false)
	for range 5 {
		commit(true)
	}
	got := scanAll(t, m, "w")
	want := fmt.Sprintf("k%d", step-1)
	if len(got) != 1 || got[want] == "" || got[want][0] != byte(step-1) || len(got[want]) != len(val) {
		t.Fatalf("after moving state: entries %q, want only %s holding its last value", keysOf(got), want)
	}
	// The steady state: a delete and a new entry per commit allocate no value
	// buffer (4 KiB each); before reuse every commit did.
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 100
	for range n {
		commit(true)
	}
	runtime.ReadMemStats(&m1)
	if perCommit := (m1.TotalAlloc - m0.TotalAlloc) / n; perCommit >= uint64(len(val)) {
		t.Fatalf("a commit that deletes one entry and writes one allocates %d bytes, want < %d (no value buffer)", perCommit, len(val))
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
