package mqtt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// With MaxInFlight messages of all clients waiting for the Handler, a
// client that sends one more is not read further until the Handler accepts
// a batch: the per-client windows (1024 each by default) alone would let
// every client's messages wait at once. Every acknowledged message was
// handed to the Handler.
func TestHandoffInFlightBudgetAcrossClients(t *testing.T) {
	const budget, clients, each = 6, 4, 5
	g := newGate()
	url, b := startHandoffBroker(t, g, BrokerLimits{MaxInFlight: budget})
	var toks []paho.Token
	for c := range clients {
		pub := client(t, url, fmt.Sprintf("pub%d", c), true)
		for i := range each {
			toks = append(toks, pub.Publish("s/1", 1, false, fmt.Sprintf("%d-%d", c, i)))
		}
	}
	handed := map[string]bool{}
	for _, m := range g.next(t) { // the first batch is held: the rest waits
		handed[string(m.Payload)] = true
	}
	eventually(t, 10*time.Second, func() error {
		st := b.Stats().Handoff
		if st.InFlight != budget || st.InFlightBudgetWaits == 0 {
			return fmt.Errorf("in flight %d, budget waits %d; want %d in flight and a wait",
				st.InFlight, st.InFlightBudgetWaits, budget)
		}
		return nil
	})
	for len(handed) < clients*each {
		if st := b.Stats().Handoff; st.InFlight > budget {
			t.Fatalf("%d messages waiting for the Handler; want at most maxInFlight %d", st.InFlight, budget)
		}
		g.answer <- nil
		for _, m := range g.next(t) {
			handed[string(m.Payload)] = true
		}
	}
	g.answer <- nil
	for _, tok := range toks {
		waitTok(t, tok)
	}
	// A client may see its PUBACK before the broker counted it.
	eventually(t, 10*time.Second, func() error {
		if st := b.Stats().Handoff; st.Acked != clients*each || st.InFlight != 0 {
			return fmt.Errorf("stats %+v; want %d acknowledged, none in flight", st, clients*each)
		}
		return nil
	})
}

// Many clients publishing at once never have more than MaxInFlight
// messages waiting for the Handler together, and every message
// acknowledged to them reached the Handler.
func TestHandoffInFlightBudgetManyPublishers(t *testing.T) {
	const budget, clients, each = 64, 40, 50
	var (
		mu      sync.Mutex
		handed  = map[string]bool{}
		brk     atomic.Pointer[Broker]
		maxSeen atomic.Int64
		slow    sync.Once
	)
	h := HandlerFunc(func(_ context.Context, msgs []Message) error {
		if b := brk.Load(); b != nil {
			// The first batch waits until the publishers ran into the
			// budget (a fast Handler may otherwise never let it fill).
			slow.Do(func() {
				for end := time.Now().Add(10 * time.Second); b.Stats().Handoff.InFlightBudgetWaits == 0 && time.Now().Before(end); {
					time.Sleep(time.Millisecond)
				}
			})
			if n := int64(b.Stats().Handoff.InFlight); n > maxSeen.Load() {
				maxSeen.Store(n) // only the batcher calls the Handler
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			handed[string(m.Payload)] = true
		}
		return nil
	})
	url, b := startHandoffBroker(t, h, BrokerLimits{MaxInFlight: budget})
	brk.Store(b)
	pubs := make([]paho.Client, clients)
	for c := range pubs {
		pubs[c] = client(t, url, fmt.Sprintf("pub%d", c), true)
	}
	toks := make([][]paho.Token, clients)
	var wg sync.WaitGroup
	for c, pub := range pubs {
		wg.Go(func() {
			for i := range each {
				toks[c] = append(toks[c], pub.Publish("s/1", 1, false, fmt.Sprintf("%d-%d", c, i)))
			}
		})
	}
	wg.Wait()
	for c := range toks {
		for _, tok := range toks[c] {
			waitTok(t, tok)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range clients {
		for i := range each {
			if p := fmt.Sprintf("%d-%d", c, i); !handed[p] {
				t.Errorf("message %s acknowledged but never handed to the Handler", p)
			}
		}
	}
	st := b.Stats().Handoff
	if n := maxSeen.Load(); n > budget {
		t.Errorf("%d messages waited for the Handler at once; want at most maxInFlight %d", n, budget)
	}
	if st.InFlightBudgetWaits == 0 {
		t.Errorf("stats %+v; want the budget hit (InFlightBudgetWaits > 0) with %d clients", st, clients)
	}
}

// A subscriber of the publishers' topics gets every message of a whole
// hand-off batch (mqtt.batchSize's default, 8192 messages, delivered at once
// when the Handler accepts it) with the default MaxPendingWrites, which
// holds such a batch even if the subscriber's connection drained nothing
// meanwhile: the broker drops a message it cannot queue for a subscriber,
// at QoS 1 too (with a write queue of 1024 this test loses messages).
func TestHandoffBatchFitsDefaultWriteQueue(t *testing.T) {
	g := newGate()
	url, b := startBroker(t, BrokerConfig{Handler: g, MaxBatchDelay: time.Minute})
	const total = 8192 // one held message, then a batch of 8191 queued behind it
	got := make(chan struct{}, total)
	sub := client(t, url, "sub", true)
	waitTok(t, sub.Subscribe("s/#", 1, func(paho.Client, paho.Message) { got <- struct{}{} }))
	pub := client(t, url, "pub", true)
	first := pub.Publish("s/1", 1, false, "0")
	g.next(t) // held: the others queue up behind it
	pubs := make([]paho.Client, 8)
	for c := range pubs {
		pubs[c] = client(t, url, fmt.Sprintf("pub%d", c), true)
	}
	var toks []paho.Token
	for i := 1; i < total; i++ {
		toks = append(toks, pubs[i%len(pubs)].Publish("s/1", 1, false, fmt.Sprint(i)))
	}
	eventually(t, 30*time.Second, func() error {
		if n := b.Stats().Handoff.InFlight; n != total {
			return fmt.Errorf("%d messages waiting for the Handler; want %d", n, total)
		}
		return nil
	})
	g.acceptAll(t)
	waitTok(t, first)
	for _, tok := range toks {
		waitTok(t, tok)
	}
	for i := range total {
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatalf("subscriber got %d of %d messages; the broker dropped %d", i, total, b.Dropped())
		}
	}
	if n := b.Dropped(); n != 0 {
		t.Fatalf("broker dropped %d messages to the subscriber; want 0", n)
	}
}
