package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers is the failover list the client connects to.
	Brokers []string
	// ClientID must differ from the Source's (the broker keeps one session
	// per id).
	ClientID           string
	Username, Password string
	// TLS holds the client TLS files (the Source's loader).
	TLS TLSConfig
	// KeepAlive is the MQTT keepalive; zero means 30s.
	KeepAlive time.Duration
	// AckTimeout bounds the wait for a QoS 1 acknowledgement; zero means 30s.
	AckTimeout time.Duration
}

// Publisher is edged's MQTT client for outputs (mqtt sinks): one paho
// client, connected on first use, reconnecting by itself over the broker
// list. A publish that fails (not connected, no acknowledgement in time) is
// an error: the caller keeps the output and retries, so outputs reach the
// broker at least once. Safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu     sync.Mutex
	client paho.Client
	closed bool
}

// NewPublisher returns a Publisher for cfg; log nil discards.
func NewPublisher(cfg PublisherConfig, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	return &Publisher{cfg: cfg, log: log}
}

func (p *Publisher) connect() (paho.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("mqtt publisher: closed")
	}
	if p.client != nil {
		return p.client, nil
	}
	o := paho.NewClientOptions().
		SetClientID(p.cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(p.cfg.KeepAlive).
		SetOrderMatters(false).
		SetWriteTimeout(10 * time.Second)
	for _, b := range p.cfg.Brokers {
		o.AddBroker(b)
	}
	if p.cfg.Username != "" {
		o.SetUsername(p.cfg.Username).SetPassword(p.cfg.Password)
	}
	t, err := p.cfg.TLS.Load()
	if err != nil {
		return nil, err
	}
	o.SetTLSConfig(t)
	if f := openConnFunc(p.cfg.Brokers, true); f != nil {
		o.SetCustomOpenConnectionFn(f)
	}
	c := paho.NewClient(o)
	c.Connect() // ConnectRetry: keeps trying in the background
	p.client = c
	return c, nil
}

// Publish publishes one message; at QoS 1 it returns once the broker
// acknowledged it. It does not retain payload.
func (p *Publisher) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return p.PublishBatch(ctx, []string{topic}, [][]byte{payload}, qos, retain)
}

// PublishBatch publishes payloads[i] to topics[i], all of them in flight at
// once, and returns once every one is acknowledged (QoS 1) or written
// (QoS 0): a batch of outputs costs one round trip, not one per output. On
// error some may have been delivered; the caller retries all of them, and
// consumers drop copies by the outputs' ids. It does not retain payloads.
func (p *Publisher) PublishBatch(ctx context.Context, topics []string, payloads [][]byte, qos byte, retain bool) error {
	c, err := p.connect()
	if err != nil {
		return err
	}
	if !c.IsConnectionOpen() {
		return fmt.Errorf("mqtt publisher: not connected to %s", strings.Join(p.cfg.Brokers, ", "))
	}
	toks := make([]paho.Token, len(topics))
	for i := range topics {
		toks[i] = c.Publish(topics[i], qos, retain, bytes.Clone(payloads[i]))
	}
	t := time.NewTimer(p.cfg.AckTimeout)
	defer t.Stop()
	for i, tok := range toks {
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("mqtt publish %q: %w", topics[i], err)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("mqtt publish %q: no acknowledgement within %v", topics[i], p.cfg.AckTimeout)
		}
	}
	return nil
}

// Close disconnects the client; later publishes fail.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.client != nil {
		p.client.Disconnect(250)
		p.client = nil
	}
}
