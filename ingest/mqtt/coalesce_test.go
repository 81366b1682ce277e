package mqtt

import (
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pacedConn is a broker connection in fake time: it accepts CONNECT and
// SUBSCRIBE, then one QoS publish arrives every gap, as on a socket: a Read
// returns whatever arrived since the last one (waiting for the next arrival
// when nothing did). It counts the Reads that returned publishes.
type pacedConn struct {
	net.Conn // nil: the methods below are the ones the client uses
	gap      time.Duration
	qos      byte

	mu      sync.Mutex
	out     []byte    // responses not yet read
	start   time.Time // of the stream (zero until subscribed)
	sent    int       // publishes read
	reads   int       // Reads that returned publishes
	closed  bool
	closeCh chan struct{}
}

func (c *pacedConn) publish(i int) []byte {
	topic := "sensors/a"
	body := appendString(nil, topic)
	if c.qos > 0 {
		body = append(body, byte(i>>8), byte(i)|1)
	}
	body = append(body, `{"temp":21.5,"seq":1234567}`...)
	b := []byte{pktPublish<<4 | c.qos<<1}
	b = appendLength(b, len(body))
	return append(b, body...)
}

func (c *pacedConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			c.mu.Unlock()
			return n, nil
		}
		var next time.Duration = time.Hour
		if !c.start.IsZero() {
			due := int(time.Since(c.start) / c.gap)
			n := 0
			for ; c.sent < due && n+64 <= len(p); c.sent++ {
				n += copy(p[n:], c.publish(c.sent))
			}
			if n > 0 {
				c.reads++
				c.mu.Unlock()
				return n, nil
			}
			next = c.start.Add(time.Duration(due+1) * c.gap).Sub(time.Now())
		}
		c.mu.Unlock()
		select {
		case <-time.After(next):
		case <-c.closeCh:
		}
	}
}

func (c *pacedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p[0] >> 4 {
	case pktConnect:
		c.out = append(c.out, connackOK...)
	case pktSubscribe:
		_, _, hl, _ := decodeHeader(p, 1<<20)
		c.out = append(c.out, pktSuback<<4, 3, p[hl], p[hl+1], c.qos)
		c.start = time.Now()
	}
	return len(p), nil
}

func (c *pacedConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.closeCh)
	}
	return nil
}

func (c *pacedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pacedConn) SetWriteDeadline(time.Time) error { return nil }
func (c *pacedConn) SetDeadline(time.Time) error      { return nil }

// countReads streams one message of qos every gap to a Source for a second
// of fake time and returns the Reads that brought messages and the messages.
func countReads(t *testing.T, qos byte, gap time.Duration) (reads, msgs int) {
	synctest.Test(t, func(t *testing.T) {
		c := &pacedConn{gap: gap, qos: qos, closeCh: make(chan struct{})}
		cfg := testConfig("tcp://stream:1883", "stream", "sensors/#", qos)
		cfg.KeepAlive = 0
		s, err := New(cfg, &collector{}, withDial(func(context.Context, string) (net.Conn, error) { return c, nil }))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(time.Second)
		c.mu.Lock()
		reads, msgs = c.reads, c.sent
		c.mu.Unlock()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return reads, msgs
}

// TestQoS0StreamIsReadInBurstsOfTenMilliseconds: the own client reads a
// stream of QoS 0 messages (a message every 100µs) about every 10ms, not
// every 2ms: a read costs a system call and a scheduler wake-up, and QoS 0
// messages wait for the epoch boundary anyway. A QoS 1 stream keeps the
// 2ms rule (its acknowledgements wait for the batch). Neither reads a few
// bytes at a time when its slab is nearly full (2,000 reads a second did).
func TestQoS0StreamIsReadInBurstsOfTenMilliseconds(t *testing.T) {
	reads, msgs := countReads(t, 0, 100*time.Microsecond)
	if msgs < 9000 {
		t.Fatalf("read %d QoS 0 messages in a second; want about 10000", msgs)
	}
	if reads < 50 || reads > 110 {
		t.Errorf("%d reads for a second of QoS 0 messages every 100µs; want about 100 (one per 10ms)", reads)
	}
	reads, msgs = countReads(t, 1, 100*time.Microsecond)
	if msgs < 9000 {
		t.Fatalf("read %d QoS 1 messages in a second; want about 10000", msgs)
	}
	if reads < 300 || reads > 600 {
		t.Errorf("%d reads for a second of QoS 1 messages every 100µs; want about 500 (one per 2ms)", reads)
	}
}
