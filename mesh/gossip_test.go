package mesh

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestGossipBytesPerMember measures what a member sends per second, with 3
// and with 10 members on loopback, each owning its share of one pipeline's
// 64 partitions and reporting its marks 10 times a second (an epoch every
// 100ms): the mesh's network cost per gateway. It checks that the counter
// counts (every member sends something) and that the cost stays within a
// LAN's means (under 200 KB/s per member).
func TestGossipBytesPerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for 3s per mesh size")
	}
	for _, size := range []int{3, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			var nodes []*Node
			for i := range size {
				var join []string
				if i > 0 {
					join = []string{addr(t, nodes[0])}
				}
				n, _ := startNode(t, fmt.Sprintf("m%02d", i), key1, join, filepath.Join(dir, fmt.Sprint(i)))
				nodes = append(nodes, n)
			}
			testkit.Eventually(t, 30*time.Second, func() error { // 10 members on a loaded machine
				for _, n := range nodes {
					if got := n.numMembers(); got != size {
						return fmt.Errorf("%s sees %d members, want %d", n.Name(), got, size)
					}
				}
				return nil
			})
			const np = 64
			start := make([]uint64, size)
			for i, n := range nodes {
				n.Claims("p", np)
				start[i] = n.GossipBytes()
			}
			began := time.Now()
			tick := time.NewTicker(100 * time.Millisecond) // the epochs
			defer tick.Stop()
			wm := int64(0)
			for time.Since(began) < 3*time.Second {
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
				if b == 0 {
					t.Errorf("%s sent nothing", n.Name())
				}
				total += b
			}
			per := total / float64(size)
			t.Logf("%d members: %.0f bytes/s sent per member (membership gossip, term table, marks of 64 partitions at 10 epochs/s)", size, per)
			if per > 200_000 {
				t.Errorf("%.0f bytes/s per member", per)
			}
		})
	}
}
