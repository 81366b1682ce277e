package mesh

import (
	"fmt"
	"log"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport is memberlist's network transport with a count of the
// bytes this member sends (UDP packets and TCP streams, encryption
// included): the gossip cost a site pays per gateway.
type countingTransport struct {
	*memberlist.NetTransport
	sent    *atomic.Uint64
	streams chan net.Conn
	done    chan struct{}
}

// newTransport binds memberlist's UDP and TCP listeners on host:port (port
// 0: a free port, the same for both, retried as memberlist does) and
// returns the counting transport with the port bound.
func newTransport(host string, port int, logger *log.Logger, sent *atomic.Uint64) (*countingTransport, int, error) {
	var nt *memberlist.NetTransport
	var err error
	for range 10 {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err == nil || port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("mesh: listen on %s (mesh.bind): %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
	}
	t := &countingTransport{NetTransport: nt, sent: sent, streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case c := <-nt.StreamCh():
				select {
				case t.streams <- countingConn{c, sent}:
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t, nt.GetAutoBindPort(), nil
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, d)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.sent}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, d)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.sent}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the listeners, then the stream forwarder. In that order:
// memberlist's listener waits to hand over a stream accepted during the
// shutdown, so the forwarder must keep taking them until it has stopped.
func (t *countingTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	close(t.done)
	return err
}

// countingConn counts the bytes written to a stream.
type countingConn struct {
	net.Conn
	sent *atomic.Uint64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(uint64(n))
	return n, err
}

// GossipBytes returns how many bytes this member has sent to the others
// (memberlist's packets and streams, the term table and marks included)
// since Run started.
func (n *Node) GossipBytes() uint64 { return n.sent.Load() }
