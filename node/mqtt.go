package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgedio/edged/internal/topic"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgedio/edged/ingest/mqtt"
	"github.com/edgedio/edged/storage"
)

// mqttState is the node's MQTT side: the embedded broker (when no brokers
// are configured), the Source feeding Ingest (restarted when the union of
// the pipelines' subscriptions changes) and the publisher of mqtt sinks.
type mqttState struct {
	brokers  []string // what the Source and publisher connect to
	tlsInsec bool     // connecting to our own embedded TLS listener
	broker   *mqtt.Broker
	brokErr  string // the embedded broker could not start
	// serve opens the embedded broker to clients (closed by runMQTT, once
	// the pipelines run: a message acknowledged before they are loaded
	// could not be routed to their logs).
	serve     chan struct{}
	serveOnce sync.Once

	changed chan struct{} // subscriptions may have changed

	mu      sync.Mutex
	src     *mqtt.Source
	subs    []mqtt.Subscription
	base    mqtt.Status // counters of Sources that ran before src
	handler []Message   // the handler's reused message slice
}

// mqttEnabled reports whether MQTT is configured at all.
func (c Config) mqttEnabled() bool { return len(c.MQTT.Brokers) > 0 || c.MQTT.Listen != "" }

// clientID returns the configured MQTT client id or "edged-" + host name.
func (c Config) clientID() string {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "gateway"
	}
	return "edged-" + h
}

// startMQTT binds the embedded broker when no brokers are configured. A
// listener that cannot be opened is fatal: Run returns one line naming
// mqtt.listen (a gateway with a broker of its own sets mqtt.brokers, or
// mqtt.listen to "" to turn the embedded broker off).
func (n *Node) startMQTT(ctx context.Context, wg *sync.WaitGroup) error {
	m := &mqttState{changed: make(chan struct{}, 1), brokers: n.cfg.MQTT.Brokers}
	n.mq = m
	if len(m.brokers) == 0 {
		bc := mqtt.DefaultBrokerConfig()
		bc.Address = n.cfg.MQTT.Listen
		bc.Username, bc.Password = n.cfg.MQTT.Username, n.cfg.MQTT.Password
		bc.TLS = n.cfg.MQTT.ListenTLS
		bc.Logger = n.log.With("component", "mqtt-broker")
		bc.Limits = n.cfg.MQTT.Broker
		// QoS 1 is acknowledged only once in the input log: the broker hands
		// every client's messages to Ingest in shared group commits.
		bc.Handler = mqtt.HandlerFunc(n.handleBroker)
		sc := n.sourceConfig(nil)
		bc.BatchSize, bc.MaxBatchDelay, bc.MaxBatchDelayQoS0 = sc.BatchSize, sc.MaxBatchDelay, sc.MaxBatchDelayQoS0
		b, err := mqtt.NewBroker(bc)
		if err != nil {
			m.brokErr = err.Error()
			return fmt.Errorf("mqtt.listen %q: the embedded MQTT broker cannot listen: %w (another broker on that port? list it under mqtt.brokers, or set mqtt.listen)", n.cfg.MQTT.Listen, err)
		} else {
			m.broker = b
			scheme := "tcp"
			if bc.TLS.CertFile != "" {
				scheme, m.tlsInsec = "ssl", true
			}
			// Only the mqtt sinks' publisher connects over loopback.
			m.brokers = []string{scheme + "://" + loopbackAddr(b.Addr())}
			m.serve = make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-m.serve:
				case <-ctx.Done(): // Run then closes the bound listener at once
				}
				if err := b.Run(ctx); err != nil {
					n.log.Error("embedded MQTT broker", "err", err)
				}
			}()
			n.log.Info("embedded MQTT broker listening", "addr", b.Addr(),
				"auth", bc.Username != "", "tls", bc.TLS.CertFile != "")
		}
	}
	if len(m.brokers) > 0 {
		n.pubImpl = mqtt.NewPublisher(n.publisherConfig(), n.log)
		if n.pub == nil {
			n.pub = n.pubImpl
		}
	}
	return nil
}

// loopbackAddr turns a bound listen address into one to dial locally.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// sourceConfig returns the ingest/mqtt Config for subs.
func (n *Node) sourceConfig(subs []mqtt.Subscription) mqtt.Config {
	mc := n.cfg.MQTT
	c := mqtt.DefaultConfig()
	c.Brokers = n.mq.brokers
	c.ClientID = n.cfg.clientID()
	c.Username, c.Password = mc.Username, mc.Password
	c.TLS = mc.TLS
	c.TLS.InsecureSkipVerify = mc.TLS.InsecureSkipVerify || n.mq.tlsInsec
	c.Subscriptions = subs
	if mc.KeepAlive > 0 {
		c.KeepAlive = mc.KeepAlive
	}
	if mc.BatchSize > 0 {
		c.BatchSize = mc.BatchSize
	}
	if mc.MaxInFlight > 0 {
		c.MaxInFlight = mc.MaxInFlight
	}
	c.MaxInFlight = max(c.MaxInFlight, c.BatchSize)
	if mc.MaxBatchDelayQoS0 > 0 {
		c.MaxBatchDelayQoS0 = mc.MaxBatchDelayQoS0
	}
	if mc.MaxBatchDelay > 0 {
		c.MaxBatchDelay = mc.MaxBatchDelay
	}
	c.ReconnectBackoffMin = 50 * time.Millisecond
	c.ReconnectBackoffMax = 10 * time.Second
	return c
}

// subscriptions returns the union of the topic filters of every loaded
// pipeline's sources, each at the highest QoS asked for it, sorted.
func (n *Node) subscriptions() []mqtt.Subscription {
	qos := map[string]byte{}
	n.mu.RLock()
	for _, p := range n.pipes {
		for _, s := range p.sources {
			for _, f := range s.subs {
				if q, ok := qos[f]; !ok || s.qos > q {
					qos[f] = s.qos
				}
			}
		}
	}
	n.mu.RUnlock()
	out := make([]mqtt.Subscription, 0, len(qos))
	for f, q := range qos {
		out = append(out, mqtt.Subscription{Topic: f, QoS: q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// subsChanged tells the MQTT loop to compare the subscriptions again (after
// a pipeline apply, delete or reload).
func (n *Node) subsChanged() {
	if n.mq == nil {
		return
	}
	select {
	case n.mq.changed <- struct{}{}:
	default:
	}
}

// runMQTT runs the Source while any pipeline subscribes to a topic, and
// restarts it with the new union when the subscriptions change. A restart
// drains what the old Source queued (acknowledging it once durable); the
// persistent session keeps what arrives in between.
func (n *Node) runMQTT(ctx context.Context) {
	m := n.mq
	if m.broker != nil {
		// Embedded: the broker hands messages to Ingest itself; no Source.
		m.serveOnce.Do(func() { close(m.serve) })
		return
	}
	if len(m.brokers) == 0 {
		return
	}
	var (
		cancel context.CancelFunc
		done   chan struct{}
	)
	stop := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
			m.mu.Lock()
			st := m.src.Status()
			m.base.Received += st.Received
			m.base.Redelivered += st.Redelivered
			m.base.HandedOff += st.HandedOff
			m.base.Acked += st.Acked
			m.base.Connects += st.Connects
			m.src = nil
			m.mu.Unlock()
		}
	}
	defer stop()
	for {
		subs := n.subscriptions()
		m.mu.Lock()
		same := slices.Equal(subs, m.subs) && (m.src != nil || len(subs) == 0)
		m.mu.Unlock()
		if !same {
			stop()
			m.mu.Lock()
			m.subs = subs
			m.mu.Unlock()
			if len(subs) > 0 {
				src, err := mqtt.New(n.sourceConfig(subs), mqtt.HandlerFunc(n.handleMQTT),
					mqtt.WithLogger(n.log.With("component", "mqtt")))
				if err != nil {
					n.log.Error("MQTT source not started", "err", err)
				} else {
					sctx, c := context.WithCancel(ctx)
					cancel = c
					done = make(chan struct{})
					m.mu.Lock()
					m.src = src
					m.mu.Unlock()
					go func() {
						defer close(done)
						src.Run(sctx)
					}()
					n.log.Info("MQTT subscriptions", "brokers", m.brokers, "topics", len(subs))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
		}
	}
}

// handleMQTT is the Source's Handler: it hands the batch to Ingest, which
// returns once it is durable. A full disk quota becomes back-pressure.
func (n *Node) handleMQTT(ctx context.Context, msgs []mqtt.Message) error {
	m := n.mq
	buf := m.handler[:0]
	for i := range msgs {
		if n.mqttReserved(msgs[i].Topic) || n.mqttSourceReserved(msgs[i].Topic) {
			continue // only local-bus sensors write $bus/ topics, other sources $src/
		}
		buf = append(buf, Message{Topic: msgs[i].Topic, Payload: msgs[i].Payload, Duplicate: msgs[i].Duplicate,
			Once: msgs[i].QoS == 0 && !msgs[i].Retained})
	}
	m.handler = buf
	err := n.Ingest(ctx, buf)
	clear(buf)
	return backPressure(err)
}

// handleBroker is the embedded broker's Handler: it hands a batch of every
// client's messages to Ingest, which returns once it is durable; the broker
// then acknowledges the QoS 1 ones. On an error (full disk quota, node
// stopping) the broker acknowledges nothing and disconnects the publishers
// so that they resend. While the node stops, messages that no pipeline reads
// (e.g. the mqtt sinks' own outputs) are accepted without Ingest, so that
// sinks can still deliver.
func (n *Node) handleBroker(ctx context.Context, msgs []mqtt.Message) error {
	err := n.handleMQTT(ctx, msgs)
	if errors.Is(err, ErrNotReady) && !n.anyRoutable(msgs) {
		return nil
	}
	return err
}

// anyRoutable reports whether a loaded pipeline subscribes to the topic of
// one of msgs.
func (n *Node) anyRoutable(msgs []mqtt.Message) bool {
	subs := n.subscriptions()
	for i := range msgs {
		for _, s := range subs {
			if topic.MatchFilter(s.Topic, msgs[i].Topic) {
				return true
			}
		}
	}
	return false
}

// backPressure maps the input log's quota error to mqtt.ErrBackPressure, so
// that the Source waits instead of retrying fast.
func backPressure(err error) error {
	if errors.Is(err, storage.ErrQuotaExceeded) {
		return fmt.Errorf("%w: %w", mqtt.ErrBackPressure, err)
	}
	return err
}

// MQTTStatus is the MQTT part of /api/v1/status.
type MQTTStatus struct {
	// Mode is "embedded" (the node runs the broker), "external" or "off".
	Mode string `json:"mode"`
	// Listen is the embedded broker's bound address.
	Listen string `json:"listen,omitempty"`
	// BrokerError says why the embedded broker is not running.
	BrokerError   string   `json:"brokerError,omitempty"`
	Brokers       []string `json:"brokers,omitempty"`
	Subscriptions []string `json:"subscriptions"`
	// State is the Source's connection state: connected, connecting,
	// disconnected, or idle (no pipeline subscribes to anything).
	State         string `json:"state"`
	Broker        string `json:"broker,omitempty"`
	Connects      uint64 `json:"connects"`
	Received      uint64 `json:"received"`
	Redelivered   uint64 `json:"redelivered"`
	HandedOff     uint64 `json:"handedOff"`
	Acked         uint64 `json:"acked"`
	InFlight      int    `json:"inFlight"`
	BackPressured bool   `json:"backPressured"`
	LastError     string `json:"lastError,omitempty"`
	// BrokerDropped counts messages the embedded broker dropped (a client's
	// queue full).
	BrokerDropped int64 `json:"brokerDropped,omitempty"`
	// Embedded is the embedded broker's hand-off and limits (mode
	// "embedded" only).
	Embedded *EmbeddedBrokerStatus `json:"embedded,omitempty"`
}

// EmbeddedBrokerStatus is the embedded broker's part of the MQTT status:
// its clients, the limits hit (mqtt.broker.*) and the hand-off of its
// messages to the input log.
type EmbeddedBrokerStatus struct {
	Clients int64 `json:"clients"`
	// RefusedClients: CONNECTs refused at mqtt.broker.maxClients.
	RefusedClients uint64 `json:"refusedClients"`
	// OversizedPackets: clients disconnected for a packet over
	// mqtt.broker.maxPacketSize.
	OversizedPackets uint64 `json:"oversizedPackets"`
	// ExpiredSessions: sessions removed after mqtt.broker.sessionExpiry.
	ExpiredSessions uint64 `json:"expiredSessions"`
	// InFlightWaits: PUBLISHes that waited because a client had
	// mqtt.broker.maxInFlightPerClient messages awaiting the log.
	InFlightWaits uint64 `json:"inFlightWaits"`
	// InFlightBudgetWaits: PUBLISHes that waited because all clients
	// together had mqtt.broker.maxInFlight messages awaiting the log.
	InFlightBudgetWaits uint64 `json:"inFlightBudgetWaits"`
	// HandoffFailures: batches the input log refused; their QoS 1
	// publishers were disconnected unacknowledged (Disconnected) and
	// resend, their QoS 0 messages were lost (LostQoS0).
	HandoffFailures uint64 `json:"handoffFailures"`
	Disconnected    uint64 `json:"disconnected"`
	LostQoS0        uint64 `json:"lostQoS0"`
	Batches         uint64 `json:"batches"`
}

// MQTTStatus returns the state of the MQTT source and embedded broker.
func (n *Node) MQTTStatus() MQTTStatus {
	m := n.mq
	st := MQTTStatus{Mode: "off", State: "idle", Subscriptions: []string{}}
	if m == nil {
		return st
	}
	st.Mode = "external"
	if len(n.cfg.MQTT.Brokers) == 0 {
		st.Mode = "embedded"
		st.BrokerError = m.brokErr
		if m.broker != nil {
			st.Listen = m.broker.Addr()
			bs := m.broker.Stats()
			h := bs.Handoff
			st.BrokerDropped = bs.Dropped
			st.State = "listening"
			st.Received, st.Redelivered, st.HandedOff, st.Acked = h.Received, h.Redelivered, h.HandedOff, h.Acked
			st.InFlight, st.BackPressured, st.LastError = h.InFlight, h.Failing, h.LastError
			st.Embedded = &EmbeddedBrokerStatus{Clients: bs.Clients, RefusedClients: bs.RefusedClients,
				OversizedPackets: bs.OversizedPackets, ExpiredSessions: bs.ExpiredSessions,
				InFlightWaits: h.InFlightWaits, HandoffFailures: h.Failures, Disconnected: h.Disconnected,
				LostQoS0: h.LostQoS0, Batches: h.Batches, InFlightBudgetWaits: h.InFlightBudgetWaits}
			for _, s := range n.subscriptions() {
				st.Subscriptions = append(st.Subscriptions, fmt.Sprintf("%s (qos %d)", s.Topic, s.QoS))
			}
			return st
		}
	}
	st.Brokers = m.brokers
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.subs {
		st.Subscriptions = append(st.Subscriptions, fmt.Sprintf("%s (qos %d)", s.Topic, s.QoS))
	}
	b := m.base
	st.Connects, st.Received, st.Redelivered, st.HandedOff, st.Acked = b.Connects, b.Received, b.Redelivered, b.HandedOff, b.Acked
	if m.src != nil {
		s := m.src.Status()
		st.State = s.State.String()
		st.Broker = s.Broker
		st.Connects += s.Connects
		st.Received += s.Received
		st.Redelivered += s.Redelivered
		st.HandedOff += s.HandedOff
		st.Acked += s.Acked
		st.InFlight = s.InFlight
		st.BackPressured = s.BackPressured
		st.LastError = s.LastError
	}
	return st
}

// mqttConditions returns status lines about MQTT problems.
func (st MQTTStatus) conditions() []string {
	var out []string
	if st.BrokerError != "" {
		out = append(out, "mqtt: embedded broker not running: "+st.BrokerError)
	}
	if st.State == "disconnected" || st.State == "connecting" {
		msg := "mqtt: not connected to " + strings.Join(st.Brokers, ", ")
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		out = append(out, msg)
	}
	if st.BackPressured && st.Embedded != nil {
		out = append(out, "mqtt: the input log refuses messages; publishers are disconnected unacknowledged and resend: "+st.LastError)
	} else if st.BackPressured {
		out = append(out, "mqtt: hand-off to the input log refused, retrying: "+st.LastError)
	}
	if e := st.Embedded; e != nil {
		if e.RefusedClients > 0 {
			out = append(out, fmt.Sprintf("mqtt: %d client connections refused at mqtt.broker.maxClients", e.RefusedClients))
		}
		if e.OversizedPackets > 0 {
			out = append(out, fmt.Sprintf("mqtt: %d clients disconnected for a packet over mqtt.broker.maxPacketSize", e.OversizedPackets))
		}
		if st.BrokerDropped > 0 {
			out = append(out, fmt.Sprintf("mqtt: the embedded broker dropped %d messages to slow or offline subscribers (mqtt.broker.maxQueuedPerClient, maxPendingWrites)", st.BrokerDropped))
		}
	}
	return out
}

// writeBrokerMetrics writes the embedded broker's metrics (limits hit and
// hand-off).
func (st MQTTStatus) writeBrokerMetrics(g, c func(name, help string, v float64, labels ...string)) {
	e := st.Embedded
	if e == nil {
		return
	}
	g("edged_mqtt_broker_clients", "Clients connected to the embedded broker.", float64(e.Clients))
	c("edged_mqtt_broker_refused_clients_total", "Connections refused at mqtt.broker.maxClients.", float64(e.RefusedClients))
	c("edged_mqtt_broker_oversized_packets_total", "Clients disconnected for a packet over mqtt.broker.maxPacketSize.", float64(e.OversizedPackets))
	c("edged_mqtt_broker_expired_sessions_total", "Sessions removed after mqtt.broker.sessionExpiry.", float64(e.ExpiredSessions))
	c("edged_mqtt_broker_in_flight_waits_total", "PUBLISHes that waited at mqtt.broker.maxInFlightPerClient.", float64(e.InFlightWaits))
	c("edged_mqtt_broker_in_flight_budget_waits_total", "PUBLISHes that waited at mqtt.broker.maxInFlight (all clients).", float64(e.InFlightBudgetWaits))
	c("edged_mqtt_broker_handoff_batches_total", "Batches of the embedded broker made durable in the input log (group commits).", float64(e.Batches))
	c("edged_mqtt_broker_handoff_failures_total", "Batches the input log refused (nothing acknowledged).", float64(e.HandoffFailures))
	c("edged_mqtt_broker_disconnected_total", "Publishers disconnected unacknowledged because the input log refused their messages.", float64(e.Disconnected))
	c("edged_mqtt_broker_lost_qos0_total", "QoS 0 messages lost in batches the input log refused.", float64(e.LostQoS0))
}
