package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// gateConn is a net.Conn whose first Write blocks until gate is closed;
// it records every Write it gets.
type gateConn struct {
	net.Conn
	gate   chan struct{}
	failAt int // the Write (1-based) that fails; 0: none

	mu     sync.Mutex
	writes [][]byte
	closed bool
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	n := len(c.writes)
	c.mu.Unlock()
	if n == 1 {
		<-c.gate
	}
	if n == c.failAt {
		return 0, errors.New("connection reset by peer")
	}
	return len(p), nil
}

func (c *gateConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *gateConn) SetWriteDeadline(time.Time) error { return nil }
func (c *gateConn) SetReadDeadline(time.Time) error  { return nil }

func (c *gateConn) snapshot() ([][]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.writes...), c.closed
}

// TestBatchingConnWritesWhatQueuedInOneCall: while the flusher is in a
// write, the packets paho writes meanwhile queue up and go out together, in
// order, in one system call (a sink batch of outputs is a few writes, not
// one per output); Close writes what is still queued.
func TestBatchingConnWritesWhatQueuedInOneCall(t *testing.T) {
	under := &gateConn{gate: make(chan struct{})}
	c := newBatchingConn(under, time.Second)
	var want bytes.Buffer
	var wrote sync.WaitGroup
	wrote.Add(1)
	go func() { // paho's outgoing goroutine
		defer wrote.Done()
		for i := range 101 {
			p := fmt.Appendf(nil, "packet %d;", i)
			want.Write(p)
			if n, err := c.Write(p); err != nil || n != len(p) {
				t.Errorf("write %d: %d, %v", i, n, err)
				return
			}
			if i == 0 {
				testkit.Eventually(t, 10*time.Second, func() error {
					if w, _ := under.snapshot(); len(w) != 1 {
						return errors.New("the flusher has not started its first write")
					}
					return nil
				})
			}
		}
	}()
	done := make(chan struct{})
	go func() { wrote.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(under.gate)
		t.Fatal("writes waited for the connection's first write: they must only queue")
	}
	close(under.gate)
	if _, err := c.Write([]byte("last;")); err != nil {
		t.Fatal(err)
	}
	want.WriteString("last;")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	writes, closed := under.snapshot()
	if got := bytes.Join(writes, nil); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the connection got %q; want %q", got, want.Bytes())
	}
	if len(writes) > 3 {
		t.Errorf("%d writes for 102 packets, 100 of them queued during the first; want at most 3", len(writes))
	}
	if !closed {
		t.Error("Close did not close the connection")
	}
}

// TestBatchingConnFailedWriteIsReturnedByTheNext: a write that fails
// closes the connection, and every later Write returns its error, so paho
// reconnects.
func TestBatchingConnFailedWriteIsReturnedByTheNext(t *testing.T) {
	under := &gateConn{gate: make(chan struct{}), failAt: 1}
	close(under.gate)
	c := newBatchingConn(under, time.Second)
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	var err error
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, err = c.Write([]byte("b")); err == nil {
			return errors.New("writes still succeed")
		}
		return nil
	})
	if err.Error() != "connection reset by peer" {
		t.Errorf("write after the failure: %v; want the failure", err)
	}
	if _, closed := under.snapshot(); !closed {
		t.Error("the failed connection was not closed")
	}
	c.Close()
}
