package mesh

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

// sentBytes sums memberlist's "udp sent" and "tcp sent" counters: the bytes
// every member of this process wrote to the network (after encryption;
// without IP/UDP/TCP headers).
type sentBytes struct {
	metrics.BlackholeSink
	udp, tcp atomic.Uint64
}

func (s *sentBytes) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	switch strings.Join(key, ".") {
	case "memberlist.udp.sent":
		s.udp.Add(uint64(val))
	case "memberlist.tcp.sent":
		s.tcp.Add(uint64(val))
	}
}

func (s *sentBytes) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

// TestGossipBandwidth measures the gossip bytes each member sends per
// second, with the mesh's default (LAN) timings and a key, two pipelines
// of 64 partitions held: idle, and while the pipeline set changes once a
// second (every member's metadata digest changes, as when an applied
// pipeline spreads). It fails when a member sends more than a budget of
// 20 KB/s idle. By default 3 members for 3 s; MESH_BANDWIDTH=full also
// measures 10 members, 10 s per figure:
//
//	MESH_BANDWIDTH=full go test ./mesh -run TestGossipBandwidth -v
func TestGossipBandwidth(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for several seconds")
	}
	sink := &sentBytes{}
	mc := metrics.DefaultConfig("")
	mc.EnableHostname, mc.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(mc, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.NewGlobal(mc, &metrics.BlackholeSink{}) })
	sizes, window := []int{3}, 3*time.Second
	if os.Getenv("MESH_BANDWIDTH") == "full" {
		sizes, window = []int{3, 10}, 10*time.Second
	}
	const idleBudget = 20_000 // bytes/s per member
	for _, size := range sizes {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			nodes := make([]*Node, size)
			nodes[0], _ = startNode(t, "m00", key1, nil, "")
			seed := []string{addr(t, nodes[0])}
			for i := 1; i < size; i++ {
				nodes[i], _ = startNode(t, fmt.Sprintf("m%02d", i), key1, seed, "")
			}
			waitMembers(t, size, nodes...)
			for _, n := range nodes {
				n.SetPipelineDigest("0000000000000000")
				for _, p := range []string{"p1", "p2"} {
					n.Claims(p, 64)
				}
			}
			owners(t, "p1", 64, nodes...) // terms agreed
			measure := func(change func(k int)) (perNode float64, udp, tcp uint64) {
				u0, t0 := sink.udp.Load(), sink.tcp.Load()
				start := time.Now()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for k := 1; time.Since(start) < window; k++ {
					<-tick.C
					if change != nil {
						change(k)
					}
				}
				el := time.Since(start).Seconds()
				udp, tcp = sink.udp.Load()-u0, sink.tcp.Load()-t0
				return float64(udp+tcp) / el / float64(size), udp, tcp
			}
			idle, iu, it := measure(nil)
			chg, cu, ct := measure(func(k int) {
				for _, n := range nodes { // the change spreads to every member
					n.SetPipelineDigest(fmt.Sprintf("%016x", k))
				}
			})
			nodes[0].mu.Lock()
			t.Logf("metadata of a member: %d bytes", len(nodes[0].metaBuf))
			nodes[0].mu.Unlock()
			t.Logf("gossip members=%d idle: %.0f B/s per member (udp %d B, tcp %d B in %s)", size, idle, iu, it, window)
			t.Logf("gossip members=%d one pipeline change/s: %.0f B/s per member (udp %d B, tcp %d B in %s)", size, chg, cu, ct, window)
			if idle > idleBudget {
				t.Errorf("idle gossip %.0f B/s per member; budget %d", idle, idleBudget)
			}
			if idle == 0 || chg == 0 {
				t.Errorf("idle %.0f B/s, with changes %.0f B/s: the counters do not see the traffic", idle, chg)
			}
		})
	}
}
