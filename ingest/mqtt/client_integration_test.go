//go:build integration

package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
)

// countingConn counts the writes that carry PUBACKs and the PUBACKs in
// them.
type countingConn struct {
	net.Conn
	ackWrites, acks *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == pktPuback<<4 {
		c.ackWrites.Add(1)
		c.acks.Add(int64(len(p) / 4))
	}
	return c.Conn.Write(p)
}

// TestIntegrationPubacksGoOutOneWritePerBatch: 3,000 QoS 1 messages queued
// in mosquitto for the persistent session come to the own client in
// batches; each batch the Handler accepted is acknowledged with one write
// holding all its PUBACKs, not one write per message, and every message is
// acknowledged.
func TestIntegrationPubacksGoOutOneWritePerBatch(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{Extra: []string{"max_inflight_messages 1000"}})
	cfg := testConfig(mq.URL(), "it-ackbatch", "sensors/#", 1)
	cfg.BatchSize = 500
	s1, err := New(cfg, &collector{})
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runSource(t, s1)
	waitConnected(t, s1)
	stop1() // the session now exists and queues what follows
	const n = 3000
	publish(t, mq.URL(), "sensors/x", 1, 0, n)

	var ackWrites, acks atomic.Int64
	var d net.Dialer
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, ackWrites: &ackWrites, acks: &acks}, nil
	}
	var h collector
	s, err := New(cfg, &h, withDial(dial))
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	eventually(t, 30*time.Second, func() error {
		if st := s.Status(); st.Acked != n || acks.Load() != n {
			return fmt.Errorf("acked %d, PUBACKs written %d; want %d", st.Acked, acks.Load(), n)
		}
		return nil
	})
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	t.Logf("%d messages in %d batches, acknowledged in %d writes", n, calls, ackWrites.Load())
	if int(ackWrites.Load()) != calls {
		t.Errorf("got %d writes of PUBACKs for %d accepted batches; want one write per batch", ackWrites.Load(), calls)
	}
	if calls > n/10 {
		t.Errorf("got %d batches for %d queued messages; want far fewer (batches of up to %d)", calls, n, cfg.BatchSize)
	}
	if d := distinct(h.snapshot()); d != n {
		t.Errorf("got %d distinct messages; want %d", d, n)
	}
}

// TestIntegrationConnectionDropBeforeAckRedelivers: the connection breaks
// while the Handler holds a batch. The batch's acknowledgements die with
// that connection (nothing is acknowledged on another one); mosquitto
// redelivers those messages, flagged DUP, on the next connection of the
// persistent session, and afterwards keeps nothing for the session.
func TestIntegrationConnectionDropBeforeAckRedelivers(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{})
	cfg := testConfig(mq.URL(), "it-drop", "sensors/#", 1)
	var (
		mu    sync.Mutex
		conns []net.Conn
		d     net.Dialer
	)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	held := make(chan []Message, 1)
	release := make(chan struct{})
	var h collector
	first := true
	handler := HandlerFunc(func(ctx context.Context, msgs []Message) error {
		if first {
			first = false
			held <- append([]Message(nil), msgs...)
			<-release
		}
		return h.HandleBatch(ctx, msgs)
	})
	s, err := New(cfg, handler, withDial(dial))
	if err != nil {
		t.Fatal(err)
	}
	stop := runSource(t, s)
	waitConnected(t, s)
	const n = 50
	publish(t, mq.URL(), "sensors/x", 1, 0, n)
	var firstBatch []Message
	select {
	case firstBatch = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch within 10s")
	}
	mu.Lock()
	conns[0].Close() // the broker sees the connection end without our PUBACKs
	mu.Unlock()
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Connects < 2 || st.State != Connected {
			return fmt.Errorf("connects %d, state %v; want a second connection", st.Connects, st.State)
		}
		return nil
	})
	close(release)
	// The hand-off was held, so nothing read on the first connection was
	// acknowledged: it all comes back flagged DUP on the second, which
	// mosquitto resends before anything new. The messages of the first
	// connection are the ones handled before the first DUP; wait for every
	// one of them to come back too (not only for 50 distinct messages,
	// which the first connection's queue alone can reach while the
	// redeliveries are still arriving).
	eventually(t, 10*time.Second, func() error {
		got := h.snapshot()
		if d := distinct(got); d != n {
			return fmt.Errorf("got %d distinct; want %d", d, n)
		}
		dup := map[string]bool{}
		for _, m := range got {
			if m.Duplicate {
				dup[string(m.Payload)] = true
			}
		}
		for _, m := range got {
			if m.Duplicate {
				break
			}
			if !dup[string(m.Payload)] {
				return fmt.Errorf("message %q, read on the dropped connection, not redelivered yet", m.Payload)
			}
		}
		return nil
	})
	// Every message of the held batch came back flagged DUP.
	again := map[string]bool{}
	for _, m := range h.snapshot()[len(firstBatch):] {
		if m.Duplicate {
			again[string(m.Payload)] = true
		}
	}
	for _, m := range firstBatch {
		if !again[string(m.Payload)] {
			t.Errorf("message %q of the batch held during the drop was not redelivered flagged DUP", m.Payload)
		}
	}
	if st := s.Status(); st.Acked >= st.HandedOff {
		t.Errorf("acked %d of %d handed off; the held batch's acks must have been dropped with its connection", st.Acked, st.HandedOff)
	}

	// Nothing stays with the broker: after a restart of the Source, the
	// first message it gets is a new one.
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.InFlight != 0 {
			return fmt.Errorf("%d in flight", st.InFlight)
		}
		return nil
	})
	stop()
	var h2 collector
	s2, err := New(cfg, &h2)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s2)
	waitConnected(t, s2)
	publish(t, mq.URL(), "sensors/x", 1, 1000, 1)
	eventually(t, 10*time.Second, func() error {
		if len(h2.snapshot()) == 0 {
			return errors.New("nothing yet")
		}
		return nil
	})
	if got := h2.snapshot(); string(got[0].Payload) != "1000" {
		t.Errorf("after the restart the first message was %q (Duplicate %v); want the new one, \"1000\"", got[0].Payload, got[0].Duplicate)
		var seq []string
		for _, m := range h.snapshot() {
			seq = append(seq, fmt.Sprintf("%s%v", m.Payload, map[bool]string{true: "D"}[m.Duplicate]))
		}
		t.Logf("first session, in the order handled (D: flagged DUP): %v; status %+v", seq, s.Status())
	}
}

// TestIntegrationWebSocketBrokerGoesThroughPaho: a ws:// broker (mosquitto's
// websockets listener) is served by the paho fallback, with the same
// contract: every QoS 1 message delivered and acknowledged once accepted.
func TestIntegrationWebSocketBrokerGoesThroughPaho(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	mq := mosquittotest.Start(t, mosquittotest.Options{Extra: []string{
		fmt.Sprintf("listener %d 127.0.0.1", port), "protocol websockets"}})
	ws := fmt.Sprintf("ws://127.0.0.1:%d", port)
	if useOwnClient(ws) {
		t.Fatalf("%s would use the own client; want paho", ws)
	}
	var h collector
	s, err := New(testConfig(ws, "it-ws", "sensors/#", 1), &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	const n = 200
	publish(t, mq.URL(), "sensors/ws", 1, 0, n)
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Acked != n || distinct(h.snapshot()) != n {
			return fmt.Errorf("acked %d, distinct %d; want %d", st.Acked, distinct(h.snapshot()), n)
		}
		return nil
	})
}
