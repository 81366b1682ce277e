// Package benchconn is the MQTT connection of the benchmark's own paho
// clients (scripts/bench/sub and scripts/bench/plain) when they read like
// edged's client does (ingest/mqtt/conn.go): through a 16 KiB buffer, and a
// read that follows a short one (under 4 KiB) waits 1 ms so that one system
// call fetches a burst. So edged's read buffering flatters neither the rate
// nor the CPU of the process compared with it.
package benchconn

import (
	"bufio"
	"net"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// DialBuffered dials a tcp:// broker and reads it through a buffer; it is a
// paho.OpenConnectionFunc (ClientOptions.SetCustomOpenConnectionFn).
func DialBuffered(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: o.ConnectTimeout}).Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(&coalescingReader{c: c}, 16<<10)}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type coalescingReader struct {
	c    net.Conn
	last int
}

func (r *coalescingReader) Read(p []byte) (int, error) {
	if r.last > 0 && r.last < 4<<10 && len(p) >= 4<<10 {
		time.Sleep(time.Millisecond)
	}
	n, err := r.c.Read(p)
	r.last = n
	return n, err
}
