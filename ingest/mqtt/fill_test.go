package mqtt

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// startHandoff runs s's hand-off alone (no connection): the test queues
// messages with enqueue, as the reader does.
func startHandoff(t *testing.T, s *Source) {
	s.stopIn = make(chan struct{})
	s.ready = make(chan struct{}, 1)
	s.room = make(chan struct{}, 1)
	s.fill = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.handoff(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
}

func queueQoS(s *Source, qos byte, n int) {
	msgs := make([]Message, n)
	acks := make([]ackRef, n)
	for i := range msgs {
		msgs[i] = Message{Topic: "sensors/a", Payload: []byte{byte('0' + i%10)}, QoS: qos}
	}
	s.enqueue(msgs, acks, nil)
}

// A batch of QoS 0 messages sleeps until its deadline (or until it can
// fill) instead of polling the queue: at 50k messages a second a wake-up
// every fillPoll cost a tenth of edged's CPU in scripts/bench/mqtt.sh. It
// is handed off the moment the queue fills it, and a QoS 1 message joining
// it brings its hand-off back to MaxBatchDelay.
func TestQoS0BatchSleepsUntilItFillsOrItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h collector
		cfg := testConfig("tcp://127.0.0.1:1", "fill", "sensors/#", 1)
		cfg.BatchSize, cfg.MaxInFlight = 100, 200
		cfg.MaxBatchDelay = 50 * time.Millisecond
		cfg.MaxBatchDelayQoS0 = time.Second
		s, err := New(cfg, &h)
		if err != nil {
			t.Fatal(err)
		}
		startHandoff(t, s)
		batches := func() (calls, msgs int) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.calls, len(h.msgs)
		}

		// A trickle waits for the deadline, waking once for it.
		queueQoS(s, 0, 10)
		synctest.Wait()
		start := time.Now()
		for i := 0; i < 20; i++ {
			time.Sleep(10 * time.Millisecond)
			queueQoS(s, 0, 1)
			synctest.Wait()
		}
		if c, _ := batches(); c != 0 {
			t.Fatalf("a QoS 0 batch of 30 was handed off after %v; want it to wait for its deadline", time.Since(start))
		}
		if w := s.fillWakes.Load(); w > 2 {
			t.Errorf("the hand-off woke %d times while 30 QoS 0 messages trickled in over 200ms; want at most 2 (no polling)", w)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if c, m := batches(); c != 1 || m != 30 {
			t.Fatalf("after the deadline: %d batches, %d messages; want 1, 30", c, m)
		}

		// A batch the queue fills goes at once.
		queueQoS(s, 0, 40)
		synctest.Wait()
		at := time.Now()
		queueQoS(s, 0, 60)
		synctest.Wait()
		if c, m := batches(); c != 2 || m != 130 {
			t.Fatalf("a full QoS 0 batch: %d batches, %d messages; want 2, 130 (handed off when full)", c, m)
		}
		if d := time.Since(at); d != 0 {
			t.Errorf("a full QoS 0 batch was handed off %v after it filled; want at once", d)
		}

		// A QoS 1 message shortens the wait to MaxBatchDelay.
		queueQoS(s, 0, 5)
		synctest.Wait()
		at = time.Now()
		queueQoS(s, 1, 1)
		time.Sleep(cfg.MaxBatchDelay)
		synctest.Wait()
		if c, m := batches(); c != 3 || m != 136 {
			t.Fatalf("QoS 0 then QoS 1: %d batches, %d messages %v after the QoS 1 one; want 3, 136", c, m, time.Since(at))
		}
	})
}
