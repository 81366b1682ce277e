package mesh

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

var key1 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// startNode runs a mesh node on 127.0.0.1, a free port, and returns it with
// the function that stops it (leaving the mesh).
func startNode(t testing.TB, name, key string, join []string, stateFile string) (*Node, func()) {
	t.Helper()
	return startNodeAt(t, name, "127.0.0.1:0", key, join, stateFile)
}

// startNodeAt is startNode bound to bind (host:port).
func startNodeAt(t testing.TB, name, bind, key string, join []string, stateFile string) (*Node, func()) {
	t.Helper()
	cfg := Config{Name: name, Bind: bind, Key: key, Join: join, JoinRetry: 200 * time.Millisecond}
	n, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), APIAddr: "api-" + name, StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	testkit.Eventually(t, 5*time.Second, func() error {
		if r, _ := n.Ready(); !r {
			return fmt.Errorf("%s not ready", name)
		}
		return nil
	})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", name, err)
		}
	}
	t.Cleanup(stop)
	return n, stop
}

func addr(t *testing.T, n *Node) string {
	t.Helper()
	a, err := n.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitMembers(t *testing.T, want int, nodes ...*Node) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if got := n.numMembers(); got != want {
				return fmt.Errorf("%s sees %d members, want %d", n.Name(), got, want)
			}
		}
		return nil
	})
}

// owners checks that every partition has exactly one emitting holder and
// R standbys among nodes, all with the same term, and returns owner and
// term per partition.
func owners(t errorer, pipe string, nparts int, nodes ...*Node) ([]string, []uint64) {
	own := make([]string, nparts)
	terms := make([]uint64, nparts)
	holders := make([]int, nparts)
	for _, n := range nodes {
		for _, c := range n.Claims(pipe, nparts) {
			holders[c.Partition]++
			if terms[c.Partition] != 0 && terms[c.Partition] != c.Term {
				t.Errorf("partition %d: %s has term %d, another holder %d", c.Partition, n.Name(), c.Term, terms[c.Partition])
			}
			terms[c.Partition] = c.Term
			if c.Emit {
				if own[c.Partition] != "" {
					t.Errorf("partition %d emitted by %s and %s", c.Partition, own[c.Partition], n.Name())
				}
				own[c.Partition] = n.Name()
			}
		}
	}
	for p := range nparts {
		if own[p] == "" {
			t.Errorf("partition %d has no owner", p)
		}
		if want := min(2, len(nodes)); holders[p] != want {
			t.Errorf("partition %d has %d holders, want %d (owner + 1 standby)", p, holders[p], want)
		}
	}
	return own, terms
}

// TestOwnershipMovesToTheStandbyWithAHigherAgreedTerm: three encrypted
// members agree on one owner and one standby per partition; when an owner
// leaves, its partitions are emitted by their former standby under a term
// one higher, the same on both survivors, and the other partitions keep
// their owner and term.
func TestOwnershipMovesToTheStandbyWithAHigherAgreedTerm(t *testing.T) {
	dir := t.TempDir()
	a, _ := startNode(t, "a", key1, nil, filepath.Join(dir, "a"))
	b, _ := startNode(t, "b", key1, []string{addr(t, a)}, filepath.Join(dir, "b"))
	c, stopC := startNode(t, "c", key1, []string{addr(t, a)}, filepath.Join(dir, "c"))
	waitMembers(t, 3, a, b, c)
	const np = 16
	own1, term1 := owners(t, "p", np, a, b, c)
	held := map[string]int{}
	for _, o := range own1 {
		held[o]++
	}
	if held["c"] == 0 {
		t.Fatalf("c owns nothing of %d partitions: %v", np, own1)
	}
	standbyOf := map[int]string{}
	for _, h := range a.Table() {
		standbyOf[h.Partition] = h.Standbys[0]
		if h.Owner != own1[h.Partition] {
			t.Errorf("table says %s owns %d, claims say %s", h.Owner, h.Partition, own1[h.Partition])
		}
	}
	stopC()
	waitMembers(t, 2, a, b)
	// Let the gossip of both survivors settle, then compare.
	var own2 []string
	var term2 []uint64
	testkit.Eventually(t, 5*time.Second, func() error {
		sub := &collect{}
		own2, term2 = owners(sub, "p", np, a, b)
		if sub.err != nil {
			return sub.err
		}
		return nil
	})
	owners(t, "p", np, a, b)
	for p := range np {
		switch {
		case own1[p] == "c":
			if own2[p] != standbyOf[p] || term2[p] != term1[p]+1 {
				t.Errorf("partition %d of c: owner %s term %d, want its standby %s term %d", p, own2[p], term2[p], standbyOf[p], term1[p]+1)
			}
		case own2[p] != own1[p] || term2[p] != term1[p]:
			t.Errorf("partition %d moved from %s/%d to %s/%d though its owner stayed", p, own1[p], term1[p], own2[p], term2[p])
		}
	}
	// c comes back with its persisted terms: its partitions return to it
	// under a term higher than any before, on every member.
	c2, _ := startNode(t, "c", key1, []string{addr(t, a)}, filepath.Join(dir, "c"))
	waitMembers(t, 3, a, b, c2)
	testkit.Eventually(t, 5*time.Second, func() error {
		sub := &collect{}
		own3, term3 := owners(sub, "p", np, a, b, c2)
		if sub.err != nil {
			return sub.err
		}
		for p := range np {
			if own3[p] != own1[p] {
				return fmt.Errorf("partition %d owned by %s, want %s back", p, own3[p], own1[p])
			}
			if own1[p] == "c" && term3[p] <= term2[p] {
				return fmt.Errorf("partition %d back on c with term %d, not above %d", p, term3[p], term2[p])
			}
		}
		return nil
	})
}

// TestGossipWithoutTheKeyIsRejectedAndCounted: a node with another key
// cannot join, the keyed node counts what it rejected, and both stay alone.
func TestGossipWithoutTheKeyIsRejectedAndCounted(t *testing.T) {
	a, _ := startNode(t, "a", key1, nil, "")
	other := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
	for _, k := range []string{other, ""} {
		x, _ := startNode(t, "x"+k[:min(1, len(k))], k, []string{addr(t, a)}, "")
		if _, alone := x.Ready(); !alone {
			t.Errorf("node with key %q joined a mesh with another key", k)
		}
		if x.numMembers() != 1 || a.numMembers() != 1 {
			t.Errorf("members: a %d, x %d; want 1 and 1", a.numMembers(), x.numMembers())
		}
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if a.Rejected() < 2 {
			return fmt.Errorf("a rejected %d messages, want at least 2", a.Rejected())
		}
		return nil
	})
}

// TestNoEmissionBeforeTheFirstJoinAttempt: before Run has tried the seeds,
// every partition is held as a standby.
func TestNoEmissionBeforeTheFirstJoinAttempt(t *testing.T) {
	n, err := New(Config{Name: "solo", Bind: "127.0.0.1:0"}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cs := n.Claims("p", 4)
	if len(cs) != 4 {
		t.Fatalf("claims %v, want all 4 as standby", cs)
	}
	for _, c := range cs {
		if c.Emit {
			t.Errorf("partition %d emits before the mesh joined", c.Partition)
		}
	}
}

// TestTermsSurviveARestart: the terms a node raised are persisted and a
// new Node from the same file never claims a lower one.
func TestTermsSurviveARestart(t *testing.T) {
	f := filepath.Join(t.TempDir(), "terms")
	a, stop := startNode(t, "a", "", nil, f)
	first := a.Claims("p", 4)
	stop()
	n, err := New(Config{Name: "a"}, Options{StateFile: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range first {
		if got := n.terms[termKey("p", c.Partition)].Term; got < c.Term || got == 0 {
			t.Errorf("partition %d: term %d after restart, %d before", c.Partition, got, c.Term)
		}
	}
}

type errorer interface{ Errorf(format string, a ...any) }

// collect keeps the first error reported to it, for polling.
type collect struct{ err error }

func (c *collect) Errorf(format string, a ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, a...)
	}
}

// TestCrashedMemberIsDeclaredDeadWithinTheLANBound: a member that stops
// answering (memberlist shut down without leaving, as after SIGKILL) is
// removed from the survivors' views within a few seconds with the tuned
// timings (about a second on an idle machine), and its partitions move.
func TestCrashedMemberIsDeclaredDeadWithinTheLANBound(t *testing.T) {
	a, _ := startNode(t, "a", key1, nil, "")
	b, _ := startNode(t, "b", key1, []string{addr(t, a)}, "")
	c, _ := startNode(t, "c", key1, []string{addr(t, a)}, "")
	waitMembers(t, 3, a, b, c)
	c.mu.Lock()
	ml := c.ml
	c.mu.Unlock()
	crashed := time.Now()
	c.crashed.Store(true)
	if err := ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, 2, a, b)
	d := time.Since(crashed)
	t.Logf("crash detected by both survivors after %v", d)
	if d > 5*time.Second {
		t.Errorf("crash detected after %v; want well under 5s with the LAN timings", d)
	}
	own, _ := owners(t, "p", 16, a, b)
	for p, o := range own {
		if o == "c" {
			t.Errorf("partition %d still owned by the crashed member", p)
		}
	}
}

// TestASeedThatComesBackIsJoinedAgain: b joined the mesh through seed a;
// a goes away and comes back at the same address with no seeds of its
// own (as after a network partition longer than memberlist gossips to
// the dead, where neither side would contact the other again). b, which
// lists a as a seed, joins it again.
func TestASeedThatComesBackIsJoinedAgain(t *testing.T) {
	dir := t.TempDir()
	a, stopA := startNode(t, "a", key1, nil, filepath.Join(dir, "a"))
	seed := addr(t, a)
	b, _ := startNode(t, "b", key1, []string{seed}, filepath.Join(dir, "b"))
	waitMembers(t, 2, a, b)
	stopA() // leaves: b stops gossiping to it at once
	waitMembers(t, 1, b)
	a2, _ := startNodeAt(t, "a", seed, key1, nil, filepath.Join(dir, "a"))
	waitMembers(t, 2, a2, b)
}
