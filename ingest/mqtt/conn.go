package mqtt

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"os"
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
// reimplement that).
func openConnFunc(brokers []string) paho.OpenConnectionFunc {
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
		return &bufferedConn{Conn: c, r: bufio.NewReaderSize(&coalescingReader{c: c}, readBufferSize)}, nil
	}
}

func bufferable(scheme string) bool {
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		return true
	}
	return false
}
