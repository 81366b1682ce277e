package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/edgedio/edged/internal/testkit"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is an engine.Clock whose time moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

// waitersAt returns how many waiters wait for exactly t.
func (c *fakeClock) waitersAt(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, w := range c.waiters {
		if w.at.Equal(t) {
			k++
		}
	}
	return k
}

// set moves the clock to t and fires every waiter due.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// eventually polls until fn returns nil (see testkit.Eventually).
var eventually = testkit.Eventually

// testNode is a node running in the background on a fake clock.
type testNode struct {
	*Node
	clock  *fakeClock
	cancel context.CancelFunc
	done   chan error
}

const testPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: t1}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp"]}
      fields:
        - {name: sensor, type: string}
        - {name: temp, type: number}
  steps:
    - name: valid
      filter: temp > -100
    - name: totals
      input: valid
      updateStateByKey: {key: sensor, value: temp, func: sum}
  sinks:
    - {name: clean, input: valid, type: file, path: clean.jsonl}
    - {name: sums, input: totals, type: file, path: sums.jsonl}
`

// testConfig returns a config over dir with the given pipelines written into
// dir/pipelines.
func testConfig(t testing.TB, dir string, pipelines map[string]string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.PipelinesDir = filepath.Join(dir, "pipelines")
	cfg.API.Listen = ""
	cfg.Storage.Sync = "never"
	cfg.MQTT.Listen = "" // no embedded broker in unit tests
	if err := os.MkdirAll(cfg.PipelinesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, y := range pipelines {
		if err := os.WriteFile(filepath.Join(cfg.PipelinesDir, name+".yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

var t0 = time.UnixMilli(1_700_000_000_000)

func startNode(t testing.TB, cfg Config, clock *fakeClock, opts ...Option) *testNode {
	t.Helper()
	opts = append([]Option{WithClock(clock)}, opts...)
	n, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, clock: clock, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	eventually(t, 10*time.Second, func() error {
		select {
		case err := <-tn.done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if !n.Ready() {
			return fmt.Errorf("node not ready")
		}
		return nil
	})
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

func (tn *testNode) stop(t testing.TB) {
	t.Helper()
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	tn.cancel = nil
	select {
	case err := <-tn.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// epoch advances the clock to the next interval boundary once every running
// pipeline waits for it, and waits until pipeline p committed an epoch there.
func (tn *testNode) epoch(t *testing.T, p string) {
	t.Helper()
	now := tn.clock.Now().UnixMilli()
	next := time.UnixMilli((now/1000 + 1) * 1000)
	want := len(tn.sortedPipes())
	eventually(t, 30*time.Second, func() error {
		if k := tn.clock.waitersAt(next); k < want {
			return fmt.Errorf("%d of %d pipelines wait for %v", k, want, next)
		}
		return nil
	})
	pp := tn.pipeByName(p)
	tn.clock.set(next)
	eventually(t, 30*time.Second, func() error {
		if pp.r.Status().LastTime < next.UnixMilli() {
			return fmt.Errorf("pipeline %s: no epoch at %v", p, next)
		}
		return nil
	})
}

// readLines reads a JSON Lines file into maps.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitLines polls until the file has at least k lines and returns them.
func waitLines(t *testing.T, path string, k int) []map[string]any {
	t.Helper()
	var got []map[string]any
	eventually(t, 10*time.Second, func() error {
		got = readLines(t, path)
		if len(got) < k {
			return fmt.Errorf("%s: got %d lines; want %d", path, len(got), k)
		}
		return nil
	})
	return got
}

func ids(lines []map[string]any) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, fmt.Sprint(l["_id"]))
	}
	sort.Strings(out)
	return out
}
