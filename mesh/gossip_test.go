package mesh

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// measureGossip runs one pipeline of 64 partitions over nodes for d, each
// owner reporting its marks 10 times a second (an epoch every 100ms), and
// returns the bytes sent per member per second.
func measureGossip(nodes []*Node, d time.Duration) (perMember float64, each []float64) {
	const np = 64
	start := make([]uint64, len(nodes))
	for i, n := range nodes {
		n.Claims("p", np)
		start[i] = n.GossipBytes()
	}
	began := time.Now()
	tick := time.NewTicker(100 * time.Millisecond) // the epochs
	defer tick.Stop()
	wm := int64(0)
	for time.Since(began) < d {
		<-tick.C
		wm += 100
		for _, n := range nodes {
			var ms []Mark
			for _, c := range n.Claims("p", np) {
				if c.Emit {
					ms = append(ms, Mark{Partition: c.Partition, Term: c.Term, Watermark: wm})
				}
			}
			n.Committed("p", ms)
		}
	}
	el := time.Since(began).Seconds()
	var total float64
	for i, n := range nodes {
		b := float64(n.GossipBytes()-start[i]) / el
		each = append(each, b)
		total += b
	}
	return total / float64(len(nodes)), each
}

// TestGossipBytesAreCounted: every member of a 3-member mesh counts the
// bytes it sends (membership gossip, the term table and marks), and the
// cost stays within a LAN's means (under 200 KB/s per member).
func TestGossipBytesAreCounted(t *testing.T) {
	dir := t.TempDir()
	var nodes []*Node
	for i := range 3 {
		var join []string
		if i > 0 {
			join = []string{addr(t, nodes[0])}
		}
		n, _ := startNode(t, fmt.Sprintf("m%d", i), key1, join, filepath.Join(dir, fmt.Sprint(i)))
		nodes = append(nodes, n)
	}
	waitMembers(t, 3, nodes...)
	per, each := measureGossip(nodes, time.Second)
	for i, b := range each {
		if b == 0 {
			t.Errorf("%s counted no bytes sent", nodes[i].Name())
		}
	}
	if per > 200_000 {
		t.Errorf("%.0f bytes/s per member", per)
	}
}

// BenchmarkGossipBytesPerMember measures what a member sends per second
// with 3 and with 10 members on loopback (one pipeline of 64 partitions,
// marks at 10 epochs a second), reported as bytes/s/member:
//
//	go test ./mesh -run - -bench GossipBytes -benchtime 1x
func BenchmarkGossipBytesPerMember(b *testing.B) {
	for _, size := range []int{3, 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			dir := b.TempDir()
			var nodes []*Node
			for i := range size {
				var join []string
				if i > 0 {
					a, err := nodes[0].Addr()
					if err != nil {
						b.Fatal(err)
					}
					join = []string{a}
				}
				n, _ := startNode(b, fmt.Sprintf("m%02d", i), key1, join, filepath.Join(dir, fmt.Sprint(i)))
				nodes = append(nodes, n)
			}
			testkit.Eventually(b, 30*time.Second, func() error {
				for _, n := range nodes {
					if got := n.numMembers(); got != size {
						return fmt.Errorf("%s sees %d members, want %d", n.Name(), got, size)
					}
				}
				return nil
			})
			b.ResetTimer()
			var per float64
			for range b.N {
				per, _ = measureGossip(nodes, 3*time.Second)
			}
			b.ReportMetric(per, "bytes/s/member")
		})
	}
}
