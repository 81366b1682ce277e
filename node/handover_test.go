package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/mesh"
	"github.com/edgedio/edged/runner"
)

var fetchOn = true

const handoverPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: w}
spec:
  interval: 1s
  idleTimeout: 0s # the fake clocks run 5 times faster than memberlist: no window closes for an idle source
  sources:
    - name: in
      key: [sensor]
      mqtt: {topics: ["h/+"]}
      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: seq, type: number}]
      eventTime: ts
      watermark: 0s
  steps:
    - name: per10s
      window: {type: tumbling, size: 10s, keys: [sensor], output: append, aggregates: [{n: count()}]}
  sinks:
    - {name: out, input: per10s, type: file, path: windows.jsonl}
`

// hoMesh runs in-process mesh members for the hand-over tests: each on a
// fake clock that a 20 ms real-time ticker advances by 100 ms (memberlist
// runs on real time), all with the fetch on, counting in 10 s windows
// (handoverPipeline).
type hoMesh struct {
	t      *testing.T
	keys   int
	seq    int
	mu     sync.Mutex
	clocks []*fakeClock
	dirs   []string
}

func newHoMesh(t *testing.T) *hoMesh {
	m := &hoMesh{t: t, keys: 300}
	if s := os.Getenv("EDGED_HANDOVER_KEYS"); s != "" {
		m.keys, _ = strconv.Atoi(s)
	}
	stop := make(chan struct{})
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			m.mu.Lock()
			for _, c := range m.clocks {
				c.set(c.Now().Add(100 * time.Millisecond))
			}
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-ticking })
	return m
}

// start starts member name, joining join.
func (m *hoMesh) start(name string, join ...string) *testNode {
	t := m.t
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"w": handoverPipeline})
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Mesh = &mesh.Config{Name: name, Bind: "127.0.0.1:0", Join: join, FetchState: &fetchOn}
	clk := newFakeClock(t0)
	var opts []Option
	if os.Getenv("EDGED_HANDOVER_LOG") != "" {
		opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)))
	}
	tn := startNode(t, cfg, clk, opts...)
	m.mu.Lock()
	m.clocks = append(m.clocks, clk)
	m.dirs = append(m.dirs, cfg.outputDir())
	m.mu.Unlock()
	return tn
}

// addr returns a member's gossip address.
func (m *hoMesh) addr(n *testNode) string {
	var a string
	eventually(m.t, 5*time.Second, func() (err error) {
		a, err = n.mesh.Addr()
		return err
	})
	return a
}

// batch returns per readings of every sensor, from event time ts on.
func (m *hoMesh) batch(ts int64, per int) []Message {
	var ms []Message
	for i := range per {
		for k := range m.keys {
			m.seq++
			ms = append(ms, msg(fmt.Sprintf("h/s%d", k), fmt.Sprintf(`{"sensor":"s%d","ts":%d,"seq":%d}`, k, ts+int64(i), m.seq)))
		}
	}
	return ms
}

// ingest logs ms at every node given, and waits for their pipelines to
// consume it.
func (m *hoMesh) ingest(ms []Message, nodes ...*testNode) {
	t := m.t
	t.Helper()
	for _, n := range nodes {
		for i := 0; i < len(ms); i += 1000 {
			if err := n.Ingest(context.Background(), ms[i:min(i+1000, len(ms))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			var pos uint64
			n.pipeByName("w").r.Between(func(b runner.Boundary) error { pos = b.Pos[LogMQTT]; return nil })
			if next := n.logNext(LogMQTT); pos < next {
				return fmt.Errorf("%s at %d of %d", n.mesh.Name(), pos, next)
			}
		}
		return nil
	})
}

// settled waits until every node holds what the mesh gives it, none waits
// for state, and the table's owners are want.
func (m *hoMesh) settled(want []string, nodes ...*testNode) {
	t := m.t
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			n.ho.mu.Lock()
			pend := 0
			for _, p := range n.ho.pending {
				pend += len(p)
			}
			_, seen := n.ho.claimed["w"]
			n.ho.mu.Unlock()
			if !seen && !handoverDisabled {
				return fmt.Errorf("%s: the runner has not followed the ready mesh's claims yet", n.mesh.Name())
			}
			if pend > 0 {
				return fmt.Errorf("%s: %d partitions wait for their state", n.mesh.Name(), pend)
			}
			owners := map[string]bool{}
			mine := map[int]bool{}
			for _, h := range n.mesh.Table() {
				owners[h.Owner] = true
				if h.Owner == n.mesh.Name() || slices.Contains(h.Standbys, n.mesh.Name()) {
					mine[h.Partition] = true
				}
			}
			for _, w := range want {
				if !owners[w] {
					return fmt.Errorf("%s: owners %v; want %v", n.mesh.Name(), owners, want)
				}
			}
			if len(owners) != len(want) {
				return fmt.Errorf("%s: owners %v; want %v", n.mesh.Name(), owners, want)
			}
			held := 0
			r := n.pipeByName("w").r
			r.Between(func(bd runner.Boundary) error {
				for p := range r.Partitions() {
					if bd.Held(p) != mine[p] {
						held = -1
					}
				}
				return nil
			})
			if held < 0 {
				return fmt.Errorf("%s does not hold what its table gives it yet", n.mesh.Name())
			}
		}
		return nil
	})
}

// rate returns a node's installed rows, runner pause time and the number
// of sensors whose partitions it installed, by then.
func (m *hoMesh) rate(n *testNode) (rows int, took time.Duration, keys int) {
	n.ho.mu.Lock()
	defer n.ho.mu.Unlock()
	np := n.pipeByName("w").r.Partitions()
	for k := range m.keys {
		if n.ho.fetched["w"][runner.PartitionOf(fmt.Sprintf("s%d", k), np)] > 0 {
			keys++
		}
	}
	return n.ho.installed, n.ho.took, keys
}

// windows checks that the 10 s window at t0 of every sensor was emitted
// once, with n readings.
func (m *hoMesh) windows(n int) {
	t := m.t
	t.Helper()
	type win struct{ n, times, dir int }
	var got map[string]*win
	eventually(t, 30*time.Second, func() error {
		got = map[string]*win{}
		for di, d := range m.dirs {
			for _, l := range readLines(t, filepath.Join(d, "windows.jsonl")) {
				if l["window_start"] != float64(t0.UnixMilli()) {
					continue
				}
				s, _ := l["sensor"].(string)
				w := got[s]
				if w == nil {
					w = &win{}
					got[s] = w
				}
				w.times++
				w.dir = di
				w.n += int(l["n"].(float64))
			}
		}
		if len(got) < m.keys {
			return fmt.Errorf("%d of %d windows emitted", len(got), m.keys)
		}
		return nil
	})
	bad := 0
	for s, w := range got {
		if w.times != 1 || w.n != n {
			if bad++; bad <= 5 {
				t.Errorf("sensor %s (partition %d): window emitted %d times with n %d (last by member %d); want once with n %d", s, runner.PartitionOf(s, 8), w.times, w.n, w.dir, n)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d windows wrong in all", bad)
	}
}

// TestJoiningNodeTakesOverOpenWindowsWithTheirState: node a counts per
// sensor in 10 s tumbling windows; records of the open window reach a only.
// Node b joins (both log the same input from then on), becomes owner or
// standby of partitions a held, fetches their state from a
// (handover.go) and takes over. When the window closes, every sensor's
// window is emitted once, by its owner, with the count of all its records
// (5), as one node running alone would. Without the fetch, b's windows
// lack the records a had before b joined.
//
// EDGED_HANDOVER_KEYS sets the number of sensors (default 300); the test
// logs the hand-over rate in keys/s.
func TestJoiningNodeTakesOverOpenWindowsWithTheirState(t *testing.T) {
	m := newHoMesh(t)
	a := m.start("a")
	m.ingest(m.batch(t0.UnixMilli()+1000, 3), a) // the open window, on a alone
	b := m.start("b", m.addr(a))
	m.settled([]string{"a", "b"}, a, b)
	if rows, took, keys := m.rate(b); !handoverDisabled {
		if keys != m.keys {
			t.Errorf("b installed the partitions of %d sensors; want all %d (it holds every partition)", keys, m.keys)
		}
		t.Logf("hand-over on join: %d keys (open windows) in %d stored rows installed in %v of runner pauses: %.0f keys/s",
			keys, rows, took.Round(time.Millisecond), float64(keys)/took.Seconds())
	}
	m.ingest(m.batch(t0.UnixMilli()+5000, 2), a, b)  // the same window, logged by both
	m.ingest(m.batch(t0.UnixMilli()+20000, 1), a, b) // closes it
	m.windows(5)
}

// TestDrainHandsStateToTheNewHolders: three members hold every partition
// twice (owner and standby); a drains. The partitions a held move: the
// standby becomes owner with its own state, and the member that did not
// hold them becomes their standby and fetches their state from a holder.
// Then b is stopped: the partitions it owned are promoted on c, whose state
// of those it only became standby of came from the fetch. Every window is
// emitted once with all its readings. The test logs the hand-over rate of
// the drain in keys/s (EDGED_HANDOVER_KEYS sensors, default 300).
func TestDrainHandsStateToTheNewHolders(t *testing.T) {
	m := newHoMesh(t)
	a := m.start("a")
	b := m.start("b", m.addr(a))
	c := m.start("c", m.addr(a))
	m.settled([]string{"a", "b", "c"}, a, b, c)
	m.ingest(m.batch(t0.UnixMilli()+1000, 3), a, b, c) // the open window
	rb0, tb0, _ := m.rate(b)
	rc0, tc0, _ := m.rate(c)
	b.ho.mu.Lock()
	clear(b.ho.fetched)
	b.ho.mu.Unlock()
	c.ho.mu.Lock()
	clear(c.ho.fetched)
	c.ho.mu.Unlock()
	sa := httptest.NewServer(a.Handler())
	defer sa.Close()
	if code, body := do(t, "POST", sa.URL+"/api/v1/drain?timeout=20s", "", ""); code != 200 {
		t.Fatalf("POST /api/v1/drain: %d %s", code, body)
	}
	m.settled([]string{"b", "c"}, b, c)
	rb, tb, kb := m.rate(b)
	rc, tc, kc := m.rate(c)
	keys, rows, took := kb+kc, rb-rb0+rc-rc0, tb-tb0+tc-tc0
	if keys == 0 && !handoverDisabled {
		t.Fatalf("no partition's state was fetched on the drain")
	}
	t.Logf("hand-over on drain: %d keys (open windows) in %d stored rows installed in %v of runner pauses: %.0f keys/s",
		keys, rows, took.Round(time.Millisecond), float64(keys)/took.Seconds())
	m.ingest(m.batch(t0.UnixMilli()+5000, 2), b, c)
	b.stop(t)
	m.settled([]string{"c"}, c)
	m.ingest(m.batch(t0.UnixMilli()+20000, 1), c) // closes it, on c alone
	m.windows(5)
}

// TestIdentitiesMapTheHoldersPositionIntoThisLog: two publishers' readings
// reached the holder alternating and this node one publisher's first, and
// each node lost a reading the other has (QoS 0). The holder's state has
// its first 12 entries; this node consumed 3 of them for its other
// partitions. The mapping skips exactly the entries of this node's log
// that the holder's state has: the partition then counts every reading
// once, the one only this node has included. (Mapping by neighbouring
// entries, as before, cut this log after the holder's last consumed entry
// and lost a7 to a10.) A node already past what the holder consumed is
// refused, and a consumed entry missing here is waited for before it is
// taken as lost.
func TestIdentitiesMapTheHoldersPositionIntoThisLog(t *testing.T) {
	start := func() *testNode {
		return startNode(t, testConfig(t, t.TempDir(), map[string]string{"w": handoverPipeline}), newFakeClock(t0))
	}
	snd, rcv := start(), start()
	entry := func(pub string, i int) Message {
		return msg("h/"+pub, fmt.Sprintf(`{"sensor":"%s","ts":%d,"seq":%d}`, pub, t0.UnixMilli(), i))
	}
	name := func(m Message) string {
		var v struct {
			Sensor string
			Seq    int
		}
		json.Unmarshal(m.Payload, &v)
		return fmt.Sprintf("%s%d", v.Sensor, v.Seq)
	}
	var sLog, rLog []Message
	for i := 1; i <= 10; i++ {
		sLog = append(sLog, entry("a", i), entry("b", i)) // a1 b1 a2 b2 ...
		rLog = append(rLog, entry("a", i))                // a1 ... a10
	}
	for i := 1; i <= 11; i++ {
		if i != 5 { // lost here
			rLog = append(rLog, entry("b", i)) // b1 ... b4 b6 ... b11 (b11 lost at the holder)
		}
	}
	ctx := context.Background()
	if err := snd.Ingest(ctx, sLog); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Ingest(ctx, rLog); err != nil {
		t.Fatal(err)
	}
	sFirst := snd.logNext(LogMQTT) - uint64(len(sLog))
	rFirst := rcv.logNext(LogMQTT) - uint64(len(rLog))
	holderState := map[string]bool{}
	for _, m := range sLog[:12] { // a1-a6, b1-b6
		holderState[name(m)] = true
	}
	ls, rest, err := decodeIDs(snd.identities(engine.Checkpoint{Input: map[string]uint64{LogMQTT: sFirst + 12}}))
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v, %d bytes left", err, len(rest))
	}
	h := &handover{n: rcv.Node}
	q := rFirst + 3 // a1-a3 consumed here
	if _, err := h.mapIDs("snd", ls, map[string]uint64{LogMQTT: q}, false, map[string]*idMatch{}); !errors.Is(err, errInFlight) {
		t.Errorf("b5, consumed by the holder, missing here: %v; want errInFlight until the wait is over", err)
	}
	skips, err := h.mapIDs("snd", ls, map[string]uint64{LogMQTT: q}, true, map[string]*idMatch{})
	if err != nil {
		t.Fatal(err)
	}
	skip := map[uint64]bool{}
	for _, off := range skips[LogMQTT] {
		skip[off] = true
	}
	count := map[string]int{}
	for r := range holderState {
		count[r]++
	}
	var fed []string
	for i, m := range rLog {
		if off := rFirst + uint64(i); off >= q && !skip[off] {
			count[name(m)]++
			fed = append(fed, name(m))
		}
	}
	for _, m := range append(slices.Clone(sLog), entry("b", 11)) {
		if c := count[name(m)]; c != 1 {
			t.Errorf("reading %s counted %d times; want once (fed here: %v)", name(m), c, fed)
		}
	}

	if _, err := h.mapIDs("snd", ls, map[string]uint64{LogMQTT: rFirst + 8}, true, map[string]*idMatch{}); !errors.Is(err, errNotCovered) {
		t.Errorf("this node past the holder (it consumed a7, a8): %v; want errNotCovered", err)
	}
	ls, _, _ = decodeIDs(snd.identities(engine.Checkpoint{Input: map[string]uint64{LogMQTT: sFirst}}))
	skips, err = h.mapIDs("snd", ls, map[string]uint64{LogMQTT: rFirst}, false, map[string]*idMatch{})
	if err != nil || len(skips[LogMQTT]) != 0 {
		t.Errorf("holder consumed nothing: skips %v, %v; want none", skips, err)
	}
}

// The partitions whose state is current survive a restart
// (mesh-current.json): a restarted member fetches only the others. A member
// without the file that was in the mesh before (its terms file exists)
// takes its first claims as current, as it always did; a new one has none.
func TestCurrentPartitionsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	n := &Node{cfg: Config{DataDir: dir}, log: slog.New(slog.DiscardHandler)}
	h := &handover{n: n}
	if err := h.loadCurrent(dir, false); err != nil || h.legacy || len(h.current) != 0 {
		t.Fatalf("new member: legacy %v, current %v, %v; want none", h.legacy, h.current, err)
	}
	if err := h.loadCurrent(dir, true); err != nil || !h.legacy {
		t.Fatalf("member from before the file: legacy %v, %v; want true", h.legacy, err)
	}
	h.current = map[string]map[int]bool{"w": {1: true, 3: true}, "v": {}}
	h.saveCurrent()
	r := &handover{n: n}
	if err := r.loadCurrent(dir, true); err != nil || r.legacy {
		t.Fatalf("restart: legacy %v, %v; want false", r.legacy, err)
	}
	if !maps.Equal(r.current["w"], h.current["w"]) || len(r.current["v"]) != 0 {
		t.Errorf("restart: current %v; want %v", r.current, h.current)
	}
}
