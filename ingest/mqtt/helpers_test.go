package mqtt

import (
	"context"
	"fmt"
	"github.com/edgedio/edged/internal/testkit"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// eventually polls until fn returns nil (see testkit.Eventually).
var eventually = testkit.Eventually

// startBroker runs an embedded broker on a free loopback port until the
// test ends and returns its tcp:// URL.
func startBroker(t testing.TB, cfg BrokerConfig) (string, *Broker) {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	b, err := NewBroker(cfg)
	if err != nil {
		t.Fatalf("NewBroker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker Run: %v", err)
		}
	})
	return "tcp://" + b.Addr(), b
}

// testConfig is a Config for one broker with fast timings.
func testConfig(broker, clientID string, filter string, qos byte) Config {
	c := DefaultConfig()
	c.Brokers = []string{broker}
	c.ClientID = clientID
	c.Subscriptions = []Subscription{{Topic: filter, QoS: qos}}
	c.ReconnectBackoffMin = 10 * time.Millisecond
	c.ReconnectBackoffMax = 200 * time.Millisecond
	c.RetryBackoffMin = 5 * time.Millisecond
	c.RetryBackoffMax = 50 * time.Millisecond
	c.ConnectTimeout = 5 * time.Second
	c.MaxBatchDelay = 5 * time.Millisecond
	return c
}

// runSource runs s until the returned stop function is called (or the test
// ends); stop waits for Run to return and checks it returned nil.
func runSource(t testing.TB, s *Source) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v; want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitConnected(t testing.TB, s *Source) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.State != Connected {
			return fmt.Errorf("state %v, last error %q", st.State, st.LastError)
		}
		return nil
	})
}

// publish sends n messages "topic" with payloads "0".."n-1" at qos.
func publish(t testing.TB, broker, topic string, qos byte, from, n int) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).SetCleanSession(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	toks := make([]paho.Token, 0, n)
	for i := from; i < from+n; i++ {
		toks = append(toks, c.Publish(topic, qos, false, []byte(fmt.Sprint(i))))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// collector is a Handler that records what it accepted.
type collector struct {
	mu    sync.Mutex
	msgs  []Message
	calls int
	fail  func(call int) error // nil: accept every batch
	block chan struct{}        // when non-nil, HandleBatch waits on it
}

func (c *collector) HandleBatch(ctx context.Context, msgs []Message) error {
	if c.block != nil {
		select {
		case <-c.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.fail != nil {
		if err := c.fail(c.calls); err != nil {
			return err
		}
	}
	c.msgs = append(c.msgs, msgs...)
	return nil
}

func (c *collector) snapshot() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// distinct counts distinct payloads.
func distinct(msgs []Message) int {
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[string(m.Payload)] = true
	}
	return len(seen)
}

func newPahoClient(o *paho.ClientOptions) paho.Client { return paho.NewClient(o) }

// withDial sets the Source's TCP dial.
func withDial(dial func(ctx context.Context, addr string) (net.Conn, error)) Option {
	return func(s *Source) { s.dialTCP = dial }
}
