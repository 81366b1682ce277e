package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/edgedio/edged/ingest/mqtt"
	"log/slog"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// publisherConfig is what the mqtt sinks' client connects with.
type publisherConfig struct {
	brokers            []string
	clientID           string
	username, password string
	tls                mqtt.TLSConfig
	insecure           bool
	keepAlive          time.Duration
}

func (n *Node) publisherConfig() publisherConfig {
	mc := n.cfg.MQTT
	return publisherConfig{brokers: n.mq.brokers, clientID: n.cfg.clientID() + "-pub",
		username: mc.Username, password: mc.Password, tls: mc.TLS, insecure: n.mq.tlsInsec,
		keepAlive: max(mc.KeepAlive, 30*time.Second)}
}

// pahoPublisher is the Publisher of mqtt sinks: one paho client, connected
// on first use, reconnecting by itself (failover over the broker list). A
// publish that fails (not connected, no PUBACK before ctx ends) is an error:
// the output stays in the spool and the sink retries it, so outputs reach
// the broker at least once; each carries its deterministic "_id" for
// consumers to drop copies.
type pahoPublisher struct {
	cfg publisherConfig
	log *slog.Logger

	mu     sync.Mutex
	client paho.Client
	closed bool
}

func newPahoPublisher(cfg publisherConfig, log *slog.Logger) *pahoPublisher {
	return &pahoPublisher{cfg: cfg, log: log}
}

func (p *pahoPublisher) connect() (paho.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("mqtt publisher: closed")
	}
	if p.client != nil {
		return p.client, nil
	}
	o := paho.NewClientOptions().
		SetClientID(p.cfg.clientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(p.cfg.keepAlive).
		SetOrderMatters(false).
		SetWriteTimeout(10 * time.Second)
	for _, b := range p.cfg.brokers {
		o.AddBroker(b)
	}
	if p.cfg.username != "" {
		o.SetUsername(p.cfg.username).SetPassword(p.cfg.password)
	}
	t, err := p.tlsConfig()
	if err != nil {
		return nil, err
	}
	o.SetTLSConfig(t)
	c := paho.NewClient(o)
	c.Connect() // ConnectRetry: keeps trying in the background
	p.client = c
	return c, nil
}

// Publish implements Publisher: at QoS 1 it returns once the broker
// acknowledged the message.
func (p *pahoPublisher) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	c, err := p.connect()
	if err != nil {
		return err
	}
	if !c.IsConnectionOpen() {
		return fmt.Errorf("mqtt publisher: not connected to %s", strings.Join(p.cfg.brokers, ", "))
	}
	tok := c.Publish(topic, qos, retain, bytes.Clone(payload))
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt publish %q: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("mqtt publish %q: no acknowledgement within 30s", topic)
	}
}

// Close disconnects the client.
func (p *pahoPublisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.client != nil {
		p.client.Disconnect(250)
		p.client = nil
	}
}

// tlsConfig loads the client TLS files (verification off only for our own
// embedded broker, which listens with the certificate of the LAN name).
func (p *pahoPublisher) tlsConfig() (*tls.Config, error) {
	c := p.cfg.tls
	c.InsecureSkipVerify = c.InsecureSkipVerify || p.cfg.insecure
	return c.Load()
}
