package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	keys := 300
	if s := os.Getenv("EDGED_HANDOVER_KEYS"); s != "" {
		keys, _ = strconv.Atoi(s)
	}
	var clocks []*fakeClock
	var clockMu sync.Mutex
	var dirs []string
	start := func(name string, join []string) *testNode {
		dir := t.TempDir()
		cfg := testConfig(t, dir, map[string]string{"w": handoverPipeline})
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Mesh = &mesh.Config{Name: name, Bind: "127.0.0.1:0", Join: join, FetchState: &fetchOn}
		clk := newFakeClock(t0)
		var opts []Option
		if os.Getenv("EDGED_HANDOVER_LOG") != "" {
			opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", name)))
		}
		tn := startNode(t, cfg, clk, opts...)
		clockMu.Lock()
		clocks = append(clocks, clk)
		clockMu.Unlock()
		dirs = append(dirs, cfg.outputDir())
		return tn
	}
	a := start("a", nil)
	var aAddr string
	eventually(t, 5*time.Second, func() (err error) {
		aAddr, err = a.mesh.Addr()
		return err
	})
	stop := make(chan struct{})
	ticking := make(chan struct{})
	go func() { // epochs
		defer close(ticking)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			clockMu.Lock()
			for _, c := range clocks {
				c.set(c.Now().Add(100 * time.Millisecond))
			}
			clockMu.Unlock()
		}
	}()
	defer func() { close(stop); <-ticking }()

	ctx := context.Background()
	seq := 0
	batch := func(ts int64, per int) []Message {
		var ms []Message
		for i := range per {
			for k := range keys {
				seq++
				ms = append(ms, msg(fmt.Sprintf("h/s%d", k), fmt.Sprintf(`{"sensor":"s%d","ts":%d,"seq":%d}`, k, ts+int64(i), seq)))
			}
		}
		return ms
	}
	ingest := func(ms []Message, nodes ...*testNode) {
		for _, n := range nodes {
			for i := 0; i < len(ms); i += 1000 {
				if err := n.Ingest(ctx, ms[i:min(i+1000, len(ms))]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	caughtUp := func(nodes ...*testNode) {
		t.Helper()
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

	ingest(batch(t0.UnixMilli()+1000, 3), a) // the open window, on a alone
	caughtUp(a)

	b := start("b", []string{aAddr})
	eventually(t, 30*time.Second, func() error {
		b.ho.mu.Lock()
		pend := 0
		for _, p := range b.ho.pending {
			pend += len(p)
		}
		installed := b.ho.installed
		b.ho.mu.Unlock()
		owned := 0
		for _, h := range b.mesh.Table() {
			if h.Owner == "b" {
				owned++
			}
		}
		held := 0
		b.pipeByName("w").r.Between(func(bd runner.Boundary) error {
			for p := range b.pipeByName("w").r.Partitions() {
				if bd.Held(p) {
					held++
				}
			}
			return nil
		})
		if owned == 0 || pend > 0 || held < b.pipeByName("w").r.Partitions() || (installed == 0 && !handoverDisabled) {
			return fmt.Errorf("b owns %d partitions, holds %d, %d wait for their state", owned, held, pend)
		}
		return nil
	})
	b.ho.mu.Lock()
	installed, took := b.ho.installed, b.ho.took
	b.ho.mu.Unlock()
	if !handoverDisabled {
		// b holds every partition (owner or standby): every sensor's open
		// window moved.
		t.Logf("hand-over: %d keys (open windows) in %d stored rows installed in %v of runner pauses: %.0f keys/s",
			keys, installed, took.Round(time.Millisecond), float64(keys)/took.Seconds())
	}

	ms := batch(t0.UnixMilli()+5000, 2) // the same window, logged by both
	ingest(ms, a, b)
	caughtUp(a, b)
	ingest(batch(t0.UnixMilli()+20000, 1), a, b) // closes it
	caughtUp(a, b)

	type win struct{ n, times int }
	var got map[string]*win
	eventually(t, 30*time.Second, func() error {
		got = map[string]*win{}
		for _, d := range dirs {
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
				w.n += int(l["n"].(float64))
			}
		}
		if len(got) < keys {
			return fmt.Errorf("%d of %d windows emitted", len(got), keys)
		}
		return nil
	})
	bad := 0
	for s, w := range got {
		if w.times != 1 || w.n != 5 {
			if bad++; bad <= 5 {
				t.Errorf("sensor %s: window emitted %d times with n %d; want once with n 5 (3 records before b joined, 2 after)", s, w.times, w.n)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d windows wrong in all", bad)
	}
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
