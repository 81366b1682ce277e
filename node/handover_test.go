package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/mesh"
	"github.com/edgedio/edged/runner"
)

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
		cfg.Mesh = &mesh.Config{Name: name, Bind: "127.0.0.1:0", Join: join, FetchState: true}
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

// TestAnchorsMapTheSendersPositionIntoThisLog: two nodes logged an
// overlapping stream at other offsets. The sender's position after its 7th
// entry maps to the receiver's offset after the same entry; a receiver
// already past that point is told the snapshot does not cover it; a sender
// that consumed nothing maps to its first unconsumed entry.
func TestAnchorsMapTheSendersPositionIntoThisLog(t *testing.T) {
	start := func() *testNode {
		return startNode(t, testConfig(t, t.TempDir(), map[string]string{"w": handoverPipeline}), newFakeClock(t0))
	}
	snd, rcv := start(), start()
	entry := func(i int) Message {
		return msg("h/s", fmt.Sprintf(`{"sensor":"s","ts":%d,"seq":%d}`, t0.UnixMilli(), i))
	}
	var e1, e2 []Message
	for i := 1; i <= 10; i++ {
		e1 = append(e1, entry(i))
	}
	for i := 5; i <= 15; i++ {
		e2 = append(e2, entry(i))
	}
	ctx := context.Background()
	if err := snd.Ingest(ctx, e1); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Ingest(ctx, e2); err != nil {
		t.Fatal(err)
	}
	sFirst := snd.logNext(LogMQTT) - 10 // offset of entry 1 at the sender
	rFirst := rcv.logNext(LogMQTT) - 11 // offset of entry 5 at the receiver
	h := &handover{n: rcv.Node}
	extra := snd.anchors(engine.Checkpoint{Input: map[string]uint64{LogMQTT: sFirst + 7}}) // consumed entries 1-7
	got, _, err := h.mapAnchors(extra, map[string]uint64{LogMQTT: rFirst}, false)
	if err != nil || got[LogMQTT] != rFirst+3 { // entry 8 is the receiver's 4th
		t.Errorf("consumed through entry 7: mapped to %v, %v; want %d", got, err, rFirst+3)
	}
	if _, _, err := h.mapAnchors(extra, map[string]uint64{LogMQTT: rFirst + 5}, false); !errors.Is(err, errNotCovered) {
		t.Errorf("receiver past the sender's position: %v; want errNotCovered", err)
	}
	extra = snd.anchors(engine.Checkpoint{Input: map[string]uint64{LogMQTT: sFirst}}) // nothing consumed
	got, _, err = h.mapAnchors(extra, map[string]uint64{LogMQTT: rFirst}, false)
	if err != nil || got[LogMQTT] != rFirst { // entry 5, the first of the sender's the receiver has
		t.Errorf("nothing consumed: mapped to %v, %v; want %d", got, err, rFirst)
	}
}
