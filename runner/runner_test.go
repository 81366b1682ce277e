package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/internal/testkit"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
)

// memLog is an in-memory input log.
type memLog struct {
	mu   sync.Mutex
	logs map[string][][]byte
}

func newMemLog() *memLog { return &memLog{logs: map[string][][]byte{}} }

func (l *memLog) add(log string, recs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		l.logs[log] = append(l.logs[log], []byte(r))
	}
}

func (l *memLog) ReadLogEntries(log string, from uint64, max int, fn func(off uint64, at int64, rec []byte) error) error {
	l.mu.Lock()
	recs := l.logs[log]
	l.mu.Unlock()
	n := 0
	for i := int(from) - 1; i >= 0 && i < len(recs) && (max <= 0 || n < max); i++ {
		if err := fn(uint64(i+1), 1000, recs[i]); err != nil {
			return err
		}
		n++
	}
	return nil
}

func (l *memLog) LogNext(log string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.logs[log])) + 1
}

// memStore applies CommitAll to an engine.MemStore, all or nothing, and
// keeps every commit's outputs and dead letters; failNext makes the next
// CommitAll fail.
type memStore struct {
	*engine.MemStore
	mu       sync.Mutex
	failNext bool
	outputs  []engine.Output
	dls      []engine.DeadLetter
	commits  int
}

func newMemStore() *memStore { return &memStore{MemStore: engine.NewMemStore()} }

func (s *memStore) CommitAll(ctx context.Context, cs []*engine.Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext {
		s.failNext = false
		return errors.New("disk on fire")
	}
	for _, c := range cs {
		if err := s.MemStore.Commit(ctx, c); err != nil {
			return err
		}
		for _, o := range c.Outputs {
			s.outputs = append(s.outputs, engine.Output{Sink: o.Sink, ID: o.ID, Data: slices.Clone(o.Data)})
		}
		s.dls = append(s.dls, c.DeadLetters...)
	}
	s.commits++
	return nil
}

const windowed = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: w}
spec:
  sources:
    - name: in
      fields:
        - {name: sensor, type: string}
        - {name: ts, type: time}
        - {name: v, type: number}
      eventTime: ts
      watermark: 0s
      key: [sensor]
  steps:
    - name: per-sensor
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - total: sum(v)
  sinks:
    - {name: out, input: per-sensor, type: stdout}
`

func compile(t *testing.T, y string) *pipeline.Compiled {
	t.Helper()
	s, err := pipeline.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c, err := pipeline.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// jsonSource decodes JSON entries of log "in".
func jsonSource(t *testing.T, c *pipeline.Compiled, name string) runner.Source {
	t.Helper()
	d, err := decode.NewJSON(c.Decoders[name])
	if err != nil {
		t.Fatal(err)
	}
	return runner.Source{Name: name, Log: "in", Decoder: runner.DecoderFunc(func(b *engine.Batch, in runner.Input, _ func([]byte, error)) error {
		return d.Decode(in.Payload, b)
	})}
}

func newRunner(t *testing.T, y string, partitions int, l *memLog, s *memStore, own runner.Ownership) *runner.Runner {
	t.Helper()
	c := compile(t, y)
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Partitions: partitions, Log: l, Store: s, Owner: own, Encode: decode.AppendJSON, MaxRecords: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readings(sensors, perSensor int, t0 int64) []string {
	var out []string
	for i := range perSensor {
		for s := range sensors {
			out = append(out, fmt.Sprintf(`{"sensor":"s%03d","ts":%d,"v":%d}`, s, t0+int64(i)*100, i+s))
		}
	}
	return out
}

// rows returns the outputs' data without ids, sorted: what a user sees.
func rows(outs []engine.Output) []string {
	var r []string
	for _, o := range outs {
		r = append(r, string(o.Data))
	}
	sort.Strings(r)
	return r
}

func runAll(t *testing.T, r *runner.Runner, epochs int) {
	t.Helper()
	for e := range epochs {
		if _, err := r.RunEpoch(context.Background(), int64(e+1)*1000); err != nil {
			t.Fatalf("epoch %d: %v", e+1, err)
		}
	}
}

// A partitioned pipeline gives the same windows as one partition, and its
// partitions really share the keys out.
func TestPartitionsGiveTheSameWindowsAsOne(t *testing.T) {
	in := readings(50, 30, 10_000)
	in = append(in, `{"sensor":"s000","ts":99999999,"v":0}`) // closes every window of s000's partition... and the watermark
	var got [2][]string
	for i, n := range []int{1, 8} {
		l, s := newMemLog(), newMemStore()
		r := newRunner(t, windowed, n, l, s, nil)
		l.add("in", in...)
		runAll(t, r, 3)
		if n > 1 && r.Partitions() != 8 {
			t.Fatalf("partitions: got %d; want 8", r.Partitions())
		}
		got[i] = rows(s.outputs)
		if n > 1 {
			parts := map[int]bool{}
			for _, o := range s.outputs {
				id, err := engine.ParseOutputID(o.ID)
				if err != nil {
					t.Fatal(err)
				}
				parts[id.Partition] = true
			}
			if len(parts) < 4 {
				t.Errorf("outputs came from %d partitions; want the 50 sensors spread over most of 8", len(parts))
			}
		}
	}
	if len(got[0]) == 0 {
		t.Fatal("no windows")
	}
	// Each partition has its own watermark, so only windows closed in both
	// runs compare: every window of the 8-partition run is in the 1-partition run.
	one := map[string]bool{}
	for _, r := range got[0] {
		one[r] = true
	}
	for _, r := range got[1] {
		if !one[r] {
			t.Errorf("window %s of the partitioned run is not in the single-partition run", r)
		}
	}
}

// An epoch whose input is all bad commits: its dead letters are stored with
// their log position, and the position moves past them.
func TestAllBadEpochCommitsItsDeadLetters(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	r := newRunner(t, windowed, 1, l, s, nil)
	l.add("in", "not json", `{"sensor":`, "[[[")
	runAll(t, r, 1)
	if len(s.dls) != 3 {
		t.Fatalf("dead letters committed: got %d; want 3", len(s.dls))
	}
	for i, d := range s.dls {
		if d.Log != "in" || d.Offset != uint64(i+1) || d.Source != "in" || d.Reason == "" {
			t.Errorf("dead letter %d: got %+v; want log in, offset %d, a reason", i, d, i+1)
		}
	}
	if p := r.Status().Position["in"]; p != 4 {
		t.Errorf("position: got %d; want 4 (past the bad input)", p)
	}
	// A restarted runner does not see them again.
	r2 := newRunner(t, windowed, 1, l, s, nil)
	runAll(t, r2, 1)
	if len(s.dls) != 3 {
		t.Errorf("dead letters after restart: got %d; want still 3", len(s.dls))
	}
}

// A failed commit leaves nothing behind: the next epoch reads the same
// input again and produces the same outputs with the same ids.
func TestFailedCommitReplaysTheEpoch(t *testing.T) {
	in := append(readings(5, 20, 10_000), `{"sensor":"s000","ts":99999999,"v":0}`)
	ref := func() []engine.Output {
		l, s := newMemLog(), newMemStore()
		r := newRunner(t, windowed, 4, l, s, nil)
		l.add("in", in...)
		runAll(t, r, 1)
		return s.outputs
	}()
	l, s := newMemLog(), newMemStore()
	r := newRunner(t, windowed, 4, l, s, nil)
	l.add("in", in...)
	s.failNext = true
	if _, err := r.RunEpoch(context.Background(), 1000); err == nil {
		t.Fatal("epoch with a failing commit: got nil error")
	}
	if len(s.outputs) != 0 {
		t.Fatalf("outputs after a failed commit: %d", len(s.outputs))
	}
	runAll(t, r, 1)
	if len(ref) == 0 || fmt.Sprint(ids(s.outputs)) != fmt.Sprint(ids(ref)) || fmt.Sprint(rows(s.outputs)) != fmt.Sprint(rows(ref)) {
		t.Errorf("after the retry: got %v; want %v", ids(s.outputs), ids(ref))
	}
}

func ids(outs []engine.Output) []string {
	var r []string
	for _, o := range outs {
		r = append(r, o.ID)
	}
	sort.Strings(r)
	return r
}

// promotable holds every partition as a standby under term 3 until *emit
// is set, then as the owner under term 4.
func promotable(emit *bool) runner.Ownership {
	return runner.OwnershipFunc(func(_ string, n int) []runner.Claim {
		term := uint64(3)
		if *emit {
			term = 4
		}
		cs := make([]runner.Claim, n)
		for i := range cs {
			cs[i] = runner.Claim{Partition: i, Term: term, Emit: *emit}
		}
		return cs
	})
}

// A standby keeps state but emits nothing; its term is in the ids once it
// owns the partition.
func TestStandbyKeepsStateButEmitsNothing(t *testing.T) {
	emit := false
	own := promotable(&emit)
	l, s := newMemLog(), newMemStore()
	r := newRunner(t, windowed, 2, l, s, own)
	// Window [10s, 11s) of each sensor closes while standing by (dropped);
	// window [20s, 21s) stays open.
	l.add("in", readings(4, 5, 10_000)...)
	l.add("in", readings(4, 3, 20_000)...)
	runAll(t, r, 1)
	if len(s.outputs) != 0 {
		t.Fatalf("standby outputs: got %d; want 0", len(s.outputs))
	}
	emit = true // promoted
	l.add("in", `{"sensor":"s000","ts":99999999,"v":0}`, `{"sensor":"s001","ts":99999999,"v":0}`,
		`{"sensor":"s002","ts":99999999,"v":0}`, `{"sensor":"s003","ts":99999999,"v":0}`)
	if _, err := r.RunEpoch(context.Background(), 2000); err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, o := range s.outputs {
		id, _ := engine.ParseOutputID(o.ID)
		if id.Term != 4 {
			t.Errorf("output %s: term %d; want 4", o.ID, id.Term)
		}
		var m map[string]any
		json.Unmarshal(o.Data, &m)
		n += m["n"].(float64)
	}
	// The standby's open windows (12 readings) survived the promotion; the
	// windows it closed as a standby are not emitted now.
	if n != 12 {
		t.Errorf("readings counted in the promoted partitions' windows: got %v; want 12", n)
	}
}

// A new pipeline starts at the end of the log, durably.
func TestNewPipelineStartsAtTheEndOfTheLog(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	l.add("in", readings(2, 3, 10_000)...)
	r := newRunner(t, windowed, 1, l, s, nil)
	if p := r.Status().Position["in"]; p != 7 {
		t.Fatalf("start position: got %d; want 7", p)
	}
	// Restarting before the first epoch keeps the recorded start: what was
	// logged in between is read.
	l.add("in", `{"sensor":"s000","ts":10000,"v":1}`)
	r2 := newRunner(t, windowed, 1, l, s, nil)
	if p := r2.Status().Position["in"]; p != 7 {
		t.Errorf("position after restart: got %d; want 7 (the recorded start)", p)
	}
}

func TestPartitionable(t *testing.T) {
	base := func(keys, steps string) string {
		return strings.NewReplacer("KEYS", keys, "STEPS", steps).Replace(`apiVersion: edged/v1
kind: Pipeline
metadata: {name: p}
spec:
  sources:
    - name: in
      fields:
        - {name: sensor, type: string}
        - {name: site, type: string}
        - {name: v, type: number}
      KEYS
  steps:
STEPS
  sinks:
    - {name: out, type: stdout}
`)
	}
	tests := []struct {
		name, keys, steps string
		want              bool
	}{
		{"keyed aggregate", "key: [sensor]", "    - {name: a, updateStateByKey: {key: sensor, value: v, func: sum}}", true},
		{"no source key", "", "    - {name: a, updateStateByKey: {key: sensor, value: v, func: sum}}", false},
		{"grouped by another field", "key: [sensor]", "    - {name: a, updateStateByKey: {key: site, value: v, func: sum}}", false},
		{"stateless", "key: [sensor]", "    - {name: a, filter: v > 1}", true},
		{"key rewritten", "key: [sensor]", "    - {name: a, extend: [{sensor: site}]}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pipeline.Parse("p.yaml", []byte(base(tt.keys, tt.steps)))
			if err != nil {
				t.Fatal(err)
			}
			if got := runner.Partitionable(s); got != tt.want {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestPartitionOfIsStable(t *testing.T) {
	// Stored state and the mesh depend on these: FNV-1a 64 modulo n.
	for _, key := range []string{"", "s001", "pump-7", "site/a/ü"} {
		h := fnv.New64a()
		h.Write([]byte(key))
		if got, want := runner.PartitionOf(key, 64), int(h.Sum64()%64); got != want {
			t.Errorf("PartitionOf(%q, 64) = %d; want %d", key, got, want)
		}
	}
	if got := runner.PartitionOf("s001", 8); got != 1 {
		t.Errorf("PartitionOf(s001, 8) = %d; want 1", got)
	}
}

// With more input waiting than one epoch takes, an event-time pipeline
// runs epochs back to back; it does not wait for the clock between them.
func TestCatchUpRunsEpochsBackToBack(t *testing.T) {
	l, s := newMemLog(), newMemStore()
	c := compile(t, windowed)
	clk := &stillClock{t: time.UnixMilli(1_000_500)}
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")},
		Log: l, Store: s, Clock: clk, Encode: decode.AppendJSON, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	l.add("in", readings(10, 100, 10_000)...) // 1000 entries: 10 epochs' worth
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	testkit.Eventually(t, 10*time.Second, func() error {
		if p := r.Status().Position["in"]; p != 1001 {
			// The first epoch waits for its boundary; the others must
			// not. (No release once caught up: the wait for the next
			// boundary then stays the last one counted.)
			clk.fire()
			return fmt.Errorf("position %d; want 1001", p)
		}
		return nil
	})
	cancel()
	<-done
	if p := r.Status().Position["in"]; p != 1001 {
		t.Fatalf("position: got %d; want 1001", p)
	}
	if w := clk.waits(); w > 2 {
		t.Errorf("clock waits while catching up: %d; want at most 2", w)
	}
}

// stillClock never moves by itself; fire releases the timers waiting.
type stillClock struct {
	mu      sync.Mutex
	t       time.Time
	pending []chan time.Time
	n       int
}

func (c *stillClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stillClock) After(time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.pending = append(c.pending, ch)
	c.n++
	return ch
}

func (c *stillClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.pending {
		ch <- c.t
	}
	c.pending = nil
}

func (c *stillClock) waits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
