package mqtt

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// readBufferSize is the read buffer of a broker connection: paho reads
// every packet with three or more small reads (type byte, each byte of the
// remaining length, then the rest), each a system call on a bare net.Conn.
// Behind a buffer a burst of sensor messages costs one read per few hundred
// messages: profiles of `scripts/bench/mqtt.sh` showed read(2) as the top
// entry of edged's CPU at QoS 0.
const readBufferSize = 16 << 10

// Read coalescing: when the last read from the socket brought less than
// coalesceBelow bytes (the subscriber is keeping up and reads messages a few
// at a time), the next read waits coalesceDelay first, so that one system
// call (and one netpoller wake-up) fetches a burst instead of a message or
// two. At 40,000 messages a second that cuts the reads from one per few
// messages to one per ~100, for at most coalesceDelay of added latency. A
// full read never waits: a backlog is read as fast as it comes.
const (
	coalesceBelow = 4 << 10
	coalesceDelay = time.Millisecond
)

// bufferedConn is a net.Conn whose reads go through a bufio.Reader. Only
// paho's single incoming goroutine reads it; writes, deadlines and Close go
// to the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// coalescingReader is what the bufio.Reader of a bufferedConn reads from.
type coalescingReader struct {
	c    net.Conn
	last int // bytes the last read returned
}

func (r *coalescingReader) Read(p []byte) (int, error) {
	if r.last > 0 && r.last < coalesceBelow && len(p) >= coalesceBelow {
		time.Sleep(coalesceDelay)
	}
	n, err := r.c.Read(p)
	r.last = n
	return n, err
}

// openConnFunc returns a paho OpenConnectionFunc that dials tcp:// (mqtt://)
// and ssl:// (tls://, mqtts://) brokers like paho does and buffers the
// reads, or nil to keep paho's own dialer: for websockets, and when a proxy
// is configured in the environment (paho honours all_proxy; we do not
// reimplement that). With batchWrites the writes go through a batchingConn
// too (the Publisher's).
func openConnFunc(brokers []string, batchWrites bool) paho.OpenConnectionFunc {
	if os.Getenv("all_proxy") != "" || os.Getenv("ALL_PROXY") != "" {
		return nil
	}
	for _, b := range brokers {
		u, err := url.Parse(b)
		if err != nil || !bufferable(u.Scheme) {
			return nil
		}
	}
	return func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: o.ConnectTimeout}
		}
		var (
			c   net.Conn
			err error
		)
		switch u.Scheme {
		case "ssl", "tls", "mqtts":
			c, err = tls.DialWithDialer(d, "tcp", u.Host, o.TLSConfig)
		default:
			c, err = d.Dial("tcp", u.Host)
		}
		if err != nil {
			return nil, err
		}
		bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(&coalescingReader{c: c}, readBufferSize)}
		if batchWrites {
			return newBatchingConn(bc, o.WriteTimeout), nil
		}
		return bc, nil
	}
}

// batchingConnLimit bounds the bytes a batchingConn holds for its flusher;
// a Write waits for room beyond it.
const batchingConnLimit = 256 << 10

// batchingConn is a net.Conn whose writes a flusher goroutine writes, all
// that accumulated since its last write in one system call. paho's
// outgoing goroutine writes every packet with a Write of its own, so a sink
// batch of 1,024 outputs was 1,024 write(2) calls: a tenth of edged's CPU
// in scripts/bench/mqtt.sh. A Write returns once its bytes are queued, in
// order; a failed write closes the connection and every later Write
// returns its error, which is all paho needs: a QoS 1 publish completes on
// the broker's PUBACK, never on a write, and a QoS 0 one was never more
// than handed to the network. Reads, and read deadlines, go to the
// connection; write deadlines are the flusher's (timeout per write).
type batchingConn struct {
	net.Conn
	timeout time.Duration

	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte // queued
	spare  []byte // the flusher's last buffer, for reuse
	err    error  // the first write error: sticky
	closed bool
	done   chan struct{} // the flusher returned
}

func newBatchingConn(c net.Conn, timeout time.Duration) *batchingConn {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	b := &batchingConn{Conn: c, timeout: timeout, done: make(chan struct{})}
	b.cond.L = &b.mu
	go b.flush()
	return b
}

func (c *batchingConn) flush() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.buf) == 0 || c.err != nil {
			return // closed, and everything queued written (or failed)
		}
		b := c.buf
		c.buf = c.spare[:0]
		timeout := c.timeout
		if c.closed {
			timeout = min(timeout, time.Second) // Close waits for this write
		}
		c.mu.Unlock()
		c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err := c.Conn.Write(b)
		c.mu.Lock()
		c.spare = b[:0]
		if err != nil && c.err == nil {
			c.err = err
			c.buf = c.buf[:0]
			c.Conn.Close()
		}
		c.cond.Broadcast() // room for waiting writers
	}
}

func (c *batchingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) >= batchingConnLimit && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

// Close writes what is queued (within a second) and closes the connection.
func (c *batchingConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	<-c.done
	return c.Conn.Close()
}

// SetDeadline sets the read deadline only: the flusher sets its own write
// deadlines.
func (c *batchingConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// SetWriteDeadline does nothing: the flusher sets its own write deadlines.
func (c *batchingConn) SetWriteDeadline(time.Time) error { return nil }

func bufferable(scheme string) bool {
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		return true
	}
	return false
}
