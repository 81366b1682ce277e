package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// gate is a Handler under the test's control: each call is sent on calls
// and returns what the test sends on answer.
type gate struct {
	calls  chan []Message
	answer chan error
}

func newGate() *gate { return &gate{calls: make(chan []Message, 16), answer: make(chan error)} }

func (g *gate) HandleBatch(ctx context.Context, msgs []Message) error {
	g.calls <- append([]Message(nil), msgs...)
	select {
	case err := <-g.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next waits for the next Handler call.
func (g *gate) next(t *testing.T) []Message {
	t.Helper()
	select {
	case m := <-g.calls:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the Handler was not called within 10s")
		return nil
	}
}

// acceptAll makes the gate accept every call from now on, until the test
// ends.
func (g *gate) acceptAll(t *testing.T) {
	go func() {
		for {
			select {
			case <-g.calls:
			case g.answer <- nil:
			case <-t.Context().Done():
				return
			}
		}
	}()
}

// startHandoffBroker runs a broker whose hand-off goes to h.
func startHandoffBroker(t *testing.T, h Handler, limits BrokerLimits) (string, *Broker) {
	t.Helper()
	return startBroker(t, BrokerConfig{Handler: h, Limits: limits, MaxBatchDelay: 0, BatchSize: 1000})
}

// client connects a paho client to broker.
func client(t *testing.T, broker, id string, clean bool, modify ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false)
	for _, m := range modify {
		m(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func done(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

func waitTok(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("token: done=%v err=%v", done(tok), tok.Error())
	}
}

// A QoS 1 PUBLISH is acknowledged, and delivered to subscribers, only after
// the Handler accepted it.
func TestHandoffAcksOnlyAfterHandlerAccepted(t *testing.T) {
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{})
	got := make(chan string, 4)
	sub := client(t, url, "sub", true)
	waitTok(t, sub.Subscribe("s/#", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }))

	pub := client(t, url, "pub", false)
	const sent = 3 // two CONNACKs and a SUBACK (counted just after they are written)
	eventually(t, 5*time.Second, func() error {
		if n := atomic.LoadInt64(&b.srv.Info.PacketsSent); n != sent {
			return fmt.Errorf("broker sent %d packets; want %d", n, sent)
		}
		return nil
	})
	tok := pub.Publish("s/1", 1, false, "m1")
	batch := g.next(t)
	if len(batch) != 1 || string(batch[0].Payload) != "m1" || batch[0].QoS != 1 {
		t.Fatalf("Handler got %+v; want the one QoS 1 message m1", batch)
	}
	tok2 := pub.Publish("s/1", 1, false, "m2")
	// The broker reads a client's packets one after the other: once m2 is
	// queued, m1 was processed completely. The Handler still holds m1, so
	// nothing may have been written: no PUBACK, no delivery to sub.
	eventually(t, 10*time.Second, func() error {
		if q := len(b.hand.q); q != 1 {
			return fmt.Errorf("%d messages queued; want m2", q)
		}
		return nil
	})
	if now := atomic.LoadInt64(&b.srv.Info.PacketsSent); now != sent {
		t.Fatalf("broker wrote %d packets while the Handler held the message; want none (no PUBACK, no delivery)", now-sent)
	}
	if st := b.Stats().Handoff; st.Acked != 0 || st.InFlight != 2 {
		t.Fatalf("stats before accept: acked %d, in flight %d; want 0, 2", st.Acked, st.InFlight)
	}
	if done(tok) {
		t.Fatal("PUBACK arrived before the Handler returned")
	}
	g.answer <- nil
	waitTok(t, tok)
	select {
	case p := <-got:
		if p != "m1" {
			t.Fatalf("subscriber got %q; want m1", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber got nothing after the Handler accepted the message")
	}
	if b2 := g.next(t); len(b2) != 1 || string(b2[0].Payload) != "m2" {
		t.Fatalf("second batch %+v; want m2", b2)
	}
	g.answer <- nil
	waitTok(t, tok2)
	eventually(t, 5*time.Second, func() error {
		if st := b.Stats().Handoff; st.Acked != 2 || st.HandedOff != 2 || st.InFlight != 0 || st.Batches != 2 {
			return fmt.Errorf("stats %+v; want 2 acked, 2 handed off, 0 in flight, 2 batches", st)
		}
		return nil
	})
}

// A QoS 2 PUBLISH gets its PUBREC only after the Handler accepted it, and
// the exchange completes (PUBREL, PUBCOMP).
func TestHandoffQoS2RecOnlyAfterHandlerAccepted(t *testing.T) {
	g := newGate()
	url, _ := startHandoffBroker(t, g, BrokerLimits{})
	pub := client(t, url, "pub2", true)
	tok := pub.Publish("s/2", 2, false, "two")
	if batch := g.next(t); len(batch) != 1 || batch[0].QoS != 2 {
		t.Fatalf("Handler got %+v; want one QoS 2 message", batch)
	}
	if done(tok) {
		t.Fatal("QoS 2 exchange completed before the Handler returned")
	}
	g.answer <- nil
	waitTok(t, tok)
}

// When the Handler fails, nothing is acknowledged: the client is
// disconnected, and its resend after reconnecting is accepted.
func TestHandoffRefusedBatchDisconnectsWithoutAck(t *testing.T) {
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{})
	lost := make(chan error, 1)
	var reconnects atomic.Int32
	pub := client(t, url, "dev", false, func(o *paho.ClientOptions) {
		o.SetAutoReconnect(true).SetMaxReconnectInterval(50 * time.Millisecond).
			SetConnectionLostHandler(func(_ paho.Client, err error) {
				select {
				case lost <- err:
				default:
				}
			}).
			SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { reconnects.Add(1) })
	})
	pub.Publish("s/1", 1, false, "m1")
	g.next(t)
	g.answer <- errors.New("disk quota exceeded")
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected after the Handler refused its message")
	}
	// (paho completes the original token when it resends the message after
	// reconnecting, so the broker's count is what tells whether a PUBACK
	// was written.)
	st := b.Stats().Handoff
	if st.Failures != 1 || st.Disconnected != 1 || st.Acked != 0 || !st.Failing || !strings.Contains(st.LastError, "quota") {
		t.Fatalf("stats %+v; want 1 failure, 1 disconnect, 0 acked, failing with the quota error", st)
	}
	// The client resends on its own after reconnecting (persistent session).
	again := g.next(t)
	if len(again) != 1 || string(again[0].Payload) != "m1" {
		t.Fatalf("after reconnect the Handler got %+v; want m1 again", again)
	}
	g.answer <- nil
	eventually(t, 10*time.Second, func() error {
		if st := b.Stats().Handoff; st.Acked != 1 {
			return fmt.Errorf("acked %d after the resend was accepted; want 1", st.Acked)
		}
		return nil
	})
	if reconnects.Load() == 0 {
		t.Fatal("no reconnect seen")
	}
}

// Messages of many clients that arrive while one batch is in the Handler
// share the next Handler call (one group commit).
func TestHandoffManyClientsShareOneHandlerCall(t *testing.T) {
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{})
	const n = 10
	pubs := make([]paho.Client, n)
	for i := range pubs {
		pubs[i] = client(t, url, fmt.Sprintf("dev-%d", i), true)
	}
	first := pubs[0].Publish("s/0", 1, false, "p0")
	g.next(t) // the batcher now waits in the Handler
	toks := make([]paho.Token, 0, n-1)
	for i := 1; i < n; i++ {
		toks = append(toks, pubs[i].Publish(fmt.Sprintf("s/%d", i), 1, false, fmt.Sprintf("p%d", i)))
	}
	eventually(t, 10*time.Second, func() error {
		if q := len(b.hand.q); q != n-1 {
			return fmt.Errorf("%d messages queued; want %d", q, n-1)
		}
		return nil
	})
	g.answer <- nil
	waitTok(t, first)
	second := g.next(t)
	var topics []string
	for _, m := range second {
		topics = append(topics, m.Topic)
	}
	sort.Strings(topics)
	if len(second) != n-1 {
		t.Fatalf("second Handler call got %d messages (%v); want all %d other clients' in one call", len(second), topics, n-1)
	}
	for _, tok := range toks {
		if done(tok) {
			t.Fatal("a PUBACK arrived before the shared batch was accepted")
		}
	}
	g.answer <- nil
	for _, tok := range toks {
		waitTok(t, tok)
	}
}

// QoS 0 is at most once: acknowledged by nothing, delivered to subscribers
// at once, handed off without waiting for the Handler; a failing batch
// loses it (counted) without disconnecting anyone.
func TestHandoffQoS0DoesNotWait(t *testing.T) {
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{})
	got := make(chan string, 4)
	sub := client(t, url, "sub", true)
	waitTok(t, sub.Subscribe("s/#", 0, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }))
	pub := client(t, url, "pub", true)
	waitTok(t, pub.Publish("s/1", 0, false, "q0"))
	batch := g.next(t)
	if len(batch) != 1 || batch[0].QoS != 0 {
		t.Fatalf("Handler got %+v; want one QoS 0 message", batch)
	}
	// The Handler still holds it, yet the subscriber has it.
	select {
	case p := <-got:
		if p != "q0" {
			t.Fatalf("subscriber got %q; want q0", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("QoS 0 message not delivered while the Handler held it")
	}
	g.answer <- errors.New("broken disk")
	eventually(t, 5*time.Second, func() error {
		if st := b.Stats().Handoff; st.LostQoS0 != 1 || st.Disconnected != 0 {
			return fmt.Errorf("stats %+v; want 1 QoS 0 lost, nobody disconnected", st)
		}
		return nil
	})
	if !pub.IsConnectionOpen() {
		t.Fatal("QoS 0 publisher disconnected by a failed batch")
	}
}

// A client with MaxInFlightPerClient messages waiting for the Handler is
// not read further until they are acknowledged; the wait is counted.
func TestHandoffInFlightWindowPerClient(t *testing.T) {
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{MaxInFlightPerClient: 2})
	pub := client(t, url, "pub", true)
	var toks []paho.Token
	for i := range 5 {
		toks = append(toks, pub.Publish("s/1", 1, false, fmt.Sprint(i)))
	}
	g.next(t)
	eventually(t, 10*time.Second, func() error {
		st := b.Stats().Handoff
		if st.InFlightWaits == 0 || st.InFlight != 2 {
			return fmt.Errorf("in flight %d, waits %d; want 2 in flight and a wait", st.InFlight, st.InFlightWaits)
		}
		return nil
	})
	g.acceptAll(t)
	for _, tok := range toks {
		waitTok(t, tok)
	}
}

// The limits mochi enforces are counted when hit.
func TestBrokerLimitsCounted(t *testing.T) {
	url, b := startHandoffBroker(t, HandlerFunc(func(context.Context, []Message) error { return nil }),
		BrokerLimits{MaxClients: 1, MaxPacketSize: 200})
	c := client(t, url, "one", true)
	o := paho.NewClientOptions().AddBroker(url).SetClientID("two").SetAutoReconnect(false).SetProtocolVersion(4)
	if tok := paho.NewClient(o).Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		t.Fatal("second client connected; want refused (maxClients 1)")
	}
	if st := b.Stats(); st.RefusedClients != 1 {
		t.Fatalf("refused clients %d; want 1", st.RefusedClients)
	}
	c.Publish("s/1", 1, false, strings.Repeat("x", 300))
	eventually(t, 10*time.Second, func() error {
		if st := b.Stats(); st.OversizedPackets != 1 {
			return fmt.Errorf("oversized packets %d; want 1", st.OversizedPackets)
		}
		return nil
	})
}

func TestBrokerLimitsValidate(t *testing.T) {
	if err := (&BrokerLimits{}).Validate(); err != nil {
		t.Fatalf("zero limits: %v; want nil (defaults)", err)
	}
	d := DefaultBrokerLimits()
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultBrokerLimits: %v", err)
	}
	bad := BrokerLimits{MaxPacketSize: -1, MaxClients: -1, SessionExpiry: time.Millisecond,
		MaxQueuedPerClient: 70000, MaxPendingWrites: -1, MaxInFlightPerClient: 70000, MaxInFlight: -1}
	err := bad.Validate()
	for _, key := range []string{"maxPacketSize", "maxClients", "sessionExpiry", "maxQueuedPerClient",
		"maxPendingWrites", "maxInFlightPerClient", "maxInFlight"} {
		if err == nil || !strings.Contains(err.Error(), "mqtt.broker."+key+":") {
			t.Errorf("Validate() = %v; want it to name mqtt.broker.%s", err, key)
		}
	}
}
