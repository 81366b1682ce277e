//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// netns is a network made of namespaces for one test: a router namespace
// (the site's LAN switch, with mosquitto on it), one namespace per gateway
// linked to it by a veth pair, and a veth from the host so the test reaches
// the gateways' APIs. A network partition is a policy-routing rule in the
// router that prohibits traffic between two gateway subnets; the broker and
// the host stay reachable from both sides.
type netns struct {
	t      *testing.T
	id     string
	net    int // the second octet of 10.N.0.0/16
	router string
	nodes  []string // namespace names
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetns(t *testing.T, nodes int) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the split-brain test builds network namespaces: it needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the split-brain test needs iproute2's ip (sudo apt-get install -y iproute2)")
	}
	n := &netns{t: t, id: fmt.Sprintf("%04d", os.Getpid()%10000), net: 200 + rand.IntN(50)}
	n.router = "sbR" + n.id
	t.Cleanup(n.close)
	run(t, "ip", "netns", "add", n.router)
	run(t, "ip", "netns", "exec", n.router, "ip", "link", "set", "lo", "up")
	run(t, "ip", "netns", "exec", n.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	link := func(ns, inner, outer string, subnet int) {
		run(t, "ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
		run(t, "ip", "link", "set", outer, "netns", n.router)
		run(t, "ip", "netns", "exec", n.router, "ip", "addr", "add", fmt.Sprintf("10.%d.%d.1/24", n.net, subnet), "dev", outer)
		run(t, "ip", "netns", "exec", n.router, "ip", "link", "set", outer, "up")
		if ns != "" {
			run(t, "ip", "link", "set", inner, "netns", ns)
		}
		in := []string{"ip"}
		if ns != "" {
			in = []string{"ip", "netns", "exec", ns, "ip"}
		}
		run(t, append(in, "addr", "add", fmt.Sprintf("10.%d.%d.2/24", n.net, subnet), "dev", inner)...)
		run(t, append(in, "link", "set", inner, "up")...)
	}
	for i := range nodes {
		ns := fmt.Sprintf("sb%c%s", 'A'+i, n.id)
		run(t, "ip", "netns", "add", ns)
		n.nodes = append(n.nodes, ns)
		run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
		link(ns, ns+"i", ns+"o", i+1)
		run(t, "ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", fmt.Sprintf("10.%d.%d.1", n.net, i+1))
	}
	link("", "sbH"+n.id+"i", "sbH"+n.id+"o", 100)
	run(t, "ip", "route", "add", fmt.Sprintf("10.%d.0.0/16", n.net), "via", fmt.Sprintf("10.%d.100.1", n.net))
	return n
}

// addr is node i's address.
func (n *netns) addr(i int) string { return fmt.Sprintf("10.%d.%d.2", n.net, i+1) }

// brokerAddr is the broker's address as node i reaches it.
func (n *netns) brokerAddr(i int) string { return fmt.Sprintf("10.%d.%d.1", n.net, i+1) }

// split cuts the traffic between node i's and node j's subnets, or heals it.
func (n *netns) split(i, j int, cut bool) {
	op := "add"
	if !cut {
		op = "del"
	}
	for _, d := range [][2]int{{i, j}, {j, i}} {
		run(n.t, "ip", "netns", "exec", n.router, "ip", "rule", op, "from", fmt.Sprintf("10.%d.%d.0/24", n.net, d[0]+1),
			"to", fmt.Sprintf("10.%d.%d.0/24", n.net, d[1]+1), "prohibit")
	}
}

func (n *netns) close() {
	exec.Command("ip", "route", "del", fmt.Sprintf("10.%d.0.0/16", n.net)).Run()
	exec.Command("ip", "link", "del", "sbH"+n.id+"i").Run()
	for _, ns := range append(n.nodes, n.router) {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// upRow is a row of an uplink object (JSON Lines).
type upRow struct {
	ID     string  `json:"_id"`
	Sensor string  `json:"sensor"`
	Start  float64 `json:"window_start"`
	End    float64 `json:"window_end"`
	N      float64 `json:"n"`
}

// TestIntegrationSplitBrainConvergesAndTheUplinkFences builds a network
// partition between two gateways of a mesh (network namespaces, veth pairs,
// a prohibit rule in the router namespace) while both still reach the
// site's broker and the central store. Each side keeps processing and
// emitting, every output carrying (partition, term); after the partition
// heals the nodes converge on one owner per partition within seconds; in
// the store every window is present (nothing lost), and once a higher
// claim on a partition is recorded no object of a lower claim holding a
// window after its From is uploaded.
func TestIntegrationSplitBrainConvergesAndTheUplinkFences(t *testing.T) {
	nn := newNetns(t, 2)
	work := t.TempDir()
	bin := t.TempDir()
	root, _ := filepath.Abs("../../..")
	for _, c := range []string{"edged", "edgectl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, c), "./cmd/"+c)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	// mosquitto on the router (the site's broker)
	conf := filepath.Join(work, "mosquitto.conf")
	os.WriteFile(conf, []byte("listener 1883\nallow_anonymous true\nmax_queued_messages 0\nuser root\n"), 0o644)
	mq := exec.Command("ip", "netns", "exec", nn.router, "mosquitto", "-c", conf)
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Process.Kill(); mq.Wait() })
	store := filepath.Join(work, "store") // the central store both sides reach
	pipe := strings.Replace(pipelineYAML, "    - {name: out, input: w, type: file, path: windows.jsonl}\n",
		"    - {name: out, input: w, type: file, path: windows.jsonl}\n    - {name: up, input: w, type: uplink}\n", 1)
	var nodes []*proc
	for i := range 2 {
		p := &proc{name: fmt.Sprintf("n%d", i), dir: filepath.Join(work, fmt.Sprintf("n%d", i)), ns: nn.nodes[i],
			api: nn.addr(i) + ":8080", gossip: nn.addr(i) + ":7946", token: "split-brain-test-token"}
		cfg := fmt.Sprintf(`storage: {sync: never}
api: {token: split-brain-test-token}
epochs: {partitions: %d}
mqtt:
  brokers: [tcp://%s:1883]
  clientID: sb-%s
uplink: {target: local, format: jsonl, max_age: 1s, node: %s, local: {dir: %s}}
mesh:
  name: %s
  bind: %q
  key: %s
  joinRetry: 300ms
  join: [%q]
`, partitions, nn.brokerAddr(i), p.name, p.name, store, p.name, p.gossip, "c3BsaXQtYnJhaW4tdGVzdC1rZXktMzItYnl0ZXMhISE=", nn.addr(1-i)+":7946")
		os.MkdirAll(filepath.Join(p.dir, "pipelines"), 0o755)
		p.cfg = filepath.Join(p.dir, "edged.yaml")
		os.WriteFile(p.cfg, []byte(cfg), 0o644)
		os.WriteFile(filepath.Join(p.dir, "pipelines", "win.yaml"), []byte(pipe), 0o644)
		if err := p.start(filepath.Join(bin, "edged")); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, p)
	}
	t.Cleanup(func() {
		for _, p := range nodes {
			p.kill()
		}
	})
	logs := func() string {
		var b strings.Builder
		for _, p := range nodes {
			l, _ := os.ReadFile(filepath.Join(p.dir, "edged.log"))
			fmt.Fprintf(&b, "--- %s\n%s\n", p.name, l)
		}
		return b.String()
	}
	tables := func() ([][]holding, error) {
		var out [][]holding
		for _, p := range nodes {
			tb, err := p.table()
			if err != nil {
				return nil, err
			}
			out = append(out, tb)
		}
		return out, nil
	}
	converged := func() error {
		ts, err := tables()
		if err != nil {
			return err
		}
		if len(ts[0]) != partitions || len(ts[1]) != partitions {
			return fmt.Errorf("tables of %d and %d partitions", len(ts[0]), len(ts[1]))
		}
		owners := map[string]int{}
		for i, h := range ts[0] {
			if ts[1][i].Owner != h.Owner || ts[1][i].Term != h.Term {
				return fmt.Errorf("partition %d: n0 says %s/%d, n1 says %+v", i, h.Owner, h.Term, ts[1][i])
			}
			owners[h.Owner]++
		}
		if len(owners) != 2 {
			return fmt.Errorf("owners %v", owners)
		}
		return nil
	}
	if err := waitFor(t.Context(), 30*time.Second, "two gateways agree", converged); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	sim := exec.Command("ip", "netns", "exec", nn.router, filepath.Join(bin, "edgectl"), "sim", "--broker", "127.0.0.1:1883",
		"--sensors", "200", "--rate", "400", "--duration", "24s", "--qos", "1", "--machines", "0", "--spikes", "0", "--progress", "0")
	var simOut bytes.Buffer
	sim.Stdout, sim.Stderr = &simOut, &simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(40*time.Second, func() { sim.Process.Kill() })
	// Let windows flow, then cut the two gateways apart (both keep the
	// broker and the store).
	if err := waitFor(t.Context(), 20*time.Second, "windows emitted", func() error {
		for _, p := range nodes {
			if rows, _ := readRows(p.file(), 0); len(rows) == 0 {
				return fmt.Errorf("%s emitted nothing yet", p.name)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	before, _ := tables()
	offs := []int64{}
	for _, p := range nodes {
		st, _ := os.Stat(p.file())
		offs = append(offs, st.Size())
	}
	nn.split(0, 1, true)
	split := time.Now()
	// Each side declares the other dead and takes every partition.
	if err := waitFor(t.Context(), 15*time.Second, "each side owns every partition", func() error {
		ts, err := tables()
		if err != nil {
			return err
		}
		for i, tb := range ts {
			for _, h := range tb {
				if h.Owner != nodes[i].name {
					return fmt.Errorf("%s: partition %d owned by %s", nodes[i].name, h.Partition, h.Owner)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	t.Logf("split: both sides own every partition after %v", time.Since(split).Round(time.Millisecond))
	// Both sides emit, under their own terms.
	if err := waitFor(t.Context(), 15*time.Second, "both sides emit partitions the other owned, under higher terms", func() error {
		for i, p := range nodes {
			rows, _ := readRows(p.file(), offs[i])
			other := 0
			for _, r := range rows {
				part := partitionOf(r.ID)
				if before[i][part].Owner != p.name {
					var term uint64
					fmt.Sscan(strings.Split(r.ID, "/")[2], &term)
					if term > before[i][part].Term {
						other++ // rows of an epoch that started before the split may carry the old term
					}
				}
			}
			if other == 0 {
				return fmt.Errorf("%s has not emitted the other side's partitions yet", p.name)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	nn.split(0, 1, false)
	healed := time.Now()
	if err := waitFor(t.Context(), 30*time.Second, "one owner per partition after the heal", converged); err != nil {
		t.Fatalf("%v\n%s", err, logs())
	}
	t.Logf("heal: one owner per partition after %v", time.Since(healed).Round(time.Millisecond))
	sim.Wait()
	// Wait until both nodes emitted everything they will (their window
	// files stop growing), flush both uplinks, then read the store.
	var sizes string
	stable := 0
	if err := waitFor(t.Context(), 60*time.Second, "the nodes stop emitting", func() error {
		var b strings.Builder
		for _, p := range nodes {
			st, _ := os.Stat(p.file())
			fmt.Fprint(&b, st.Size(), " ")
		}
		if b.String() == sizes {
			stable++
		} else {
			sizes, stable = b.String(), 0
		}
		if stable < 40 { // 2s at the 50ms poll
			return fmt.Errorf("sizes %s", sizes)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range nodes {
		c := http.Client{Timeout: 40 * time.Second}
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.api+"/api/v1/uplink/flush?timeout=30s", nil)
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	dec, _ := zstd.NewReader(nil)
	type win struct {
		sensor string
		start  float64
	}
	type obj struct {
		node  string
		mtime time.Time
		rows  []upRow
	}
	var objs []obj
	claims := map[int][]struct {
		term  uint64
		owner string
		from  int64
		mtime time.Time
	}{}
	filepath.WalkDir(store, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		info, _ := d.Info()
		if strings.Contains(path, "/_claims/") {
			var part int
			fmt.Sscanf(filepath.Base(filepath.Dir(path)), "p%d", &part)
			f := strings.SplitN(d.Name(), "-", 3)
			term, _ := strconv.ParseUint(f[0], 10, 64)
			from, _ := strconv.ParseUint(f[1], 10, 64)
			claims[part] = append(claims[part], struct {
				term  uint64
				owner string
				from  int64
				mtime time.Time
			}{term, f[2], int64(from ^ (1 << 63)), info.ModTime()})
			return nil
		}
		b, _ := os.ReadFile(path)
		raw, err := dec.DecodeAll(b, nil)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		o := obj{node: d.Name()[:strings.Index(d.Name(), "-p")], mtime: info.ModTime()}
		for _, l := range bytes.Split(raw, []byte("\n")) {
			var r upRow
			if json.Unmarshal(l, &r) == nil && r.ID != "" {
				o.rows = append(o.rows, r)
			}
		}
		objs = append(objs, o)
		return nil
	})
	// Nothing lost: every window in the union of the file sinks (both
	// sides' emissions) is in the store.
	stored := map[win]int{}
	for _, o := range objs {
		for _, r := range o.rows {
			stored[win{r.Sensor, r.Start}]++
		}
	}
	emitted := map[win][]string{}
	for _, p := range nodes {
		rows, _ := readRows(p.file(), 0)
		for _, r := range rows {
			ms, _ := startMs(r.Start)
			emitted[win{r.Sensor, float64(ms)}] = append(emitted[win{r.Sensor, float64(ms)}], p.name+":"+r.ID)
		}
	}
	missing := 0
	for w, by := range emitted {
		if stored[w] == 0 {
			missing++
			if missing <= 3 {
				t.Logf("not in the store: %s@%.0f emitted by %v", w.sensor, w.start, by)
				var part int
				fmt.Sscanf(strings.SplitN(by[0], "/", 3)[1], "%d", &part)
				t.Logf("claims of partition %d: %v", part, claims[part])
				for _, l := range strings.Split(logs(), "\n") {
					if strings.Contains(l, fmt.Sprintf("partition=%d ", part)) || strings.Contains(l, fmt.Sprintf("-p%d-", part)) || strings.HasPrefix(l, "---") || strings.Contains(l, "handing") || strings.Contains(l, "handed") || strings.Contains(l, "left or died") || strings.Contains(l, "joined") {
						t.Log(l)
					}
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d emitted windows are not in the store", missing, len(emitted))
	}
	// Fenced: no object written after a higher claim of another node was
	// recorded holds a lower term's window that claim covers (one upload
	// in flight allowed: 1s). The claim covering a window is the highest
	// one whose From the window ends after; a node's own higher claim
	// keeps the windows of its lower term it covers (uplink.Superseded).
	late := 0
	for _, o := range objs {
		for _, r := range o.rows {
			f := strings.Split(r.ID, "/")
			var part int
			var term uint64
			fmt.Sscan(f[1], &part)
			fmt.Sscan(f[2], &term)
			coverTerm, coverOwner, coverAt := term, o.node, time.Time{}
			for _, c := range claims[part] {
				higher := c.term > coverTerm || (c.term == coverTerm && c.owner > coverOwner)
				if higher && int64(r.End) > c.from {
					coverTerm, coverOwner, coverAt = c.term, c.owner, c.mtime
				}
			}
			if coverOwner != o.node && o.mtime.After(coverAt.Add(time.Second)) {
				late++
			}
		}
	}
	if late > 0 {
		t.Errorf("%d rows of a lower term uploaded after a higher claim covering them was recorded", late)
	}
	dup := 0
	for _, k := range stored {
		if k > 1 {
			dup++
		}
	}
	t.Logf("store: %d windows, %d present more than once (uploaded by both sides before the higher claim was recorded), %d objects, claims %v", len(stored), dup, len(objs), claims)
	if len(stored) == 0 {
		t.Fatalf("nothing uploaded\n%s", logs())
	}
	if t.Failed() || os.Getenv("SPLITBRAIN_LOGS") != "" {
		for _, l := range strings.Split(logs(), "\n") {
			if strings.Contains(l, "promoted") || strings.Contains(l, "hand") || strings.Contains(l, "---") || strings.Contains(l, "superseded") {
				t.Log(l)
			}
		}
	}
}
