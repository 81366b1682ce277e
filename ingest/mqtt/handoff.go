package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// handoffClientID is the id of the broker-internal client through which
// messages are delivered to subscribers once they are durable.
const handoffClientID = "edged-handoff"

// HandoffStats counts the embedded broker's hand-off to its Handler.
type HandoffStats struct {
	Received    uint64 // PUBLISH packets taken from clients (all QoS)
	Redelivered uint64 // of which carried the DUP flag
	HandedOff   uint64 // messages in batches the Handler accepted
	Acked       uint64 // QoS 1/2 messages acknowledged (after the Handler accepted them)
	Batches     uint64 // Handler calls that returned nil
	Failures    uint64 // Handler calls that returned an error
	// Disconnected counts clients disconnected because a batch holding
	// their QoS 1 messages failed (they resend after reconnecting).
	Disconnected uint64
	// LostQoS0 counts QoS 0 messages in failed batches (at most once).
	LostQoS0 uint64
	// InFlightWaits counts PUBLISH packets a client had to wait with
	// because MaxInFlightPerClient of its messages were awaiting the
	// Handler (its connection is not read meanwhile).
	InFlightWaits uint64
	// InFlightBudgetWaits counts PUBLISH packets a client had to wait with
	// because MaxInFlight messages of all clients were awaiting the Handler.
	InFlightBudgetWaits uint64
	InFlight            int    // QoS 1/2 messages taken and not yet accepted by the Handler
	LastError           string // the last Handler error, "" if none
	// Failing is true while the last Handler call failed.
	Failing bool
}

// handoff is the embedded broker's write-ahead hand-off: a mochi hook that
// takes every PUBLISH from a network client before mochi acknowledges it,
// and one batcher goroutine that hands the messages of all clients to the
// Handler in batches (one group commit for many clients). Only after the
// Handler accepted a batch are its QoS 1/2 messages acknowledged and
// delivered to the broker's subscribers.
//
// Each client that publishes at QoS 1 or 2 gets a peer: a window of
// MaxInFlightPerClient slots and its own ack-writer goroutine, so that a
// client that stops reading blocks only its own acknowledgements, never the
// batcher or other clients. All clients together have MaxInFlight messages
// waiting for the Handler at most (inflight, budget): with many clients the
// per-client windows alone would let their sum, and its memory, grow with
// the number of clients.
type handoff struct {
	mochi.HookBase
	srv    *mochi.Server
	h      Handler
	log    *slog.Logger
	now    func() time.Time
	batch  int
	delay  time.Duration
	delay0 time.Duration
	window int
	budget int64 // MaxInFlight

	// room is closed (and replaced) each time the Handler accepted or
	// refused messages, waking the clients waiting for the budget.
	roomMu sync.Mutex
	room   chan struct{}

	q       chan item
	stopped chan struct{} // closed when the broker stops: hooks stop waiting
	inline  *mochi.Client
	// origin is the publisher id of the message being injected; only the
	// batcher goroutine touches it (InjectPacket calls OnPublish on it).
	origin string

	mu    sync.Mutex
	peers map[*mochi.Client]*peer

	received, redelivered, handedOff, acked, batches, failures atomic.Uint64
	disconnected, lost0, waits, budgetWaits                    atomic.Uint64
	inflight                                                   atomic.Int64 // at most budget
	failing                                                    atomic.Bool
	errMu                                                      sync.Mutex
	lastErr                                                    string
}

// item is one PUBLISH waiting for the Handler. It is small (a mochi Packet
// is 800 bytes): the queue and the batch hold up to 3 BatchSize of them.
type item struct {
	p  *peer // nil for QoS 0
	pk *pub  // QoS 1/2: delivered to subscribers once accepted; nil for QoS 0
	m  Message
}

// pub is what a held QoS 1/2 PUBLISH needs to be delivered to the broker's
// subscribers once accepted: about 100 bytes where a mochi Packet (with its
// CONNECT fields) is 800, for each message of every client's in-flight
// window.
type pub struct {
	fh      packets.FixedHeader
	topic   string
	payload []byte
	origin  string
	props   *packets.Properties // MQTT 5 only
	id      uint16
	pv      byte
}

func holdPub(pk *packets.Packet) *pub {
	p := &pub{fh: pk.FixedHeader, topic: pk.TopicName, payload: pk.Payload, origin: pk.Origin, id: pk.PacketID,
		pv: pk.ProtocolVersion}
	if pk.ProtocolVersion == 5 {
		props := pk.Properties
		p.props = &props
	}
	return p
}

// packet rebuilds the PUBLISH for InjectPacket (which sets its creation and
// expiry times again).
func (p *pub) packet() packets.Packet {
	pk := packets.Packet{FixedHeader: p.fh, TopicName: p.topic, Payload: p.payload, Origin: p.origin,
		PacketID: p.id, ProtocolVersion: p.pv}
	if p.props != nil {
		pk.Properties = *p.props
	}
	return pk
}

// ack is a PUBACK (or PUBREC) waiting for its client's writer: the packet is
// built when written, so the queue of a client's in-flight window (1024 by
// default, for every client) holds 4 bytes per message, not a mochi Packet.
type ack struct {
	id  uint16
	typ byte
}

// peer is one client's acknowledgement window and writer.
type peer struct {
	cl    *mochi.Client
	slots chan struct{} // a send takes a slot; the writer frees it
	acks  chan ack      // PUBACK/PUBREC to write, in order; cap = window
	done  chan struct{} // closed when the client disconnected
}

func newHandoff(srv *mochi.Server, cfg BrokerConfig, log *slog.Logger) *handoff {
	h := &handoff{
		srv:     srv,
		h:       cfg.Handler,
		log:     log,
		now:     time.Now,
		batch:   cfg.BatchSize,
		delay:   cfg.MaxBatchDelay,
		delay0:  cfg.MaxBatchDelayQoS0,
		window:  cfg.Limits.inFlight(),
		budget:  int64(cfg.Limits.withDefaults().MaxInFlight),
		room:    make(chan struct{}),
		stopped: make(chan struct{}),
		peers:   map[*mochi.Client]*peer{},
	}
	if h.batch <= 0 {
		h.batch = 8192
	}
	if h.delay0 <= 0 {
		h.delay0 = h.delay
	}
	h.q = make(chan item, 2*h.batch)
	h.inline = srv.NewClient(nil, "local", handoffClientID, true)
	return h
}

// ID identifies the hook to mochi.
func (h *handoff) ID() string { return "edged-handoff" }

// Provides tells mochi which hook methods are implemented.
func (h *handoff) Provides(b byte) bool { return b == mochi.OnPublish || b == mochi.OnDisconnect }

// OnPublish runs on the publishing client's read goroutine. QoS 0 messages
// are queued for the Handler and delivered to subscribers at once. QoS 1/2
// messages take a slot of the client's window and one of the node-wide
// budget (waiting, and so not reading the connection, while either is
// full), are queued, and are withheld from mochi
// (no acknowledgement, no delivery): the batcher acknowledges and delivers
// them once the Handler has accepted them.
func (h *handoff) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		if cl == h.inline {
			pk.Origin = h.origin // the publisher, for MQTT 5 no-local
		}
		return pk, nil
	}
	h.received.Add(1)
	if pk.FixedHeader.Dup {
		h.redelivered.Add(1)
	}
	it := item{m: Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
		Duplicate: pk.FixedHeader.Dup, Received: h.now()}}
	if pk.FixedHeader.Qos == 0 {
		select {
		case h.q <- it:
		case <-h.stopped:
		}
		return pk, nil
	}
	p := h.peer(cl)
	select {
	case p.slots <- struct{}{}:
	default:
		h.waits.Add(1)
		select {
		case p.slots <- struct{}{}:
		case <-p.done:
			return pk, packets.ErrRejectPacket
		case <-h.stopped:
			return pk, packets.ErrRejectPacket
		}
	}
	if !h.take(p) {
		<-p.slots
		return pk, packets.ErrRejectPacket
	}
	it.p, it.pk = p, holdPub(&pk)
	select {
	case h.q <- it:
	case <-h.stopped:
		h.inflight.Add(-1)
		<-p.slots
	}
	return withheld(pk), nil
}

// take counts one more message waiting for the Handler, first waiting
// while MaxInFlight of all clients are; false if p's client disconnected or
// the broker stopped meanwhile.
func (h *handoff) take(p *peer) bool {
	waited := false
	for {
		n := h.inflight.Load()
		if n < h.budget {
			if h.inflight.CompareAndSwap(n, n+1) {
				return true
			}
			continue
		}
		h.roomMu.Lock()
		room := h.room
		h.roomMu.Unlock()
		if h.inflight.Load() < h.budget {
			continue // freed between the two loads: room may be the new one
		}
		if !waited {
			waited = true
			h.budgetWaits.Add(1)
		}
		select {
		case <-room:
		case <-p.done:
			return false
		case <-h.stopped:
			return false
		}
	}
}

// release uncounts n messages the Handler accepted or refused and wakes the
// clients waiting for the budget.
func (h *handoff) release(n int) {
	if n == 0 {
		return
	}
	h.inflight.Add(int64(-n))
	h.roomMu.Lock()
	close(h.room)
	h.room = make(chan struct{})
	h.roomMu.Unlock()
}

// withheld is what the hand-off returns to mochi for a QoS 1/2 PUBLISH it
// holds: marked ignored and downgraded to QoS 0, mochi neither acknowledges
// it, nor retains it, nor delivers it (the batcher does all three once the
// Handler accepted it). Rejecting it (packets.ErrRejectPacket) would do the
// same, but mochi logs every rejected publish at Debug with the whole Packet
// as an argument, which copies about 800 bytes to the heap per message
// whatever the log level.
func withheld(pk packets.Packet) packets.Packet {
	pk.FixedHeader.Qos = 0
	pk.FixedHeader.Retain = false
	pk.Ignore = true
	return pk
}

// OnDisconnect ends the client's ack writer. Acknowledgements still queued
// for it are dropped: the client resends those messages on its next
// connection and the Handler's dedup drops the copies.
func (h *handoff) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.mu.Lock()
	p := h.peers[cl]
	delete(h.peers, cl)
	h.mu.Unlock()
	if p != nil {
		close(p.done)
	}
}

// peer returns cl's peer, starting its writer on first use.
func (h *handoff) peer(cl *mochi.Client) *peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.peers[cl]; p != nil {
		return p
	}
	p := &peer{cl: cl, slots: make(chan struct{}, h.window), acks: make(chan ack, h.window),
		done: make(chan struct{})}
	h.peers[cl] = p
	go h.write(p)
	return p
}

// write sends p's acknowledgements in order. It writes all those queued
// at the moment in one system call (a batch accepted by the Handler queues
// many acknowledgements for each client at once; one write per PUBACK took
// a third to a half of the broker's CPU). A write blocks only this
// goroutine (mochi's keepalive deadline bounds it); a failed write closes
// the connection.
func (h *handoff) write(p *peer) {
	var buf bytes.Buffer
	for {
		select {
		case <-p.done:
			return
		case <-h.stopped:
			return
		case a := <-p.acks:
			n := 1
			h.encodeAck(p.cl, a, &buf)
		drain:
			for n < cap(p.acks) {
				select {
				case a := <-p.acks:
					h.encodeAck(p.cl, a, &buf)
					n++
				default:
					break drain
				}
			}
			if err := h.writeAcks(p.cl, buf.Bytes(), n); err != nil {
				p.cl.Stop(fmt.Errorf("write acknowledgement: %w", err))
			} else {
				h.acked.Add(uint64(n))
			}
			buf.Reset()
			for range n {
				<-p.slots
			}
		}
	}
}

// encodeAck appends the PUBACK (PUBREC) a to buf.
func (h *handoff) encodeAck(cl *mochi.Client, a ack, buf *bytes.Buffer) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: a.typ}, PacketID: a.id,
		ProtocolVersion: cl.Properties.ProtocolVersion}
	if a.typ == packets.Pubrec {
		cl.State.Inflight.Set(pk) // mochi answers the PUBREL with PUBCOMP
		_ = pk.PubrecEncode(buf)  // writes to buf, never fails
		return
	}
	_ = pk.PubackEncode(buf)
}

// writeAcks writes n encoded acknowledgements to cl's connection in one
// write, holding cl's lock as mochi's own writes do (so that packets never
// interleave), and counts them in the broker's figures as mochi would.
func (h *handoff) writeAcks(cl *mochi.Client, b []byte, n int) error {
	if cl.Closed() {
		return mochi.ErrConnectionClosed
	}
	if cl.Net.Conn == nil {
		return nil // an inline client: nothing to write to (as mochi's WritePacket)
	}
	cl.Lock()
	w, err := cl.Net.Conn.Write(b)
	cl.Unlock()
	atomic.AddInt64(&h.srv.Info.BytesSent, int64(w))
	if err != nil {
		return err
	}
	atomic.AddInt64(&h.srv.Info.PacketsSent, int64(n))
	return nil
}

// run forms batches from the queue until ctx ends. A batch is handed off
// BatchSize messages or MaxBatchDelay after its first message (or
// MaxBatchDelayQoS0 while it holds only QoS 0 messages), or as soon as the
// flow stalls (see stalled): publishers waiting for acknowledgements send
// nothing more, so waiting out the delay would only idle.
func (h *handoff) run(ctx context.Context) {
	batch := make([]item, 0, h.batch)
	msgs := make([]Message, 0, h.batch)
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	fails := 0 // consecutive refused batches
	for {
		qos0 := true
		add := func(it item) {
			batch = append(batch, it)
			if it.m.QoS > 0 {
				qos0 = false
			}
		}
		select {
		case it := <-h.q:
			add(it)
		case <-ctx.Done():
			return
		}
		start := time.Now()
		last := start
	fill:
		for len(batch) < h.batch {
			select {
			case it := <-h.q:
				add(it)
				last = time.Now()
				continue
			default:
			}
			now := time.Now()
			end := start.Add(h.delay)
			if qos0 {
				end = qos0Deadline(start, h.delay0)
			}
			wait := end.Sub(now)
			if wait <= 0 || (!qos0 && now.Sub(last) > max(2*fillPoll, stallGap(start, last, len(batch)))) {
				break
			}
			poll.Reset(min(wait, fillPoll))
			select {
			case <-poll.C:
			case <-ctx.Done():
				break fill
			}
		}
		poll.Stop()
		if ctx.Err() != nil {
			return
		}
		for i := range batch {
			msgs = append(msgs, batch[i].m)
		}
		err := h.h.HandleBatch(ctx, msgs)
		clear(msgs)
		msgs = msgs[:0]
		if err == nil {
			h.accepted(batch)
			fails = 0
		} else {
			h.refused(batch, err)
			fails++
		}
		clear(batch)
		batch = batch[:0]
		if fails > 0 {
			// The disconnected clients reconnect and resend at once; pause
			// (50 ms doubling to 5 s) so that a full disk does not become a
			// reconnect storm.
			if !sleepCtx(ctx, jitter(min(refusedBackoff<<min(fails-1, 7), 5*time.Second))) {
				return
			}
		}
	}
}

// refusedBackoff is the first pause after the Handler refused a batch.
const refusedBackoff = 50 * time.Millisecond

// stallGap is ten times the batch's mean gap between messages (zero for a
// batch of one message).
func stallGap(start, last time.Time, n int) time.Duration {
	if n < 2 {
		return 0
	}
	return 10 * last.Sub(start) / time.Duration(n-1)
}

// accepted acknowledges the batch's QoS 1/2 messages and delivers them to
// the broker's subscribers (QoS 0 messages were delivered on arrival).
func (h *handoff) accepted(batch []item) {
	h.batches.Add(1)
	h.handedOff.Add(uint64(len(batch)))
	h.failing.Store(false)
	h.release(held(batch))
	for i := range batch {
		it := &batch[i]
		if it.p == nil {
			continue
		}
		a := ack{id: it.pk.id, typ: packets.Puback}
		if it.pk.fh.Qos == 2 {
			a.typ = packets.Pubrec
		}
		select {
		case it.p.acks <- a: // never blocks: the item holds one of the window's slots
		default:
			panic("BUG: mqtt hand-off: acknowledgement queue of a client is full")
		}
		pk := it.pk.packet()
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
		h.origin = pk.Origin
		if err := h.srv.InjectPacket(h.inline, pk); err != nil {
			h.log.Warn("deliver to subscribers", "topic", pk.TopicName, "err", err)
		}
	}
}

// held returns how many of the batch's messages are QoS 1/2 (counted in
// inflight).
func held(batch []item) int {
	n := 0
	for i := range batch {
		if batch[i].p != nil {
			n++
		}
	}
	return n
}

// refused drops the batch unacknowledged and disconnects every client with
// a QoS 1/2 message in it, so that they resend.
func (h *handoff) refused(batch []item, err error) {
	h.failures.Add(1)
	h.failing.Store(true)
	h.errMu.Lock()
	h.lastErr = err.Error()
	h.errMu.Unlock()
	h.release(held(batch))
	var stopped map[*peer]bool
	for i := range batch {
		it := &batch[i]
		if it.p == nil {
			h.lost0.Add(1)
			continue
		}
		<-it.p.slots
		if !stopped[it.p] {
			if stopped == nil {
				stopped = map[*peer]bool{}
			}
			stopped[it.p] = true
			h.disconnected.Add(1)
			it.p.cl.Stop(fmt.Errorf("%w: %w", errHandoff, err))
		}
	}
	h.log.Warn("mqtt hand-off refused: clients disconnected without acknowledgement",
		"messages", len(batch), "clients", len(stopped), "err", err)
}

// errHandoff is the stop cause of a client disconnected because the Handler
// refused a batch holding its messages.
var errHandoff = errors.New("input log refused the message")

// stats returns the hand-off counters.
func (h *handoff) stats() HandoffStats {
	h.errMu.Lock()
	last := h.lastErr
	h.errMu.Unlock()
	return HandoffStats{
		Received: h.received.Load(), Redelivered: h.redelivered.Load(), HandedOff: h.handedOff.Load(),
		Acked: h.acked.Load(), Batches: h.batches.Load(), Failures: h.failures.Load(),
		Disconnected: h.disconnected.Load(), LostQoS0: h.lost0.Load(), InFlightWaits: h.waits.Load(),
		InFlightBudgetWaits: h.budgetWaits.Load(), InFlight: int(h.inflight.Load()), LastError: last,
		Failing: h.failing.Load(),
	}
}
