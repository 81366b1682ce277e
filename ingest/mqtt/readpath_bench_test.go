package mqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memBroker is one in-memory broker connection: it answers CONNECT,
// SUBSCRIBE and PINGREQ, then sends left PUBLISH packets over 1,000 topics
// (at most window of them unacknowledged at QoS 1), as fast as the client
// reads. It lets a benchmark measure the client alone.
type memBroker struct {
	mu         sync.Mutex
	cond       *sync.Cond
	out        []byte
	pkts       [][]byte // one PUBLISH per topic, packet id patched in
	next       int
	id         uint16
	left       int
	window     int
	inflight   int
	qos        byte
	subscribed bool
	closed     bool
	pubacks    int
	payload    int           // bytes of payload in each PUBLISH
	allAcked   chan struct{} // closed when every QoS 1 message was acknowledged
}

func newMemBroker(n int, qos byte) *memBroker {
	payload := `{"sensor":"s-0042","temp":21.37,"hum":40.1,"ts":1700000000000}`
	m := &memBroker{left: n, qos: qos, window: 1000, payload: len(payload), allAcked: make(chan struct{})}
	m.cond = sync.NewCond(&m.mu)
	for i := range 1000 {
		m.pkts = append(m.pkts, publishBytes(qos, 1, fmt.Sprintf("sensors/s-%04d/temp", i), payload))
	}
	return m
}

func (m *memBroker) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		// Like a socket with a full receive buffer: top up to what the
		// reader asks for, then hand it over.
		for m.subscribed && m.left > 0 && (m.qos == 0 || m.inflight < m.window) && len(m.out) < len(p) {
			pk := m.pkts[m.next%len(m.pkts)]
			m.next++
			m.left--
			m.out = append(m.out, pk...)
			if m.qos > 0 {
				m.id = m.id%65535 + 1
				m.out[len(m.out)-m.payload-2] = byte(m.id >> 8) // the id precedes the payload
				m.out[len(m.out)-m.payload-1] = byte(m.id)
				m.inflight++
			}
		}
		if len(m.out) > 0 {
			n := copy(p, m.out)
			m.out = m.out[:copy(m.out, m.out[n:])]
			return n, nil
		}
		if m.closed {
			return 0, io.EOF
		}
		m.cond.Wait()
	}
}

func (m *memBroker) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := p; len(b) > 0; {
		first, rem, hl, err := decodeHeader(b, 1<<20)
		if err != nil || hl == 0 || len(b) < hl+rem {
			return 0, fmt.Errorf("memBroker: bad packet from the client")
		}
		body := b[hl : hl+rem]
		switch first >> 4 {
		case pktConnect:
			m.out = append(m.out, connackOK...)
		case pktSubscribe:
			m.out = append(m.out, pktSuback<<4, 3, body[0], body[1], m.qos)
			m.subscribed = true
		case pktPuback:
			m.inflight--
			m.pubacks++
			if m.left == 0 && m.inflight == 0 {
				close(m.allAcked)
			}
		case pktPingreq:
			m.out = append(m.out, pktPingresp<<4, 0)
		case pktDisconnect:
			m.closed = true
		}
		b = b[hl+rem:]
	}
	m.cond.Broadcast()
	return len(p), nil
}

func (m *memBroker) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cond.Broadcast()
	return nil
}

func (m *memBroker) LocalAddr() net.Addr                            { return &net.TCPAddr{} }
func (m *memBroker) RemoteAddr() net.Addr                           { return &net.TCPAddr{} }
func (m *memBroker) SetDeadline(time.Time) error                    { return nil }
func (m *memBroker) SetReadDeadline(time.Time) error                { return nil }
func (m *memBroker) SetWriteDeadline(time.Time) error               { return nil }
func (m *memBroker) dial(context.Context, string) (net.Conn, error) { return m, nil }

// BenchmarkReadPath runs b.N messages from an in-memory broker through a
// Source (reader, queue, batches, a Handler that only counts, PUBACKs) with
// the own client and with paho; allocs/op is allocations per message.
func BenchmarkReadPath(b *testing.B) {
	for _, c := range clients {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("%s/qos%d", c.name, qos), func(b *testing.B) {
				m := newMemBroker(b.N, qos)
				var count atomic.Int64
				done := make(chan struct{})
				h := HandlerFunc(func(_ context.Context, msgs []Message) error {
					if count.Add(int64(len(msgs))) == int64(b.N) {
						close(done)
					}
					return nil
				})
				cfg := testConfig("tcp://mem:1883", "bench", "sensors/#", qos)
				cfg.CleanSession = qos == 0
				cfg.MaxBatchDelayQoS0 = cfg.MaxBatchDelay // the last batch must not wait a second
				s, err := New(cfg, h, append([]Option{withDial(m.dial)}, c.opts...)...)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				stop := runSource(b, s)
				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					b.Fatalf("handed off %d of %d", count.Load(), b.N)
				}
				if qos == 1 {
					<-m.allAcked
				}
				b.StopTimer()
				stop()
			})
		}
	}
}
