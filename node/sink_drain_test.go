package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/sink"
	"github.com/edgedio/edged/storage"
)

// recordingWriter is a sink.Writer that records every delivered id, in
// order, and tells each Deliver call on a channel.
type recordingWriter struct {
	mu        sync.Mutex
	ids       []string
	delivered chan int // the number of the Deliver call (1, 2, ...)
	calls     int
}

func (w *recordingWriter) Deliver(_ context.Context, ds []sink.Delivery) error {
	w.mu.Lock()
	for _, d := range ds {
		w.ids = append(w.ids, d.ID)
	}
	w.calls++
	c := w.calls
	w.mu.Unlock()
	select {
	case w.delivered <- c:
	default:
	}
	return nil
}

func (w *recordingWriter) Close() error { return nil }

// drainNode is a Node with only what drainSink needs: a database whose
// spool "p/out" holds outputs spooled outputs, and sinks batches of batch.
func drainNode(t *testing.T, batch, outputs int) (*Node, *spoolSink, []string) {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "edged.db"), storage.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var want []string
	var outs []engine.Output
	for i := range outputs {
		id := fmt.Sprintf("p/0/1/%03d", i)
		want = append(want, id)
		outs = append(outs, engine.Output{Sink: "p/out", ID: id, Data: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	if err := db.Commit(context.Background(), &engine.Commit{Pipeline: "p", Epoch: 1, Outputs: outs}); err != nil {
		t.Fatal(err)
	}
	n := &Node{db: db, cfg: Config{Sinks: SinksConfig{Batch: batch}}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return n, &spoolSink{name: "p/out", pipeline: "p", sink: "out", wake: make(chan struct{}, 1)}, want
}

func spoolDepth(t *testing.T, db *storage.DB, name string) int {
	t.Helper()
	st, err := db.SpoolStats()
	if err != nil {
		t.Fatal(err)
	}
	return int(st[name].Depth)
}

// A sink draining a backlog delivers its next batch while the previous
// batch's acknowledgement commits, instead of waiting for that fsync first;
// every output is still delivered once, in order, and acknowledged.
func TestSinkDeliversTheNextBatchWhileTheLastOnesAckCommits(t *testing.T) {
	n, s, want := drainNode(t, 4, 10)
	w := &recordingWriter{delivered: make(chan int, 16)}
	s.w = w
	release := make(chan struct{})
	var acks [][]string
	var ackMu sync.Mutex
	n.testSpoolAck = func(ctx context.Context, name string, lazy bool, ids []string) (int, error) {
		ackMu.Lock()
		first := len(acks) == 0
		acks = append(acks, slices.Clone(ids))
		ackMu.Unlock()
		if first {
			// The first batch's commit is slow: it ends only once the
			// second batch was delivered.
			select {
			case <-release:
			case <-time.After(5 * time.Second):
				return 0, errors.New("the second batch was not delivered while the first batch's acknowledgement committed")
			}
		}
		if lazy {
			return n.db.SpoolAckDeferred(ctx, name, ids...)
		}
		return n.db.SpoolAck(ctx, name, ids...)
	}
	go func() {
		for c := range w.delivered {
			if c == 2 {
				close(release)
				return
			}
		}
	}()
	ctx := context.Background()
	for {
		k, err := n.drainSink(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if k < 4 {
			break
		}
	}
	if err := s.finishAck(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.ids, want) {
		t.Fatalf("delivered %v; want each output once, in order: %v", w.ids, want)
	}
	if d := spoolDepth(t, n.db, "p/out"); d != 0 {
		t.Fatalf("spool holds %d entries after the drain; want every delivered one acknowledged", d)
	}
}

// An acknowledgement that fails in the background loses nothing: its
// outputs stay spooled and are delivered again (at least once).
func TestSinkRedeliversABatchWhoseBackgroundAckFailed(t *testing.T) {
	n, s, want := drainNode(t, 4, 6)
	w := &recordingWriter{delivered: make(chan int, 16)}
	s.w = w
	fail := true
	n.testSpoolAck = func(ctx context.Context, name string, lazy bool, ids []string) (int, error) {
		if fail {
			fail = false
			return 0, errors.New("disk full")
		}
		if lazy {
			return n.db.SpoolAckDeferred(ctx, name, ids...)
		}
		return n.db.SpoolAck(ctx, name, ids...)
	}
	ctx := context.Background()
	var sawErr bool
	for range 10 {
		k, err := n.drainSink(ctx, s)
		if err != nil {
			sawErr = true
			continue
		}
		if k == 0 {
			break
		}
	}
	if err := s.finishAck(); err != nil {
		t.Fatal(err)
	}
	if !sawErr {
		t.Fatal("the failed acknowledgement was not reported")
	}
	// The first batch (ids 0-3) was delivered, its ack failed, so it comes
	// again; nothing is missing.
	seen := map[string]int{}
	for _, id := range w.ids {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] == 0 {
			t.Fatalf("output %s was never delivered (delivered %v)", id, w.ids)
		}
	}
	if seen[want[0]] < 2 {
		t.Fatalf("output %s, whose acknowledgement failed, was delivered %d times; want again", want[0], seen[want[0]])
	}
	if d := spoolDepth(t, n.db, "p/out"); d != 0 {
		t.Fatalf("spool holds %d entries after the drain; want 0", d)
	}
}
