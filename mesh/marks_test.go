package mesh

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestALiveOwnerHandsOverItselfWithItsMark: when a member joins and
// becomes the rendezvous owner of partitions another live member emits,
// it keeps them as a standby (no two emitters) until the live owner's own
// Claims hands them over at its epoch boundary; the new owner then emits
// under a term one higher and knows the watermark the previous owner's
// committed outputs reached (sent by Committed to the partition's
// holders), so it can continue exactly there.
func TestALiveOwnerHandsOverItselfWithItsMark(t *testing.T) {
	dir := t.TempDir()
	const np = 16
	a, _ := startNode(t, "a", key1, nil, filepath.Join(dir, "a"))
	b, _ := startNode(t, "b", key1, []string{addr(t, a)}, filepath.Join(dir, "b"))
	waitMembers(t, 2, a, b)
	own1, term1 := owners(t, "p", np, a, b)
	c, _ := startNode(t, "c", key1, []string{addr(t, a)}, filepath.Join(dir, "c"))
	waitMembers(t, 3, a, b, c)
	moving := map[int]string{} // partition -> previous owner
	for p := range np {
		if Rank([]string{"a", "b", "c"}, "p", p, 1)[0] == "c" {
			moving[p] = own1[p]
		}
	}
	if len(moving) == 0 {
		t.Fatal("no partition moves to c; pick other names")
	}
	// c may not emit them while their owner lives and has not handed over;
	// nor may the third member take them.
	for range 3 {
		for _, n := range []*Node{c, a, b} {
			for _, cl := range n.Claims("p", np) {
				if prev, ok := moving[cl.Partition]; ok && cl.Emit && n.Name() != prev {
					t.Fatalf("%s emits partition %d before %s handed it over", n.Name(), cl.Partition, prev)
				}
			}
			if n == c {
				break // only c asks: the previous owners' runners have not reached an epoch boundary
			}
		}
	}
	// The previous owners commit an epoch (its mark goes to the holders,
	// c among them), then reach their epoch boundary: they hand over.
	for _, n := range []*Node{a, b} {
		var ms []Mark
		for p, prev := range moving {
			if prev == n.Name() {
				ms = append(ms, Mark{Partition: p, Term: term1[p], Watermark: int64(1000 + p)})
			}
		}
		n.Committed("p", ms)
		for _, cl := range n.Claims("p", np) {
			if _, ok := moving[cl.Partition]; ok && cl.Emit {
				t.Errorf("%s still emits partition %d after handing it over", n.Name(), cl.Partition)
			}
		}
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		for p := range moving {
			wm, ok := c.EmittedThrough("p", p)
			if !ok || wm != int64(1000+p) {
				return fmt.Errorf("partition %d: c knows the mark %d, %v; want %d", p, wm, ok, 1000+p)
			}
		}
		emits := map[int]uint64{}
		for _, cl := range c.Claims("p", np) {
			if cl.Emit {
				emits[cl.Partition] = cl.Term
			}
		}
		for p := range moving {
			if emits[p] != term1[p]+1 {
				return fmt.Errorf("partition %d: c emits it under term %d; want %d", p, emits[p], term1[p]+1)
			}
		}
		return nil
	})
	owners(t, "p", np, a, b, c) // one emitter per partition, one term
	// What the new owner's uplink claim starts from: the previous owner's
	// mark, for the new term only.
	for p := range moving {
		if from, ok := c.TermFrom("p", p, term1[p]+1); !ok || from != int64(1000+p) {
			t.Errorf("partition %d: TermFrom = %d, %v; want %d", p, from, ok, 1000+p)
		}
		if _, ok := c.TermFrom("p", p, term1[p]); ok {
			t.Errorf("partition %d: TermFrom known for the previous owner's term", p)
		}
	}
}

// TestDrainHandsEveryPartitionOverWithItsMarks: a drained member hands
// each partition it owns to the member that ranks next, at its own epoch
// boundary and with its last mark, and then holds nothing (neither owner
// nor standby); the others never emit a partition before it handed it
// over, and Drain returns once it owns nothing.
func TestDrainHandsEveryPartitionOverWithItsMarks(t *testing.T) {
	dir := t.TempDir()
	const np = 16
	a, _ := startNode(t, "a", key1, nil, filepath.Join(dir, "a"))
	b, _ := startNode(t, "b", key1, []string{addr(t, a)}, filepath.Join(dir, "b"))
	c, _ := startNode(t, "c", key1, []string{addr(t, a)}, filepath.Join(dir, "c"))
	waitMembers(t, 3, a, b, c)
	own1, term1 := owners(t, "p", np, a, b, c)
	var mine []int
	for p, o := range own1 {
		if o == "b" {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		t.Fatal("b owns nothing; pick other names")
	}
	// b's runner commits an epoch: its marks reach the holders.
	var ms []Mark
	for _, p := range mine {
		ms = append(ms, Mark{Partition: p, Term: term1[p], Watermark: int64(5000 + p)})
	}
	b.Committed("p", ms)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.Drain(ctx) }()
	// Until b's runner reaches an epoch boundary, nobody else emits b's
	// partitions; then b hands them over (its runner keeps asking).
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, n := range []*Node{a, c} {
			for _, m := range n.Members() {
				if m.Name == "b" && !m.Draining {
					return fmt.Errorf("%s does not see b draining yet", n.Name())
				}
			}
		}
		return nil
	})
	for _, n := range []*Node{a, c} {
		for _, cl := range n.Claims("p", np) {
			if cl.Emit && own1[cl.Partition] == "b" {
				t.Fatalf("%s emits partition %d before b handed it over", n.Name(), cl.Partition)
			}
		}
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if cs := b.Claims("p", np); len(cs) != 0 {
			return fmt.Errorf("b still holds %d partitions", len(cs))
		}
		for _, p := range mine {
			for _, n := range []*Node{a, c} {
				for _, cl := range n.Claims("p", np) {
					if cl.Partition == p && cl.Emit {
						if wm, ok := n.EmittedThrough("p", p); !ok || wm != int64(5000+p) {
							return fmt.Errorf("partition %d: new owner %s knows mark %d, %v", p, n.Name(), wm, ok)
						}
						if cl.Term != term1[p]+1 {
							return fmt.Errorf("partition %d: term %d, want %d", p, cl.Term, term1[p]+1)
						}
					}
				}
			}
		}
		return nil
	})
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// a and c share everything: one emitter per partition, one term, b
	// holds nothing.
	testkit.Eventually(t, 10*time.Second, func() error {
		var col collect
		owners(&col, "p", np, a, c)
		return col.err
	})
	if cs := b.Claims("p", np); len(cs) != 0 {
		t.Errorf("drained b holds %v", cs)
	}
}

// TestMarksOfALowerTermDoNotRaiseTheFence: after a network partition
// heals, the owner of a lower term (which kept processing on its side)
// may report a higher watermark than the higher term's owner; the mark a
// later owner starts from stays the higher term's, or the windows in
// between would be dropped by both (lost).
func TestMarksOfALowerTermDoNotRaiseTheFence(t *testing.T) {
	n, err := New(Config{Name: "z"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.receiveMarks([]byte(`{"p":"p","m":[[3,5,1000]],"f":"w"}`)) // the winner, term 5
	n.receiveMarks([]byte(`{"p":"p","m":[[3,4,9000]],"f":"x"}`)) // the loser, term 4, further on
	if wm, ok := n.EmittedThrough("p", 3); !ok || wm != 1000 {
		t.Errorf("EmittedThrough = %d, %v; want the term-5 mark 1000", wm, ok)
	}
	n.receiveMarks([]byte(`{"p":"p","m":[[3,5,1500]],"f":"w"}`))
	n.receiveMarks([]byte(`{"p":"p","m":[[3,5,1200]],"f":"w"}`)) // late, out of order
	if wm, _ := n.EmittedThrough("p", 3); wm != 1500 {
		t.Errorf("EmittedThrough = %d; want 1500", wm)
	}
}
