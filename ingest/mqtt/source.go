package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one MQTT message handed to a Handler.
type Message struct {
	Topic   string
	Payload []byte
	// QoS is the QoS the message was delivered with (the lower of the
	// publisher's and the subscription's).
	QoS byte
	// Duplicate is the MQTT DUP flag: the broker is redelivering a message it
	// sent before without receiving our acknowledgement. The copy may or may
	// not have reached the log already; dropping it is the log's job.
	Duplicate bool
	// Retained is the RETAIN flag of a message the broker sent a
	// subscriber: a copy from its retained store, sent again on every
	// subscribe, so possibly one logged before. (The embedded broker hands
	// over publishes as they arrive: never a retained copy.)
	Retained bool
	// Received is when the Source received the message (its clock).
	Received time.Time
}

// Handler receives batches of messages from a Source.
//
// Contract:
//   - HandleBatch is called from one goroutine at a time, never
//     concurrently, in the order the batches were formed.
//   - It must make the whole batch durable (or decide, durably, to drop
//     parts of it, e.g. as duplicates or dead letters) before returning nil.
//     After nil the Source acknowledges the QoS 1 messages of the batch
//     (PUBACK) and the broker forgets them.
//   - On a non-nil error nothing of the batch is acknowledged. The Source
//     keeps the batch, stops handing off (back-pressure) and calls
//     HandleBatch again with the same messages after a backoff, until it
//     returns nil or the Source stops. Nothing is ever dropped by the
//     Source. Return an error wrapping ErrBackPressure when the log is full
//     (disk quota) rather than broken: the Source then waits the longest
//     retry backoff and reports back-pressure instead of an error.
//   - It may block; ctx ends when the Source stops (after the drain
//     timeout), and the handler should return promptly then; the batch is
//     not acknowledged and QoS 1 messages come back on the next start.
//   - It may retain the Topic and Payload of each Message (they are never
//     reused by the Source) but not the msgs slice itself.
//   - A handler that acknowledges a batch which is later lost breaks the
//     at-least-once guarantee; one that partially writes a batch and returns
//     an error gets the same messages again, so the log must tolerate that.
type Handler interface {
	HandleBatch(ctx context.Context, msgs []Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msgs []Message) error

// HandleBatch calls f(ctx, msgs).
func (f HandlerFunc) HandleBatch(ctx context.Context, msgs []Message) error { return f(ctx, msgs) }

// ErrBackPressure is the sentinel a Handler wraps to say "full, try later"
// (e.g. the input log reached its disk quota). The batch is retried after
// Config.RetryBackoffMax, and Status reports BackPressured with this error.
var ErrBackPressure = errors.New("mqtt: handler is back-pressuring")

// ErrRunning is returned by Run when the Source is already running.
var ErrRunning = errors.New("mqtt: source already running")

// ConnState is the connection state of a Source.
type ConnState int32

// Connection states.
const (
	Disconnected ConnState = iota // not connected, waiting to retry (or stopped)
	Connecting                    // a connection attempt is in progress
	Connected                     // connected and subscribed
)

func (s ConnState) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return fmt.Sprintf("ConnState(%d)", int32(s))
}

// Status is a snapshot of a Source's state, for status pages and metrics.
type Status struct {
	Broker   string    // the broker URL connected to (or being tried)
	State    ConnState // connection state
	Connects uint64    // successful connections so far

	Received    uint64 // messages received from the broker (all QoS)
	Redelivered uint64 // of which carried the DUP flag
	HandedOff   uint64 // messages in batches the Handler accepted
	Acked       uint64 // QoS 1 messages acknowledged to the broker
	InFlight    int    // received and not yet accepted by the Handler
	Waiting     int    // messages waiting for room in the full queue

	BackPressured bool      // the Handler is refusing batches; the Source is retrying
	LastError     string    // the last connection or Handler error, "" if none
	LastErrorAt   time.Time // when LastError happened
}

// Option configures a Source beyond its Config (test seams and rare knobs).
type Option func(*Source)

// WithLogger sets the logger; nil (the default) discards logs.
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithClock sets the function used for Message.Received; the default is
// time.Now.
func WithClock(now func() time.Time) Option { return func(s *Source) { s.now = now } }

// Source subscribes to MQTT brokers and hands the messages to a Handler in
// batches, acknowledging QoS 1 messages only after the Handler accepted
// them. Create it with New and run it with Run.
type Source struct {
	cfg  Config
	h    Handler
	log  *slog.Logger
	now  func() time.Time
	tls  *tls.Config
	subs map[string]byte

	running atomic.Bool
	stopIn  chan struct{} // closed when readers must stop enqueueing
	ready   chan struct{} // signalled (buffered, 1) when messages were queued
	room    chan struct{} // signalled (buffered, 1) when a batch was accepted
	// fill is signalled (buffered, 1) when the queue holds fillWant
	// messages or more, or a QoS 1 message, while fillWant > 0: the
	// hand-off waits for it, not polling, while a QoS 0 batch fills.
	fill      chan struct{}
	fillWant  atomic.Int64
	fillWakes atomic.Uint64 // times a filling batch's wait ended (tests)

	// The queue between the connection's reader and the hand-off: messages
	// received and not yet taken into a batch, with how to acknowledge each.
	inMu   sync.Mutex
	inMsgs []Message
	inAcks []ackRef
	ackBuf []byte // the PUBACKs of one batch (hand-off goroutine only)
	paho   bool   // every broker through paho (test seam)

	// dialTCP, when set, replaces the TCP dial of both clients (test seam:
	// in-memory brokers, wrapped connections).
	dialTCP func(ctx context.Context, addr string) (net.Conn, error)

	received, redelivered, handedOff, acked, connects atomic.Uint64
	inflight, waiting                                 atomic.Int64
	backpressured                                     atomic.Bool
	state                                             atomic.Int32

	mu        sync.Mutex // guards the fields below
	broker    string
	lastErr   string
	lastErrAt time.Time
}

// New validates cfg and returns a Source that hands messages to h.
func New(cfg Config, h Handler, opts ...Option) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("mqtt: nil Handler")
	}
	s := &Source{
		cfg:  cfg,
		h:    h,
		now:  time.Now,
		subs: make(map[string]byte, len(cfg.Subscriptions)),
	}
	s.cfg.Brokers = append([]string(nil), cfg.Brokers...)
	if s.cfg.MaxBatchDelayQoS0 == 0 {
		s.cfg.MaxBatchDelayQoS0 = s.cfg.MaxBatchDelay
	}
	for _, sub := range cfg.Subscriptions {
		s.subs[sub.Topic] = sub.QoS
	}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	t, err := loadClientTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	s.tls = t
	return s, nil
}

// Status returns a snapshot of the Source's state. Safe for concurrent use.
func (s *Source) Status() Status {
	s.mu.Lock()
	st := Status{Broker: s.broker, LastError: s.lastErr, LastErrorAt: s.lastErrAt}
	s.mu.Unlock()
	st.State = ConnState(s.state.Load())
	st.Connects = s.connects.Load()
	st.Received = s.received.Load()
	st.Redelivered = s.redelivered.Load()
	st.HandedOff = s.handedOff.Load()
	st.Acked = s.acked.Load()
	st.InFlight = int(s.inflight.Load())
	st.Waiting = int(s.waiting.Load())
	st.BackPressured = s.backpressured.Load()
	return st
}

func (s *Source) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.lastErrAt = s.now()
	s.mu.Unlock()
}

func (s *Source) setState(st ConnState, broker string) {
	s.mu.Lock()
	s.broker = broker
	s.mu.Unlock()
	s.state.Store(int32(st))
}

// Run connects, subscribes and hands messages to the Handler until ctx
// ends. It blocks; it returns nil when ctx ends, after handing off and
// acknowledging what was queued (within Config.DrainTimeout) and
// disconnecting cleanly. An unreachable broker is not an error: Run keeps
// retrying with backoff and reports it in Status. A Source runs once at a
// time; a second concurrent Run returns ErrRunning. Run may be called again
// after it returned.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	s.stopIn = make(chan struct{})
	s.ready = make(chan struct{}, 1)
	s.room = make(chan struct{}, 1)
	s.fill = make(chan struct{}, 1)
	s.inMu.Lock()
	clear(s.inMsgs)
	s.inMsgs, s.inAcks = s.inMsgs[:0], s.inAcks[:0]
	s.inMu.Unlock()
	s.inflight.Store(0)

	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	drain := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.handoff(hctx, drain)
	}()

	client := s.connectLoop(ctx)

	// Shutdown: stop taking messages, drain what is queued, then disconnect
	// so that the last acknowledgements are flushed.
	close(s.stopIn)
	close(drain)
	if s.cfg.DrainTimeout <= 0 {
		hcancel()
	} else {
		t := time.AfterFunc(s.cfg.DrainTimeout, hcancel)
		defer t.Stop()
	}
	<-done
	if client != nil {
		client.disconnect()
	}
	s.setState(Disconnected, "")
	s.backpressured.Store(false)
	return nil
}

// connection is one connection to a broker, through the own client or
// paho.
type connection interface{ disconnect() }

// pahoConn is a paho client as a connection.
type pahoConn struct{ c paho.Client }

func (p pahoConn) disconnect() { p.c.Disconnect(250) }

// dial connects to broker and subscribes, with the own client or, for the
// URLs it does not serve, paho. lost receives why the connection ended.
func (s *Source) dial(ctx context.Context, broker string) (connection, <-chan error, error) {
	if !s.paho && useOwnClient(broker) {
		w, err := s.dialWire(ctx, broker)
		if err != nil {
			return nil, nil, err
		}
		return w, w.lost, nil
	}
	lost := make(chan error, 1)
	c := paho.NewClient(s.clientOptions(broker, lost))
	if err := s.connect(ctx, c); err != nil {
		c.Disconnect(0)
		return nil, nil, err
	}
	return pahoConn{c}, lost, nil
}

// connectLoop connects with failover and backoff and stays connected until
// ctx ends; it returns the connection (nil if none).
func (s *Source) connectLoop(ctx context.Context) connection {
	idx := 0
	backoff := s.cfg.ReconnectBackoffMin
	for {
		if ctx.Err() != nil {
			return nil
		}
		broker := s.cfg.Brokers[idx%len(s.cfg.Brokers)]
		s.setState(Connecting, broker)
		c, lost, err := s.dial(ctx, broker)
		if err == nil {
			s.connects.Add(1)
			s.setState(Connected, broker)
			s.log.Info("mqtt connected", "broker", broker)
			backoff = s.cfg.ReconnectBackoffMin
			select {
			case <-ctx.Done():
				return c
			case err = <-lost:
				// Retry the same broker first: the persistent session and
				// its queued messages live there.
				s.log.Warn("mqtt connection lost", "broker", broker, "err", err)
				s.setErr(fmt.Errorf("connection to %s lost: %w", broker, err))
				s.setState(Disconnected, broker)
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("mqtt connect failed", "broker", broker, "err", err)
		s.setErr(fmt.Errorf("connect to %s: %w", broker, err))
		s.setState(Disconnected, broker)
		idx++
		if !sleepCtx(ctx, jitter(backoff)) {
			return nil
		}
		backoff = min(backoff*2, s.cfg.ReconnectBackoffMax)
	}
}

func (s *Source) connect(ctx context.Context, c paho.Client) error {
	tok := c.Connect()
	if err := waitToken(ctx, tok, s.cfg.ConnectTimeout); err != nil {
		return err
	}
	st := c.SubscribeMultiple(s.subs, nil)
	if err := waitToken(ctx, st, s.cfg.ConnectTimeout); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for topic, code := range st.(*paho.SubscribeToken).Result() {
		if code == 0x80 {
			return fmt.Errorf("subscribe %q: refused by the broker", topic)
		}
	}
	return nil
}

func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("timed out after %v", timeout)
	}
}

func (s *Source) clientOptions(broker string, lost chan<- error) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(s.cfg.ClientID).
		SetCleanSession(s.cfg.CleanSession).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(s.cfg.KeepAlive).
		SetConnectTimeout(s.cfg.ConnectTimeout).
		SetDefaultPublishHandler(s.onMessage).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if s.cfg.Username != "" {
		o.SetUsername(s.cfg.Username).SetPassword(s.cfg.Password)
	}
	o.SetTLSConfig(s.tls)
	if f := openConnFunc([]string{broker}, false); f != nil {
		o.SetCustomOpenConnectionFn(f)
	}
	if s.dialTCP != nil {
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			return s.dialTCP(context.Background(), u.Host)
		})
	}
	return o
}

// onMessage runs on paho's router goroutine (OrderMatters true). It blocks
// while the queue is full, which stops paho reading the connection (see
// "Back-pressure" in the package doc).
func (s *Source) onMessage(_ paho.Client, m paho.Message) {
	msg := [1]Message{{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Duplicate: m.Duplicate(), Retained: m.Retained(), Received: s.now()}}
	ack := [1]ackRef{{}}
	if m.Qos() > 0 {
		ack[0].p = m
	}
	s.enqueue(msg[:], ack[:], nil)
}

// enqueue queues msgs (acks[i] acknowledges msgs[i]) for the hand-off and
// then, while the queue holds MaxInFlight messages or more, waits for room,
// so that its caller stops reading the connection. It returns false when
// the Source stops taking messages (msgs were not queued, or are the last).
// closing ends the wait early (the connection is going away).
func (s *Source) enqueue(msgs []Message, acks []ackRef, closing <-chan struct{}) bool {
	select {
	case <-s.stopIn:
		// Not acknowledged: a QoS 1 message comes back on the next start.
		return false
	default:
	}
	var dups uint64
	qos1 := false
	for i := range msgs {
		if msgs[i].Duplicate {
			dups++
		}
		qos1 = qos1 || msgs[i].QoS > 0
	}
	s.received.Add(uint64(len(msgs)))
	s.redelivered.Add(dups)
	s.inMu.Lock()
	s.inMsgs = append(s.inMsgs, msgs...)
	s.inAcks = append(s.inAcks, acks...)
	queued := len(s.inMsgs)
	s.inMu.Unlock()
	full := s.inflight.Add(int64(len(msgs))) >= int64(s.cfg.MaxInFlight)
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if want := s.fillWant.Load(); want > 0 && (qos1 || int64(queued) >= want) {
		select {
		case s.fill <- struct{}{}:
		default:
		}
	}
	if !full {
		return true
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	for s.inflight.Load() >= int64(s.cfg.MaxInFlight) {
		select {
		case <-s.room:
		case <-s.stopIn:
			return false
		case <-closing:
			return true
		}
	}
	return true
}

// take moves up to room messages from the queue to the end of batch (and
// their acks to acks). It returns how many it moved and whether one of them
// is QoS 1.
func (s *Source) take(batch *[]Message, acks *[]ackRef, room int) (int, bool) {
	s.inMu.Lock()
	k := min(len(s.inMsgs), room)
	if k == 0 {
		s.inMu.Unlock()
		return 0, false
	}
	from := len(*batch)
	*batch = append(*batch, s.inMsgs[:k]...)
	*acks = append(*acks, s.inAcks[:k]...)
	m := copy(s.inMsgs, s.inMsgs[k:])
	copy(s.inAcks, s.inAcks[k:])
	clear(s.inMsgs[m:])
	clear(s.inAcks[m:])
	s.inMsgs, s.inAcks = s.inMsgs[:m], s.inAcks[:m]
	s.inMu.Unlock()
	qos1 := false
	for _, m := range (*batch)[from:] {
		if m.QoS > 0 {
			qos1 = true
			break
		}
	}
	return k, qos1
}

// ack acknowledges the QoS 1 messages of an accepted batch: those of the own
// client with one write of all their PUBACKs per connection (in the order
// received, as MQTT requires), paho's through paho. A connection that is
// gone takes its acknowledgements with it: the broker redelivers those
// messages on the next connection.
func (s *Source) ack(acks []ackRef) {
	buf := s.ackBuf[:0]
	var cur *wire
	flush := func() {
		if cur != nil && len(buf) > 0 && cur.write(buf) == nil {
			s.acked.Add(uint64(len(buf) / 4))
		}
		buf = buf[:0]
	}
	for i, a := range acks {
		switch {
		case a.w != nil:
			if a.w != cur {
				flush()
				cur = a.w
			}
			buf = appendPuback(buf, a.id)
		case a.p != nil:
			a.p.Ack()
			s.acked.Add(1)
		}
		acks[i] = ackRef{}
	}
	flush()
	s.ackBuf = buf
}

// qos0Deadline is when a batch of QoS 0 messages begun at start is handed
// off: at most delay after start, and just before a whole multiple of delay
// in Unix time. Pipelines cut their epochs at whole multiples of their
// interval (1s by default) and an epoch takes the entries logged before its
// boundary, so a batch committed just before the boundary reaches that
// epoch: a reading waits for the next boundary only once, not for the
// batch's delay and then for the boundary, and the log still commits once
// per delay (flash wear).
func qos0Deadline(start time.Time, delay time.Duration) time.Time {
	d := delay.Milliseconds()
	if d < 20 {
		return start.Add(delay)
	}
	margin := min(d/20, 50) // the commit's fsync, before the boundary
	ms := start.UnixMilli()
	at := (ms/d+1)*d - margin
	if at <= ms {
		at += d
	}
	return time.UnixMilli(at)
}

// fillPoll is how often handoff looks at the queue while it waits for a
// batch to fill (up to Config.MaxBatchDelay).
const fillPoll = 2 * time.Millisecond

// stalled reports whether a batch holding QoS 1 messages stopped growing:
// no message since last for ten times the batch's mean gap between messages
// (and at least two polls). The broker then has likely sent its whole
// in-flight window and waits for our acknowledgements, so waiting out
// MaxBatchDelay would only idle; at a steady rate the gap stays near the
// mean and the batch fills until MaxBatchDelay, one commit per delay.
func stalled(start, last, now time.Time, n int) bool {
	if n < 2 {
		return false
	}
	gap := max(2*fillPoll, 10*last.Sub(start)/time.Duration(n-1))
	return now.Sub(last) > gap
}

// handoff forms batches from the queue and hands them to the Handler,
// acknowledging them after it accepted them. It returns when ctx ends, or
// when drain is closed and the queue is empty.
func (s *Source) handoff(ctx context.Context, drain <-chan struct{}) {
	batch := make([]Message, 0, s.cfg.BatchSize)
	acks := make([]ackRef, 0, s.cfg.BatchSize)
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	draining := false
	for {
		// Wait for the first messages of a batch.
		_, qos1 := s.take(&batch, &acks, s.cfg.BatchSize)
		if len(batch) == 0 {
			if draining {
				return
			}
			select {
			case <-s.ready:
			case <-drain:
				draining = true
			case <-ctx.Done():
				return
			}
			continue
		}
		// Fill it: take what is queued, then wait until the deadline. The
		// batch is handed off MaxBatchDelay after its first message, or
		// MaxBatchDelayQoS0 after it while it holds only QoS 0 messages
		// (nothing waits for their acknowledgement, so they can wait for a
		// bigger group commit: fewer flash writes).
		start := time.Now()
		last := start // when the batch last grew (at fillPoll resolution)
	fill:
		for len(batch) < s.cfg.BatchSize {
			if k, q := s.take(&batch, &acks, s.cfg.BatchSize-len(batch)); k > 0 {
				qos1 = qos1 || q
				last = time.Now()
				continue
			}
			now := time.Now()
			end := qos0Deadline(start, s.cfg.MaxBatchDelayQoS0)
			if qos1 {
				end = start.Add(s.cfg.MaxBatchDelay)
			}
			wait := end.Sub(now)
			if draining || wait <= 0 || (qos1 && stalled(start, last, now, len(batch))) {
				break
			}
			if !qos1 {
				// Only QoS 0 so far: sleep until the deadline unless the
				// reader says the batch can fill or a QoS 1 message came
				// (its shorter delay then applies). Each wake-up costs a
				// scheduler round trip; a poll every fillPoll was a tenth
				// of edged's CPU at 50k messages a second.
				if !s.awaitFill(ctx, drain, poll, wait, s.cfg.BatchSize-len(batch)) {
					if ctx.Err() != nil {
						return
					}
					draining = true
					break fill
				}
				continue
			}
			// Look again after fillPoll rather than waking for every read:
			// at thousands of messages a second a wake-up per message costs
			// more than the batch does.
			poll.Reset(min(wait, fillPoll))
			s.fillWakes.Add(1)
			select {
			case <-poll.C:
			case <-drain:
				draining = true
				break fill
			case <-ctx.Done():
				return
			}
		}
		poll.Stop()

		if !s.deliver(ctx, batch) {
			return
		}
		s.ack(acks)
		s.handedOff.Add(uint64(len(batch)))
		s.inflight.Add(-int64(len(batch)))
		select {
		case s.room <- struct{}{}:
		default:
		}
		clear(batch)
		batch, acks = batch[:0], acks[:0]
	}
}

// awaitFill waits up to wait for the queue to hold want messages or a QoS 1
// message (enqueue signals s.fill), or for poll to fire. It returns false
// when ctx ended or drain was closed.
func (s *Source) awaitFill(ctx context.Context, drain <-chan struct{}, poll *time.Timer, wait time.Duration, want int) bool {
	select {
	case <-s.fill: // stale: from an earlier wait
	default:
	}
	s.fillWant.Store(int64(want))
	defer s.fillWant.Store(0)
	// A reader that queued between the caller's take and the store above
	// saw no want: look at the queue once more before sleeping.
	s.inMu.Lock()
	enough := len(s.inMsgs) >= want
	for i := range s.inMsgs {
		if enough || s.inMsgs[i].QoS > 0 {
			enough = true
			break
		}
	}
	s.inMu.Unlock()
	if enough {
		return true
	}
	poll.Reset(wait)
	defer poll.Stop()
	defer s.fillWakes.Add(1)
	select {
	case <-poll.C:
	case <-s.fill:
	case <-drain:
		return false
	case <-ctx.Done():
		return false
	}
	return true
}

// deliver calls the Handler until it accepts batch; false if ctx ended first.
func (s *Source) deliver(ctx context.Context, batch []Message) bool {
	backoff := s.cfg.RetryBackoffMin
	for {
		err := s.h.HandleBatch(ctx, batch)
		if err == nil {
			s.backpressured.Store(false)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.backpressured.Store(true)
		s.setErr(fmt.Errorf("handler: %w", err))
		wait := jitter(backoff)
		if errors.Is(err, ErrBackPressure) {
			wait = s.cfg.RetryBackoffMax
			s.log.Info("mqtt hand-off back-pressured", "messages", len(batch), "err", err, "retry_in", wait)
		} else {
			s.log.Warn("mqtt hand-off failed", "messages", len(batch), "err", err, "retry_in", wait)
			backoff = min(backoff*2, s.cfg.RetryBackoffMax)
		}
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
}

// jitter returns a duration drawn uniformly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
