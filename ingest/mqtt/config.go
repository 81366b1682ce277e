package mqtt

import (
	"errors"
	"fmt"
	"github.com/edgedio/edged/internal/topic"
	"net/url"
	"time"
)

// Config configures a Source. The YAML keys are given in the field tags; the
// daemon nests this struct under the key "mqtt", which Validate uses in its
// messages. Validate never modifies the Config.
type Config struct {
	// Brokers is the failover list of broker URLs, tried in order: the Source
	// connects to the first that answers and, when that connection is lost,
	// starts again from the next one. Schemes: tcp:// (or mqtt://), ssl://
	// (or tls://, mqtts://), ws://, wss://. Required: an empty list is an
	// error.
	Brokers []string `yaml:"brokers"`

	// ClientID is the MQTT client identifier. The broker keys the persistent
	// session (subscriptions and queued QoS 1 messages) on it, so it must be
	// stable across restarts and unique among the broker's clients. Required.
	ClientID string `yaml:"client_id"`

	// Username and Password authenticate to the broker. Empty Username means
	// no authentication; a Password without a Username is an error.
	Username string `yaml:"username"`
	Password string `yaml:"password"`

	// TLS configures ssl:// and wss:// connections. The zero value verifies
	// the broker against the system roots and presents no client certificate.
	TLS TLSConfig `yaml:"tls"`

	// Subscriptions are the topic filters to subscribe to, on every connect.
	// At least one is required.
	Subscriptions []Subscription `yaml:"subscriptions"`

	// CleanSession asks the broker to discard the session on connect and
	// disconnect. It must be false (the default) when any subscription uses
	// QoS 1: the persistent session is what keeps unacknowledged and queued
	// messages for redelivery.
	CleanSession bool `yaml:"clean_session"`

	// KeepAlive is the MQTT keepalive interval; zero disables keepalive
	// pings (not recommended: a dead connection is then only noticed by TCP).
	KeepAlive time.Duration `yaml:"keepalive"`

	// ConnectTimeout bounds one connection attempt (dial, TLS, CONNECT,
	// CONNACK, SUBSCRIBE). Must be positive.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`

	// ReconnectBackoffMin and ReconnectBackoffMax bound the exponential
	// backoff between connection attempts; each wait is drawn uniformly from
	// [d/2, d] (jitter) where d doubles from Min up to Max. Min must be
	// positive and Max at least Min.
	ReconnectBackoffMin time.Duration `yaml:"reconnect_backoff_min"`
	ReconnectBackoffMax time.Duration `yaml:"reconnect_backoff_max"`

	// RetryBackoffMin and RetryBackoffMax bound the backoff between attempts
	// to hand a batch to a Handler that returned an error. Same rules as the
	// reconnect backoff.
	RetryBackoffMin time.Duration `yaml:"retry_backoff_min"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`

	// MaxInFlight is the capacity, in messages, of the queue between the
	// MQTT client and the Handler: messages received and not yet handed
	// off. When it is full the Source stops taking messages from the client
	// (see "Back-pressure" in the package doc). Must be at least BatchSize.
	MaxInFlight int `yaml:"max_in_flight"`

	// BatchSize is the largest number of messages handed to the Handler in
	// one call. Must be at least 1.
	BatchSize int `yaml:"batch_size"`

	// MaxBatchDelay is how long the Source waits, after the first message of
	// a batch arrived, for the batch to fill before handing it off anyway.
	// Zero hands off whatever is queued at once (lowest latency, smallest
	// batches, more fsyncs in the log). A batch with QoS 1 messages that
	// stops growing (no message for ten times its mean gap, at least 4 ms:
	// the broker waits for acknowledgements of its in-flight window) is
	// handed off before the delay, so the delay bounds commits per second at
	// low rates without capping throughput at window/delay.
	MaxBatchDelay time.Duration `yaml:"max_batch_delay"`

	// MaxBatchDelayQoS0 replaces MaxBatchDelay for a batch of QoS 0 messages
	// only: nothing waits for their acknowledgement, so they can wait longer
	// for a bigger group commit, which is what bounds flash wear at low
	// rates (a commit writes a few 4 KiB pages however few messages it
	// carries). A QoS 1 message joining the batch brings the deadline back
	// to MaxBatchDelay. Zero means MaxBatchDelay. QoS 0 messages waiting in
	// a batch are lost on a crash, as QoS 0 allows.
	MaxBatchDelayQoS0 time.Duration `yaml:"max_batch_delay_qos0"`

	// MaxPacketSize is the largest packet, in bytes, accepted from a broker
	// by the Source's own client (tcp:// and ssl:// brokers): a larger one
	// is a connection error, logged and shown in Status, and the Source
	// reconnects (a QoS 1 message that large then comes back and blocks the
	// session: raise the limit). The read buffer grows only with the bytes
	// that actually arrive. Must be at least 1024; MQTT allows up to
	// 268435455.
	MaxPacketSize int `yaml:"max_packet_size"`

	// DrainTimeout bounds how long Run, once its context ends, keeps handing
	// off and acknowledging the messages already queued before it
	// disconnects. Zero disconnects at once: queued QoS 1 messages are then
	// redelivered by the broker on the next start, queued QoS 0 messages are
	// lost.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Subscription is one topic filter.
type Subscription struct {
	// Topic is an MQTT topic filter: levels separated by '/', '+' matching
	// one level, '#' (last level only) matching any number of levels. A
	// "$share/GROUP/filter" prefix makes it a shared subscription: the broker
	// hands each message to one member of GROUP (MQTT 5, and mosquitto ≥ 1.6
	// for 3.1.1 clients).
	Topic string `yaml:"topic"`
	// QoS is 0 (at most once) or 1 (at least once). QoS 2 is refused: the
	// input log's dedup already gives what QoS 2 would, at lower cost.
	QoS byte `yaml:"qos"`
}

// DefaultConfig returns a Config for a broker on the local host.
func DefaultConfig() Config {
	return Config{
		Brokers:  []string{"tcp://127.0.0.1:1883"}, // the embedded broker's default address
		ClientID: "edged",                          // stable: the persistent session is keyed on it
		Subscriptions: []Subscription{
			{Topic: "sensors/#", QoS: 1}, // everything under sensors/, at least once
		},
		CleanSession:        false,                  // persistent session for QoS 1
		KeepAlive:           30 * time.Second,       // a dead link is noticed within ~1.5x this
		ConnectTimeout:      10 * time.Second,       // slow links and TLS handshakes on a Pi
		ReconnectBackoffMin: 100 * time.Millisecond, // first retry is quick (broker restart)
		ReconnectBackoffMax: 30 * time.Second,       // long outages cost one attempt per ~30 s
		RetryBackoffMin:     50 * time.Millisecond,  // a transient log error clears fast
		RetryBackoffMax:     5 * time.Second,        // quota waits poll every 5 s at most
		MaxInFlight:         16384,                  // ~2-3 MB of typical sensor payloads
		BatchSize:           8192,                   // one group commit per 8192 messages at most
		MaxBatchDelay:       250 * time.Millisecond, // ~4 log commits/s at low rates; a stalled flow hands off sooner
		MaxBatchDelayQoS0:   time.Second,            // one epoch interval: one log commit per second at low rates
		MaxPacketSize:       16 << 20,               // far above sensor readings; bounds what one packet can cost
		DrainTimeout:        5 * time.Second,        // systemd's stop timeout is far larger
	}
}

// Validate reports every problem of the Config at once (errors.Join), each
// naming its YAML key under "mqtt.".
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("mqtt.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker URL is required")
	}
	for i, b := range c.Brokers {
		if err := validateBrokerURL(b); err != nil {
			bad(fmt.Sprintf("brokers[%d]", i), "%v", err)
		}
	}
	if c.ClientID == "" {
		bad("client_id", "required (the persistent session is keyed on it)")
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without mqtt.username")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "certFile and keyFile must be set together")
	}
	if len(c.Subscriptions) == 0 {
		bad("subscriptions", "at least one subscription is required")
	}
	anyQoS1 := false
	for i, s := range c.Subscriptions {
		key := fmt.Sprintf("subscriptions[%d]", i)
		if err := topic.ValidateFilter(s.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		switch s.QoS {
		case 0:
		case 1:
			anyQoS1 = true
		case 2:
			bad(key+".qos", "QoS 2 is not supported; use 1 (the input log drops redelivered copies)")
		default:
			bad(key+".qos", "must be 0 or 1, got %d", s.QoS)
		}
	}
	if c.CleanSession && anyQoS1 {
		bad("clean_session", "must be false when a subscription uses QoS 1: a clean session discards unacknowledged messages")
	}
	if c.KeepAlive < 0 {
		bad("keepalive", "must not be negative, got %v", c.KeepAlive)
	} else if c.KeepAlive > 0 && c.KeepAlive < time.Second {
		bad("keepalive", "must be zero or at least 1s (MQTT counts it in seconds), got %v", c.KeepAlive)
	}
	if c.ConnectTimeout <= 0 {
		bad("connect_timeout", "must be positive, got %v", c.ConnectTimeout)
	}
	checkBackoff := func(prefix string, lo, hi time.Duration) {
		if lo <= 0 {
			bad(prefix+"_min", "must be positive, got %v", lo)
		}
		if hi < lo {
			bad(prefix+"_max", "must be at least %s_min (%v), got %v", prefix, lo, hi)
		}
	}
	checkBackoff("reconnect_backoff", c.ReconnectBackoffMin, c.ReconnectBackoffMax)
	checkBackoff("retry_backoff", c.RetryBackoffMin, c.RetryBackoffMax)
	if c.BatchSize < 1 {
		bad("batch_size", "must be at least 1, got %d", c.BatchSize)
	}
	if c.MaxInFlight < c.BatchSize || c.MaxInFlight < 1 {
		bad("max_in_flight", "must be at least batch_size (%d), got %d", c.BatchSize, c.MaxInFlight)
	}
	if c.MaxBatchDelayQoS0 < 0 {
		bad("max_batch_delay_qos0", "must not be negative, got %v", c.MaxBatchDelayQoS0)
	}
	if c.MaxBatchDelay < 0 {
		bad("max_batch_delay", "must not be negative, got %v", c.MaxBatchDelay)
	}
	if c.MaxPacketSize < 1024 || c.MaxPacketSize > 268435455 {
		bad("max_packet_size", "must be between 1024 and 268435455 bytes, got %d", c.MaxPacketSize)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout", "must not be negative, got %v", c.DrainTimeout)
	}
	return errors.Join(errs...)
}

func validateBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", s, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	case "":
		return fmt.Errorf("%q has no scheme; want tcp://, ssl://, ws:// or wss://", s)
	default:
		return fmt.Errorf("%q: unsupported scheme %q; want tcp://, ssl://, ws:// or wss://", s, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}
