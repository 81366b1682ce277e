package mqtt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerConfig configures the embedded broker. The daemon nests it under
// the YAML key "broker".
type BrokerConfig struct {
	// Address is the TCP listen address. Empty means ":1883": every
	// interface, the MQTT port, so any host on the LAN can connect (and, with
	// no Username, publish and subscribe to anything). Use "127.0.0.1:1883"
	// to accept local publishers only; tests use "127.0.0.1:0".
	Address string `yaml:"address"`

	// Username and Password, when Username is set, are required of every
	// client. Empty Username allows anonymous clients.
	Username string `yaml:"username"`
	Password string `yaml:"password"`

	// TLS, when CertFile is set, makes the listener TLS-only.
	TLS BrokerTLSConfig `yaml:"tls"`

	// Limits bound what clients may use of the broker.
	Limits BrokerLimits `yaml:",inline"`

	// Handler, when set, makes the broker acknowledge a QoS 1 (or 2)
	// PUBLISH only after the Handler accepted it (see "Durable
	// acknowledgement" in the package doc): messages of all clients are
	// handed to it in batches, and delivered to the broker's subscribers
	// once accepted. Nil means a plain broker that acknowledges on arrival.
	Handler Handler `yaml:"-"`

	// BatchSize, MaxBatchDelay and MaxBatchDelayQoS0 shape the Handler's
	// batches as the Source's fields of the same names do (Config). Zero
	// BatchSize means 8192; zero MaxBatchDelay hands off what is queued at
	// once; zero MaxBatchDelayQoS0 means MaxBatchDelay.
	BatchSize         int           `yaml:"-"`
	MaxBatchDelay     time.Duration `yaml:"-"`
	MaxBatchDelayQoS0 time.Duration `yaml:"-"`

	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultBrokerConfig returns the embedded broker's defaults.
func DefaultBrokerConfig() BrokerConfig {
	return BrokerConfig{
		Address: ":1883",               // all interfaces: sensors on the LAN publish to the gateway
		Limits:  DefaultBrokerLimits(), // see BrokerLimits
	}
}

// Validate reports every problem at once, naming the YAML key under
// "broker.".
func (c *BrokerConfig) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("broker.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Address != "" {
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			bad("address", "want host:port, got %q: %v", c.Address, err)
		}
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without broker.username")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "certFile and keyFile must be set together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		bad("tls.clientCAFile", "needs tls.certFile and tls.keyFile")
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 0 {
		bad("batch_size", "must not be negative, got %d", c.BatchSize)
	}
	if c.MaxBatchDelay < 0 || c.MaxBatchDelayQoS0 < 0 {
		bad("max_batch_delay", "must not be negative")
	}
	return errors.Join(errs...)
}

// Broker is an embedded MQTT broker (mochi-mqtt), so that a gateway with no
// broker configured still accepts sensor data. It supports MQTT 3.1.1 and 5,
// persistent sessions and shared subscriptions; it keeps sessions in memory
// only, so its queued messages do not survive a restart of the process.
type Broker struct {
	srv    *mochi.Server
	tcp    *listeners.TCP
	ran    atomic.Bool
	addr   string
	limits *limitsHook
	hand   *handoff // nil without a Handler
}

// NewBroker validates cfg and binds the listen address (so Addr is known
// before Run).
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	cfg.Limits.apply(caps)
	caps.MaximumMessageExpiryInterval = 0 // never expire queued messages
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := mochi.New(&mochi.Options{Capabilities: caps, Logger: log, InlineClient: false})
	var hook mochi.Hook = &allowHook{}
	if cfg.Username != "" {
		hook = &passwordHook{user: []byte(cfg.Username), pass: []byte(cfg.Password)}
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("broker: auth hook: %w", err)
	}
	b := &Broker{srv: srv, limits: &limitsHook{maxClients: caps.MaximumClients}}
	b.limits.srv.Store(srv)
	if err := srv.AddHook(b.limits, nil); err != nil {
		return nil, fmt.Errorf("broker: limits hook: %w", err)
	}
	if cfg.Handler != nil {
		b.hand = newHandoff(srv, cfg, log)
		if err := srv.AddHook(b.hand, nil); err != nil {
			return nil, fmt.Errorf("broker: hand-off hook: %w", err)
		}
	}
	lc := listeners.Config{Type: listeners.TypeTCP, ID: "edged-tcp", Address: cfg.Address}
	if lc.Address == "" {
		lc.Address = ":1883"
	}
	if cfg.TLS.CertFile != "" {
		t, err := cfg.TLS.Load()
		if err != nil {
			return nil, err
		}
		lc.TLSConfig = t
	}
	b.tcp = listeners.NewTCP(lc)
	if err := srv.AddListener(b.tcp); err != nil {
		return nil, fmt.Errorf("broker.address: listen %s: %w", lc.Address, err)
	}
	b.addr = b.tcp.Address()
	return b, nil
}

// Addr returns the bound listen address, e.g. "127.0.0.1:41234".
func (b *Broker) Addr() string { return b.addr }

// Dropped returns how many messages the broker dropped because a client's
// queue (MaxQueuedPerClient) or write queue (MaxPendingWrites) was full.
func (b *Broker) Dropped() int64 {
	return atomic.LoadInt64(&b.srv.Info.InflightDropped) + atomic.LoadInt64(&b.srv.Info.MessagesDropped)
}

// Stats returns the broker's limit counters and hand-off counters. Safe for
// concurrent use.
func (b *Broker) Stats() BrokerStats {
	st := BrokerStats{
		Clients:          atomic.LoadInt64(&b.srv.Info.ClientsConnected),
		RefusedClients:   b.limits.refused.Load(),
		OversizedPackets: b.limits.oversized.Load(),
		ExpiredSessions:  b.limits.expiredSession.Load(),
		Dropped:          b.Dropped(),
	}
	if b.hand != nil {
		st.Handoff = b.hand.stats()
	}
	return st
}

// Run serves until ctx ends, then closes the listener and all client
// connections and returns nil. With a Handler, it also runs the hand-off;
// messages not yet accepted by the Handler when ctx ends are not
// acknowledged (QoS 1/2 publishers resend them after reconnecting; QoS 0
// ones are lost). A Broker runs once; it cannot be restarted.
func (b *Broker) Run(ctx context.Context) error {
	if !b.ran.CompareAndSwap(false, true) {
		return errors.New("broker: Run called twice")
	}
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	done := make(chan struct{})
	if b.hand != nil {
		go func() {
			defer close(done)
			b.hand.run(hctx)
		}()
	} else {
		close(done)
	}
	stop := func() {
		hcancel()
		<-done
		if b.hand != nil {
			close(b.hand.stopped) // hooks waiting for the batcher give up
		}
	}
	if err := b.srv.Serve(); err != nil {
		stop()
		_ = b.close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	<-ctx.Done()
	stop()
	if err := b.close(); err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}

// close stops the listeners, disconnects their clients and stops the
// server. The listeners are closed here, with a closer of our own, before
// mochi's Close: mochi's closer lists a listener's clients under the
// clients' read lock and, inside it, takes that read lock again
// (Clients.GetByListener calls Len), so a client connecting or
// disconnecting at that moment (waiting for the write lock) deadlocks the
// shutdown for good. A listener runs its closer once: mochi's Close then
// only stops what is left.
func (b *Broker) close() error {
	b.srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return b.srv.Close()
}

type allowHook struct{ mochi.HookBase }

func (h *allowHook) ID() string { return "edged-allow" }
func (h *allowHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (h *allowHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *allowHook) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

type passwordHook struct {
	mochi.HookBase
	user, pass []byte
}

func (h *passwordHook) ID() string { return "edged-password" }
func (h *passwordHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}
func (h *passwordHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	u := subtle.ConstantTimeCompare(pk.Connect.Username, h.user)
	p := subtle.ConstantTimeCompare(pk.Connect.Password, h.pass)
	return u&p == 1
}

// OnACLCheck allows authenticated clients everything.
func (h *passwordHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }
