package mqtt

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// clients are the Source's two MQTT clients: its own, and paho (kept for
// ws:// brokers and proxies); withPaho selects paho for every broker.
var clients = []struct {
	name string
	opts []Option
}{{"own", nil}, {"paho", []Option{withPaho()}}}

// withPaho makes the Source use paho for every broker.
func withPaho() Option { return func(s *Source) { s.paho = true } }

func TestSourceDeliversAndAcksQoS1(t *testing.T) {
	for _, c := range clients {
		for _, qos := range []byte{0, 1} {
			t.Run(fmt.Sprintf("%s/qos%d", c.name, qos), func(t *testing.T) { testDeliversAndAcks(t, qos, c.opts) })
		}
	}
}

func testDeliversAndAcks(t *testing.T, qos byte, opts []Option) {
	broker, _ := startBroker(t, BrokerConfig{})
	var h collector
	s, err := New(testConfig(broker, "src-deliver", "sensors/#", qos), &h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	const n = 500
	publish(t, broker, "sensors/a/temp", qos, 0, n)
	eventually(t, 10*time.Second, func() error {
		if got := len(h.snapshot()); got != n {
			return fmt.Errorf("got %d messages; want %d", got, n)
		}
		return nil
	})
	msgs := h.snapshot()
	if d := distinct(msgs); d != n {
		t.Errorf("got %d distinct payloads; want %d", d, n)
	}
	if m := msgs[0]; m.Topic != "sensors/a/temp" || m.QoS != qos || m.Received.IsZero() {
		t.Errorf("got message %+v; want topic sensors/a/temp, qos %d, Received set", m, qos)
	}
	wantAcked := uint64(0)
	if qos == 1 {
		wantAcked = n
	}
	eventually(t, 10*time.Second, func() error {
		st := s.Status()
		if st.Received != n || st.HandedOff != n || st.Acked != wantAcked || st.InFlight != 0 {
			return fmt.Errorf("got status %+v; want received=handed off=%d, acked=%d, in flight 0", st, n, wantAcked)
		}
		return nil
	})
}

// TestSourceNoAckBeforeHandlerSucceeds protects the core contract: while
// the handler fails, nothing is acknowledged and nothing is dropped; the
// same messages come back until it accepts them.
func TestSourceNoAckBeforeHandlerSucceeds(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{})
	release := make(chan struct{})
	h := collector{fail: func(call int) error {
		select {
		case <-release:
			return nil
		default:
			return fmt.Errorf("disk on fire (call %d)", call)
		}
	}}
	s, err := New(testConfig(broker, "src-fail", "sensors/#", 1), &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	const n = 200
	publish(t, broker, "sensors/x", 1, 0, n)
	eventually(t, 10*time.Second, func() error {
		st := s.Status()
		if !st.BackPressured || st.Received != n {
			return fmt.Errorf("got back-pressured=%v received=%d; want true, %d", st.BackPressured, st.Received, n)
		}
		return nil
	})
	if st := s.Status(); st.Acked != 0 || st.HandedOff != 0 || st.InFlight != n || st.LastError == "" {
		t.Fatalf("while failing: got %+v; want acked 0, handed off 0, in flight %d, last error set", st, n)
	}
	close(release)
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Acked != n || st.BackPressured {
			return fmt.Errorf("got acked=%d back-pressured=%v; want %d, false", st.Acked, st.BackPressured, n)
		}
		return nil
	})
	if d := distinct(h.snapshot()); d != n {
		t.Errorf("got %d distinct messages; want %d", d, n)
	}
}

// TestSourceUnackedAreRedeliveredWithDup: a Source that stops without the
// handler having accepted anything leaves every QoS 1 message with the
// broker, which redelivers them, flagged DUP, to the next Source of the same
// client id.
func TestSourceUnackedAreRedeliveredWithDup(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{})
	failing := collector{fail: func(int) error { return errors.New("no") }}
	cfg := testConfig(broker, "src-redeliver", "sensors/#", 1)
	cfg.DrainTimeout = 0
	s1, err := New(cfg, &failing)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runSource(t, s1)
	waitConnected(t, s1)
	const n = 100
	publish(t, broker, "sensors/x", 1, 0, n)
	eventually(t, 10*time.Second, func() error {
		if st := s1.Status(); st.Received != n {
			return fmt.Errorf("got received=%d; want %d", st.Received, n)
		}
		return nil
	})
	stop1()

	s2, dups := resumeSource(t, cfg, n, 10*time.Second)
	if dups != n {
		t.Errorf("got %d messages flagged Duplicate; want %d (all were sent before)", dups, n)
	}
	if st := s2.Status(); st.Redelivered != n {
		t.Errorf("got Status.Redelivered=%d; want %d", st.Redelivered, n)
	}
}

// TestSourceBackPressureBlocksWhenQueueFull: with a small queue and a
// handler that does not return, the Source holds MaxInFlight messages, the
// blocked batch and one blocked callback; paho stops reading the connection
// so the rest stays with the broker (memory stays bounded, for QoS 0 too),
// and nothing is lost once the handler returns.
func TestSourceBackPressureBlocksWhenQueueFull(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) { testBackPressure(t, c.opts) })
	}
}

func testBackPressure(t *testing.T, opts []Option) {
	broker, _ := startBroker(t, BrokerConfig{})
	h := collector{block: make(chan struct{})}
	cfg := testConfig(broker, "src-bp", "sensors/#", 1)
	cfg.MaxInFlight = 4
	cfg.BatchSize = 2
	s, err := New(cfg, &h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	const n = 50
	publish(t, broker, "sensors/x", 1, 0, n)
	// The blocked batch and the queued messages are MaxInFlight in all;
	// the reader waits for room.
	eventually(t, 10*time.Second, func() error {
		st := s.Status()
		if st.Waiting != 1 || st.Received != 4 || st.InFlight != 4 {
			return fmt.Errorf("got received=%d waiting=%d in flight=%d; want 4, 1, 4",
				st.Received, st.Waiting, st.InFlight)
		}
		return nil
	})
	close(h.block)
	eventually(t, 10*time.Second, func() error {
		if d := distinct(h.snapshot()); d != n {
			return fmt.Errorf("got %d distinct; want %d", d, n)
		}
		return nil
	})
}

func TestSourceFailsOverToNextBroker(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{})
	var h collector
	cfg := testConfig(broker, "src-failover", "sensors/#", 1)
	cfg.Brokers = []string{"tcp://127.0.0.1:1", broker} // port 1: refused
	s, err := New(cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	st := s.Status()
	if st.Broker != broker || st.LastError == "" {
		t.Errorf("got broker %q, last error %q; want %q and the refused connect", st.Broker, st.LastError, broker)
	}
}

func TestSourceUnreachableBrokerIsRetriedNotFatal(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1", "src-down", "sensors/#", 1)
	s, err := New(cfg, &collector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.LastError == "" {
			return errors.New("no error reported yet")
		}
		return nil
	})
	if err := s.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: got %v; want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v; want nil", err)
	}
	if st := s.Status(); st.State != Disconnected {
		t.Errorf("got state %v after Run; want disconnected", st.State)
	}
}

func TestSourceDrainsQueueOnStop(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{})
	h := collector{block: make(chan struct{})}
	cfg := testConfig(broker, "src-drain", "sensors/#", 1)
	cfg.DrainTimeout = 10 * time.Second
	s, err := New(cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	stop := runSource(t, s)
	waitConnected(t, s)
	const n = 20
	publish(t, broker, "sensors/x", 1, 0, n)
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Received != n {
			return fmt.Errorf("got received=%d; want %d", st.Received, n)
		}
		return nil
	})
	close(h.block)
	stop()
	if d := distinct(h.snapshot()); d != n {
		t.Errorf("got %d distinct delivered by stop; want %d", d, n)
	}
	if st := s.Status(); st.Acked != n {
		t.Errorf("got acked=%d; want %d", st.Acked, n)
	}
}

func TestBrokerRequiresPassword(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{Username: "u", Password: "p"})
	tests := []struct {
		name, user, pass string
		wantConnect      bool
	}{
		{"right password", "u", "p", true},
		{"wrong password", "u", "x", false},
		{"anonymous", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(broker, "auth-"+tc.name, "sensors/#", 1)
			cfg.Username, cfg.Password = tc.user, tc.pass
			s, err := New(cfg, &collector{})
			if err != nil {
				t.Fatal(err)
			}
			tok := s.clientOptions(broker, make(chan error, 1))
			c := newPahoClient(tok)
			err = s.connect(context.Background(), c)
			c.Disconnect(0)
			if got := err == nil; got != tc.wantConnect {
				t.Errorf("got connect err %v; want success=%v", err, tc.wantConnect)
			}
		})
	}
}

// resumeSource starts a second Source on cfg (the same persistent session),
// waits until it has received n distinct messages and returns it with the
// number of messages it saw flagged Duplicate.
func resumeSource(t *testing.T, cfg Config, n int, timeout time.Duration) (*Source, int) {
	t.Helper()
	var h collector
	s, err := New(cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	eventually(t, timeout, func() error {
		if d := distinct(h.snapshot()); d != n {
			return fmt.Errorf("got %d distinct; want %d", d, n)
		}
		return nil
	})
	dups := 0
	for _, m := range h.snapshot() {
		if m.Duplicate {
			dups++
		}
	}
	return s, dups
}

// TestSourceQoS0BatchesWaitLonger: a batch of QoS 0 messages only waits
// MaxBatchDelayQoS0 (here an hour) for more messages, saving log commits; a
// QoS 1 message joining it brings the hand-off back to MaxBatchDelay, so all
// of them arrive in one batch, promptly.
func TestSourceQoS0BatchesWaitLonger(t *testing.T) {
	broker, _ := startBroker(t, BrokerConfig{})
	var h collector
	cfg := testConfig(broker, "src-qos0-delay", "sensors/#", 1)
	cfg.MaxBatchDelay = time.Millisecond
	cfg.MaxBatchDelayQoS0 = time.Hour
	s, err := New(cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	// Two publishers one after the other: far longer than MaxBatchDelay
	// between the first QoS 0 message and the QoS 1 one.
	publish(t, broker, "sensors/zero", 0, 0, 3)
	publish(t, broker, "sensors/zero", 0, 3, 1)
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Received != 4 {
			return fmt.Errorf("received %d; want 4", st.Received)
		}
		return nil
	})
	publish(t, broker, "sensors/one", 1, 4, 1)
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.HandedOff != 5 {
			return fmt.Errorf("handed off %d; want 5", st.HandedOff)
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls != 1 {
		t.Errorf("HandleBatch calls: %d; want 1 (the QoS 0 messages waited for the QoS 1 one)", h.calls)
	}
}

// A batch of QoS 0 messages is handed off just before the next whole
// multiple of its delay (where pipelines cut their epochs), never later
// than the delay after its first message.
func TestQoS0DeadlineEndsBeforeTheBoundary(t *testing.T) {
	for _, c := range []struct {
		start, delay, want int64 // milliseconds
	}{
		{1_700_000_000_100, 1000, 1_700_000_000_950},
		{1_700_000_000_000, 1000, 1_700_000_000_950},
		{1_700_000_000_960, 1000, 1_700_000_001_950}, // past this boundary's margin: the next
		{1_700_000_000_100, 250, 1_700_000_000_238},
		{1_700_000_000_100, 10, 1_700_000_000_110}, // too short to align
	} {
		got := qos0Deadline(time.UnixMilli(c.start), time.Duration(c.delay)*time.Millisecond).UnixMilli()
		if got != c.want {
			t.Errorf("start %d, delay %dms: deadline %d; want %d", c.start, c.delay, got, c.want)
		}
		if got > c.start+c.delay {
			t.Errorf("start %d, delay %dms: deadline %d is later than the delay", c.start, c.delay, got)
		}
	}
}
