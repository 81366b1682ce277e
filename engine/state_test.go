package engine

import (
	"context"
	"fmt"
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
	val := make([]byte, 300)
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
	// The steady state: a delete and a new entry per commit cost the new
	// key's string only (before reuse: the key, the value and its holder).
	allocs := testing.AllocsPerRun(100, func() { commit(true) })
	keyAllocs := testing.AllocsPerRun(100, func() { _ = fmt.Appendf(nil, "k%d", step) })
	// Beyond building the two ops' keys: the map's copy of the new key and
	// Commit's copy of the Input map.
	if extra := allocs - 2*keyAllocs; extra > 2 {
		t.Fatalf("a commit that deletes one entry and writes one costs %.0f allocations beyond building its keys, want <= 2", extra)
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
