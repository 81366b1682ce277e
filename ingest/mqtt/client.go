package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The Source's own MQTT 3.1.1 subscriber (see "The client" in the package
// doc). One wire is one connection: a reader goroutine that parses many
// PUBLISH packets out of each read and queues them in one step, a pinger,
// and writes (CONNECT, SUBSCRIBE, the PUBACKs of a whole batch in one
// write, PINGREQ, DISCONNECT) under a mutex.

// Read buffer sizes. Payloads are sliced from the slab they were read
// into, and a slab that holds any is never written again (the Handler may
// keep them), so a fresh slab is taken once less than slabMinFree bytes are
// left. A packet larger than a slab grows the buffer by doubling as its
// bytes arrive, never by what its header claims.
const (
	slabSize    = 64 << 10
	slabMinFree = 4 << 10
)

// Read coalescing of the own client: after a read that brought less than
// ownCoalesceBelow bytes, the next read waits ownCoalesceDelay so that it
// brings a burst. Each read costs a system call and often a scheduler
// wake-up, as much as parsing a hundred messages; the hand-off waits far
// longer than this for a batch to fill anyway (Config.MaxBatchDelay).
//
// While the connection brings only QoS 0 messages, which wait for the next
// epoch boundary in the hand-off anyway (qos0Deadline), every read that
// emptied the socket waits ownCoalesceDelayQoS0 instead: about a hundred
// reads a second at any rate the slab keeps up with, where the 2ms rule
// made five hundred (reads were a fifth of edged's CPU in
// scripts/bench/mqtt.sh). QoS 1 flows keep the short delay: the broker's
// in-flight window waits for our acknowledgements, and the hand-off hands a
// stalled batch off early.
const (
	ownCoalesceBelow     = 16 << 10
	ownCoalesceDelay     = 2 * time.Millisecond
	ownCoalesceDelayQoS0 = 10 * time.Millisecond
)

// useOwnClient reports whether broker is served by the Source's own client:
// tcp:// and ssl:// URLs, unless a proxy is set in the environment. Others
// (ws://, wss://, proxies) go through paho.
func useOwnClient(broker string) bool {
	if os.Getenv("all_proxy") != "" || os.Getenv("ALL_PROXY") != "" {
		return false
	}
	u, err := url.Parse(broker)
	return err == nil && bufferable(u.Scheme)
}

// ackRef says how to acknowledge one queued message: by packet id on the
// wire it came from (QoS 1, own client), through paho (fallback), or not
// at all (QoS 0: both nil).
type ackRef struct {
	w  *wire
	id uint16
	p  interface{ Ack() }
}

// wire is one connection of the own client.
type wire struct {
	s      *Source
	conn   net.Conn
	broker string

	ready   atomic.Bool // CONNACK and SUBACK seen: the reader manages its read deadline
	connack chan error  // the CONNACK's verdict (buffered)
	suback  chan error  // the SUBACK's verdict (buffered)
	lost    chan error  // why the reader stopped (buffered); nothing when the Source stops
	done    chan struct{}

	closing   chan struct{}
	closeOnce sync.Once

	wmu       sync.Mutex
	lastWrite atomic.Int64 // unix nanoseconds of the last write

	connackSeen bool // the CONNACK was read (reader only)
}

// subscribeID is the packet id of the one SUBSCRIBE a connection sends.
const subscribeID = 1

// dialWire connects to broker (tcp:// or ssl://), sends CONNECT and
// SUBSCRIBE and returns once both are accepted, all within
// Config.ConnectTimeout.
func (s *Source) dialWire(ctx context.Context, broker string) (*wire, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, err
	}
	secure := u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts"
	addr := u.Host
	if u.Port() == "" {
		port := "1883"
		if secure {
			port = "8883"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	dial := s.dialTCP
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dial(dctx, addr)
	if err != nil {
		return nil, err
	}
	if secure {
		cfg := s.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c = tc
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	w := &wire{
		s: s, conn: c, broker: broker,
		connack: make(chan error, 1), suback: make(chan error, 1), lost: make(chan error, 1),
		done: make(chan struct{}), closing: make(chan struct{}),
	}
	go w.read()
	fail := func(err error) (*wire, error) {
		w.close()
		<-w.done
		return nil, err
	}
	wait := func(ch <-chan error, what string) error {
		select {
		case err := <-ch:
			return err
		case err := <-w.lost:
			return err
		case <-dctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("no %s within %v", what, s.cfg.ConnectTimeout)
		}
	}
	co := connectOptions{clientID: s.cfg.ClientID, username: s.cfg.Username, password: s.cfg.Password,
		cleanSession: s.cfg.CleanSession, keepAlive: uint16(min(s.cfg.KeepAlive/time.Second, 65535))}
	if err := w.write(appendConnect(nil, co)); err != nil {
		return fail(err)
	}
	if err := wait(w.connack, "CONNACK"); err != nil {
		return fail(err)
	}
	if err := w.write(appendSubscribe(nil, subscribeID, s.cfg.Subscriptions)); err != nil {
		return fail(err)
	}
	if err := wait(w.suback, "SUBACK"); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	w.ready.Store(true)
	// The reader may be waiting in a read bounded by the connect deadline:
	// move it to the keepalive rule the reader applies from now on.
	w.conn.SetReadDeadline(w.readDeadline())
	if s.cfg.KeepAlive > 0 {
		go w.ping(s.cfg.KeepAlive)
	}
	return w, nil
}

// write writes b in one call, within the write timeout; an error closes
// the connection (the reader then reports it lost).
func (w *wire) write(b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	select {
	case <-w.closing:
		return net.ErrClosed
	default:
	}
	w.conn.SetWriteDeadline(time.Now().Add(w.s.cfg.ConnectTimeout))
	_, err := w.conn.Write(b)
	if err != nil {
		w.close()
		return err
	}
	w.lastWrite.Store(time.Now().UnixNano())
	return nil
}

func (w *wire) close() {
	w.closeOnce.Do(func() {
		close(w.closing)
		w.conn.Close()
	})
}

// disconnect sends DISCONNECT (the broker then keeps no will and ends the
// session cleanly), closes the connection and waits for the reader.
func (w *wire) disconnect() {
	if w.write(disconnectPacket) == nil {
		if cw, ok := w.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			// Let the broker close first, reading what it still sends:
			// closing a socket with unread bytes sends a reset, and a
			// broker that has not read our last acknowledgements yet
			// loses them with it (and redelivers those messages).
			w.conn.SetReadDeadline(time.Now().Add(time.Second))
			io.Copy(io.Discard, w.conn)
		}
	}
	w.close()
	<-w.done
}

// ping sends PINGREQ when nothing was written for a keepalive, so the
// broker hears from us at least once per keepalive (it allows 1.5).
func (w *wire) ping(keepAlive time.Duration) {
	t := time.NewTimer(keepAlive)
	defer t.Stop()
	for {
		select {
		case <-w.closing:
			return
		case <-t.C:
		}
		next := time.Until(time.Unix(0, w.lastWrite.Load()).Add(keepAlive))
		if next <= 0 {
			w.write(pingreqPacket)
			next = keepAlive
		}
		t.Reset(next)
	}
}

// read is the connection's reader goroutine. It returns on a read or
// protocol error (closing the connection and reporting the error in lost)
// or when the Source stops taking messages.
func (w *wire) read() {
	defer close(w.done)
	err := w.readLoop()
	if err == nil {
		return
	}
	select {
	case <-w.closing:
		err = fmt.Errorf("connection closed: %w", err)
	default:
	}
	w.close()
	w.lost <- err
}

func (w *wire) readLoop() error {
	s := w.s
	limit := s.cfg.MaxPacketSize
	buf := make([]byte, slabSize)
	r, n := 0, 0    // buf[r:n] is read and not yet parsed
	shared := false // a queued message points into buf
	last := 0       // bytes the last read returned
	offered := 0    // bytes the last read had room for
	var msgs []Message
	var acks []ackRef
	var rerr error     // the last read's error, returned once its bytes are parsed
	var qos0, qos1 int // PUBLISH packets of each QoS parsed since the last read
	for {
		// Parse the whole packets in the buffer, at most as many messages as
		// the queue has room for (so it never holds more than MaxInFlight).
		need := 0
		now := s.now()
		budget := max(1, s.cfg.MaxInFlight-int(s.inflight.Load()))
		more := false
		for !more {
			first, rem, hl, err := decodeHeader(buf[r:n], limit)
			if err != nil {
				return err
			}
			if hl == 0 {
				need = n - r + 1
				break
			}
			if n-r < hl+rem {
				need = hl + rem
				break
			}
			body := buf[r+hl : r+hl+rem : r+hl+rem]
			r += hl + rem
			if first>>4 == pktPublish {
				if !w.connackSeen {
					return fmt.Errorf("%w: PUBLISH before CONNACK", errMalformed)
				}
				p, err := decodePublish(first, body)
				if err != nil {
					return err
				}
				if p.qos > 1 {
					return fmt.Errorf("%w: QoS %d PUBLISH on a subscription of QoS 1 at most", errMalformed, p.qos)
				}
				msgs = append(msgs, Message{Topic: slabString(p.topic), Payload: p.payload, QoS: p.qos, Duplicate: p.dup, Retained: p.retain, Received: now})
				a := ackRef{}
				if p.qos == 1 {
					a = ackRef{w: w, id: p.id}
				}
				acks = append(acks, a)
				if p.qos == 0 {
					qos0++
				} else {
					qos1++
				}
				shared = true
				more = len(msgs) >= budget
				continue
			}
			if err := w.control(first, body); err != nil {
				return err
			}
		}
		if len(msgs) > 0 {
			if !s.enqueue(msgs, acks, w.closing) {
				return nil
			}
			clear(msgs)
			msgs, acks = msgs[:0], acks[:0]
		}
		if more {
			continue // parse the rest before reading more
		}
		// Make room for the next read.
		switch {
		case r == n && !shared:
			r, n = 0, 0
		case len(buf)-n < slabMinFree || need > len(buf)-r:
			size := slabSize
			if need > size {
				// Grow by doubling with the bytes actually received.
				size = min(need, max(2*(n-r), slabSize))
			}
			if !shared && size <= len(buf) {
				n = copy(buf, buf[r:n])
			} else {
				nb := make([]byte, size)
				n = copy(nb, buf[r:n])
				buf, shared = nb, false
			}
			r = 0
		}
		if rerr != nil {
			return rerr
		}
		if w.ready.Load() {
			w.conn.SetReadDeadline(w.readDeadline())
		}
		// A small last read that did not fill the room it had means we keep
		// up a few messages at a time: wait a little so the next read
		// brings a burst (a read that filled its room, however small, is
		// followed at once by one into a fresh slab).
		if last > 0 && last < offered {
			switch {
			case qos0 > 0 && qos1 == 0:
				time.Sleep(ownCoalesceDelayQoS0)
			case last < ownCoalesceBelow:
				time.Sleep(ownCoalesceDelay)
			}
		}
		var m int
		offered = len(buf) - n
		m, rerr = w.conn.Read(buf[n:])
		n += m
		last = m
		qos0, qos1 = 0, 0
	}
}

// readDeadline is the deadline of a read once connected: with keepalive
// on, we send a PINGREQ after at most a keepalive of silence and the broker
// answers at once, so 1.5 keepalives without a byte means the link is dead.
func (w *wire) readDeadline() time.Time {
	if ka := w.s.cfg.KeepAlive; ka > 0 {
		return time.Now().Add(ka + ka/2)
	}
	return time.Time{}
}

// control handles a packet other than PUBLISH.
func (w *wire) control(first byte, body []byte) error {
	t := first >> 4
	if !w.connackSeen && t != pktConnack {
		return fmt.Errorf("%w: %s before CONNACK", errMalformed, packetName(t))
	}
	switch t {
	case pktConnack:
		if w.connackSeen || len(body) != 2 {
			return fmt.Errorf("%w: unexpected CONNACK", errMalformed)
		}
		w.connackSeen = true
		if body[1] != 0 {
			err := connackError(body[1])
			w.connack <- err
			return err
		}
		w.connack <- nil
	case pktSuback:
		subs := w.s.cfg.Subscriptions
		if len(body) != 2+len(subs) || uint16(body[0])<<8|uint16(body[1]) != subscribeID || w.ready.Load() {
			return fmt.Errorf("%w: unexpected SUBACK", errMalformed)
		}
		var err error
		for i, code := range body[2:] {
			if code == 0x80 {
				err = errors.Join(err, fmt.Errorf("%q: refused by the broker", subs[i].Topic))
			}
		}
		select {
		case w.suback <- err:
		default:
		}
	case pktPingresp:
		if len(body) != 0 {
			return fmt.Errorf("%w: PINGRESP with a body", errMalformed)
		}
	default:
		return fmt.Errorf("%w: unexpected %s", errMalformed, packetName(t))
	}
	return nil
}

// slabString returns b, a topic in a read slab, as a string without
// copying it. This is sound because a slab is never written again once a
// queued message points into it (readLoop's shared flag), so the string is
// as immutable as Go requires; like a payload, a topic the Handler keeps
// keeps its slab alive. A copy per message (or interning) cost 4% of
// edged's CPU in scripts/bench/mqtt.sh.
func slabString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
