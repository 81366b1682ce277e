package node

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/mesh"
)

func TestMeshConfigIsStrictAndNamesKeys(t *testing.T) {
	_, err := ParseConfig("edged.yaml", []byte("dataDir: /tmp/x\nmesh:\n  joinn: [a:1]\n"))
	if err == nil || !strings.Contains(err.Error(), "joinn") {
		t.Errorf("unknown mesh key accepted: %v", err)
	}
	_, err = ParseConfig("edged.yaml", []byte("dataDir: /tmp/x\nmesh:\n  key: nope\n  standbys: -3\n"))
	if err == nil || !strings.Contains(err.Error(), "mesh.key") || !strings.Contains(err.Error(), "mesh.standbys") {
		t.Errorf("bad mesh keys not all named: %v", err)
	}
	c, err := ParseConfig("edged.yaml", []byte("dataDir: /tmp/x\nmesh:\n  join: [\"10.0.0.2:7946\"]\n  probeInterval: 300ms\n"))
	if err != nil || c.Mesh == nil || c.Mesh.ProbeInterval != 300*time.Millisecond {
		t.Errorf("valid mesh section: %+v, %v", c.Mesh, err)
	}
}

// TestMeshSharesPartitionsAndAnswersTheTable: two in-process nodes with a
// mesh section join each other; each partition of the pipeline has one
// owner and the other node as its standby, both nodes answer the same table
// on GET /api/v1/partitions, and status lists both members. The first
// node owns everything until the second joins; it hands the second's
// partitions over at its runner's next epoch boundary (the clocks advance).
func TestMeshSharesPartitionsAndAnswersTheTable(t *testing.T) {
	a, sa, b, sb, clocks := startMeshPair(t)
	eventually(t, 10*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			st, err := n.Status()
			if err != nil {
				return err
			}
			if st.Mesh == nil || len(st.Mesh.Members) != 2 {
				return fmt.Errorf("%s status mesh: %+v", n.mesh.Name(), st.Mesh)
			}
		}
		return nil
	})
	table := func(url string) PartitionsResponse {
		code, body := do(t, "GET", url+"/api/v1/partitions", "", "")
		if code != 200 {
			t.Fatalf("GET /api/v1/partitions: %d %s", code, body)
		}
		var r PartitionsResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	eventually(t, 10*time.Second, func() error {
		for _, c := range clocks {
			c.set(c.Now().Add(time.Second)) // epochs: the runners follow (and hand over) their claims
		}
		ta, tb := table(sa.URL), table(sb.URL)
		if !ta.Mesh || len(ta.Partitions) == 0 || len(ta.Partitions) != len(tb.Partitions) {
			return fmt.Errorf("tables: %+v / %+v", ta, tb)
		}
		owned := map[string]int{}
		for i, h := range ta.Partitions {
			g := tb.Partitions[i]
			if h.Owner != g.Owner || h.Term != g.Term || h.Term == 0 {
				return fmt.Errorf("partition %d: a says %s/%d, b says %s/%d", h.Partition, h.Owner, h.Term, g.Owner, g.Term)
			}
			if len(h.Standbys) != 1 || h.Standbys[0] == h.Owner {
				return fmt.Errorf("partition %d: standbys %v of owner %s", h.Partition, h.Standbys, h.Owner)
			}
			owned[h.Owner]++
		}
		if owned["a"] == 0 || owned["b"] == 0 {
			return fmt.Errorf("owners %v: one node owns everything", owned)
		}
		return nil
	})
}

func TestPartitionsWithoutMeshIsSingleNode(t *testing.T) {
	tn := startNode(t, testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline}), newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	code, body := do(t, "GET", srv.URL+"/api/v1/partitions", "", "")
	var r PartitionsResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if r.Mesh || len(r.Partitions) == 0 {
		t.Errorf("without mesh: %+v", r)
	}
	for _, h := range r.Partitions {
		if h.Term != 1 {
			t.Errorf("partition %d term %d, want 1", h.Partition, h.Term)
		}
	}
	if st, _ := tn.Status(); st.Mesh != nil {
		t.Errorf("status has a mesh without a mesh section: %+v", st.Mesh)
	}
}

// TestDrainHandsPartitionsToThePeer: POST /api/v1/drain on one of two
// mesh members answers once its runner handed every partition over; the
// other then owns them all, and the drained node's status says so. A node
// without a mesh answers 501.
func TestDrainHandsPartitionsToThePeer(t *testing.T) {
	_, sa, b, sb, clocks := startMeshPair(t)
	owned := func(url string) map[string]int {
		code, body := do(t, "GET", url+"/api/v1/partitions", "", "")
		var r PartitionsResponse
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("GET /api/v1/partitions: %d %s", code, body)
		}
		out := map[string]int{}
		for _, h := range r.Partitions {
			out[h.Owner]++
		}
		return out
	}
	stop := make(chan struct{})
	ticking := make(chan struct{})
	go func() { // epochs: the runners follow (and hand over) their claims
		defer close(ticking)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // the fake clocks' pace
			}
			for _, c := range clocks {
				c.set(c.Now().Add(100 * time.Millisecond))
			}
		}
	}()
	defer func() { close(stop); <-ticking }()
	eventually(t, 10*time.Second, func() error {
		if o := owned(sa.URL); o["a"] == 0 || o["b"] == 0 {
			return fmt.Errorf("owners %v", o)
		}
		return nil
	})
	code, body := do(t, "POST", sb.URL+"/api/v1/drain?timeout=20s", "", "")
	if code != 200 {
		t.Fatalf("POST /api/v1/drain: %d %s", code, body)
	}
	eventually(t, 10*time.Second, func() error {
		if o := owned(sa.URL); o["b"] != 0 || o["a"] == 0 {
			return fmt.Errorf("after the drain, a's table has owners %v", o)
		}
		return nil
	})
	st, _ := b.Status()
	for _, m := range st.Mesh.Members {
		if m.Self && !m.Draining {
			t.Errorf("drained b's status: %+v", m)
		}
	}
	lone := startNode(t, testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline}), newFakeClock(t0))
	srv := httptest.NewServer(lone.Handler())
	defer srv.Close()
	if code, body := do(t, "POST", srv.URL+"/api/v1/drain", "", ""); code != 501 {
		t.Errorf("drain without a mesh: %d %s; want 501", code, body)
	}
}

// startMeshPair starts two in-process mesh members a and b (b joins a),
// each running a keyed pipeline t1 on its own fake clock and serving its
// API; it returns them, their servers and their clocks.
func startMeshPair(t *testing.T) (a *testNode, sa *httptest.Server, b *testNode, sb *httptest.Server, clocks []*fakeClock) {
	t.Helper()
	start := func(name string, join []string) (*testNode, *httptest.Server) {
		keyed := strings.Replace(testPipeline, "      mqtt: {topics:", "      key: [sensor]\n      mqtt: {topics:", 1)
		cfg := testConfig(t, t.TempDir(), map[string]string{"t1": keyed})
		cfg.Mesh = &mesh.Config{Name: name, Bind: "127.0.0.1:0", Join: join}
		clk := newFakeClock(t0)
		clocks = append(clocks, clk)
		tn := startNode(t, cfg, clk)
		srv := httptest.NewServer(tn.Handler())
		t.Cleanup(srv.Close)
		return tn, srv
	}
	a, sa = start("a", nil)
	var aAddr string
	eventually(t, 5*time.Second, func() (err error) {
		aAddr, err = a.mesh.Addr()
		return err
	})
	b, sb = start("b", []string{aAddr})
	return a, sa, b, sb, clocks
}
