package mqtt

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeBroker answers one client over net.Pipe: CONNACK, SUBACK, and
// PINGRESP while answer is set; it counts PINGREQs.
type pipeBroker struct {
	pings  atomic.Int64
	answer atomic.Bool
}

func (b *pipeBroker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		first, err := r.ReadByte()
		if err != nil {
			return
		}
		rem, mult := 0, 1
		for {
			d, err := r.ReadByte()
			if err != nil {
				return
			}
			rem += int(d&0x7f) * mult
			mult <<= 7
			if d&0x80 == 0 {
				break
			}
		}
		body := make([]byte, rem)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var out []byte
		switch first >> 4 {
		case pktConnect:
			out = connackOK
		case pktSubscribe:
			out = []byte{pktSuback << 4, 3, body[0], body[1], 1}
		case pktPingreq:
			b.pings.Add(1)
			if b.answer.Load() {
				out = []byte{pktPingresp << 4, 0}
			}
		case pktDisconnect:
			return
		}
		if out != nil {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// TestKeepAlivePingsAndNoticesADeadBroker: an idle connection sends a
// PINGREQ about once per keepalive and stays up far longer than the
// connect timeout; once the broker stops answering, the Source notices
// within 1.5 keepalives and reconnects.
func TestKeepAlivePingsAndNoticesADeadBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b pipeBroker
		b.answer.Store(true)
		dial := func(context.Context, string) (net.Conn, error) {
			c, srv := net.Pipe()
			go b.serve(srv)
			return c, nil
		}
		cfg := testConfig("tcp://pipe:1883", "ka", "sensors/#", 1)
		cfg.KeepAlive = 10 * time.Second
		cfg.ConnectTimeout = 5 * time.Second
		s, err := New(cfg, &collector{}, withDial(dial))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		for i := 0; s.Status().State != Connected; i++ {
			if i == 100 {
				t.Fatalf("not connected after 1s (fake time): %+v", s.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		st := s.Status()
		if st.Connects != 1 || st.State != Connected {
			t.Errorf("after a minute idle: %d connects, state %v, last error %q; want one connection, still up", st.Connects, st.State, st.LastError)
		}
		if p := b.pings.Load(); p < 5 || p > 7 {
			t.Errorf("got %d PINGREQs in 60s with a 10s keepalive; want about 6", p)
		}

		b.answer.Store(false)
		time.Sleep(16 * time.Second)
		synctest.Wait()
		st = s.Status()
		if st.Connects != 2 || !strings.Contains(st.LastError, "timeout") {
			t.Errorf("16s after the broker stopped answering: %d connects, last error %q; want a reconnect after a read timeout", st.Connects, st.LastError)
		}
	})
}
