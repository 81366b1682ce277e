package mqtt

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"os"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// readBufferSize is the read buffer of a broker connection: paho reads
// every packet with three or more small reads (type byte, each byte of the
// remaining length, then the rest), each a system call on a bare net.Conn.
// Behind a buffer a burst of sensor messages costs one read per few hundred
// messages: profiles of `scripts/bench/mqtt.sh` showed read(2) as the top
// entry of edged's CPU at QoS 0.
const readBufferSize = 16 << 10

// bufferedConn is a net.Conn whose reads go through a bufio.Reader. Only
// paho's single incoming goroutine reads it; writes, deadlines and Close go
// to the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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
		return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}, nil
	}
}

func bufferable(scheme string) bool {
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		return true
	}
	return false
}
