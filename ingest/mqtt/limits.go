package mqtt

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerLimits bound what clients may use of the embedded broker. The
// daemon nests them under the YAML key "mqtt.broker", which Validate names.
// Zero in any field means its default (DefaultBrokerLimits). Every limit is
// counted when it is hit (BrokerStats).
type BrokerLimits struct {
	// MaxPacketSize is the largest MQTT packet a client may send, in bytes;
	// a larger one disconnects the client. Default 1 MiB. MQTT allows up to
	// 268435455.
	MaxPacketSize int `yaml:"maxPacketSize"`

	// MaxClients is how many clients may be connected at once; one more is
	// refused at CONNECT ("server unavailable"). Default 1000.
	MaxClients int `yaml:"maxClients"`

	// SessionExpiry is how long the broker keeps the session (subscriptions
	// and queued messages) of a persistent client that disconnected; MQTT 5
	// clients may ask for less. Default 24h; at least 1s.
	SessionExpiry time.Duration `yaml:"sessionExpiry"`

	// MaxQueuedPerClient caps the QoS 1 messages the broker keeps for one
	// subscribing client (sent and unacknowledged, or queued while it is
	// offline). Default and maximum 65535: the broker assigns a 16-bit
	// packet id when it queues a message. Past the cap, messages to that
	// client are dropped and counted.
	MaxQueuedPerClient int `yaml:"maxQueuedPerClient"`

	// MaxPendingWrites is a client's write queue, in packets. When a
	// subscriber reads slower than publishers publish for longer than this
	// queue covers, messages to it are dropped and counted (at QoS 1 too:
	// the broker forgets a message it could not queue). Every client,
	// publishers included, costs 8 bytes per slot (64 KB at the default).
	// Default 8192: the largest burst the broker sends a subscriber by
	// itself is one hand-off batch (mqtt.batchSize, default 8192), delivered
	// when the input log accepted it; raise it with mqtt.batchSize.
	MaxPendingWrites int `yaml:"maxPendingWrites"`

	// MaxInFlightPerClient is how many QoS 1/2 messages of one publishing
	// client may wait for the input log at once. When they are that many,
	// the broker stops reading that client's connection until some are
	// acknowledged (counted; MQTT 5 clients are told it as their receive
	// maximum). Default 1024; at most 65535.
	MaxInFlightPerClient int `yaml:"maxInFlightPerClient"`

	// MaxInFlight is how many QoS 1/2 messages of all publishing clients
	// together may wait for the input log at once. When they are that many,
	// a client that sends one more is not read further until the log has
	// accepted a batch (counted), so the memory of waiting messages does not
	// grow with the number of clients. Default 16384: two group commits of
	// mqtt.batchSize's default, one being written while the next fills.
	MaxInFlight int `yaml:"maxInFlight"`
}

// DefaultBrokerLimits returns the embedded broker's default limits.
func DefaultBrokerLimits() BrokerLimits {
	return BrokerLimits{
		MaxPacketSize:        1 << 20,        // sensor readings are small; a bigger packet is a bug or an attack
		MaxClients:           1000,           // a gateway's sensors, with room; bounds memory (~tens of KB each)
		SessionExpiry:        24 * time.Hour, // a subscriber may be away a day without losing its queue
		MaxQueuedPerClient:   math.MaxUint16, // the most the broker can hold: never drop for a short outage
		MaxPendingWrites:     8192,           // one hand-off batch; 64 KB per client (16384 put 100 publishers over 64 MB RSS)
		MaxInFlightPerClient: 1024,           // a fast publisher keeps a group commit full; bounds memory per client
		MaxInFlight:          16384,          // two group commits; ~200 B each waiting, ~3 MB whatever the clients
	}
}

// withDefaults returns l with every zero field replaced by its default.
func (l BrokerLimits) withDefaults() BrokerLimits {
	d := DefaultBrokerLimits()
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = d.MaxPacketSize
	}
	if l.MaxClients == 0 {
		l.MaxClients = d.MaxClients
	}
	if l.SessionExpiry == 0 {
		l.SessionExpiry = d.SessionExpiry
	}
	if l.MaxQueuedPerClient == 0 {
		l.MaxQueuedPerClient = d.MaxQueuedPerClient
	}
	if l.MaxPendingWrites == 0 {
		l.MaxPendingWrites = d.MaxPendingWrites
	}
	if l.MaxInFlightPerClient == 0 {
		l.MaxInFlightPerClient = d.MaxInFlightPerClient
	}
	if l.MaxInFlight == 0 {
		l.MaxInFlight = d.MaxInFlight
	}
	return l
}

func (l BrokerLimits) inFlight() int { return l.withDefaults().MaxInFlightPerClient }

// Validate reports every problem at once, naming the YAML key under
// "mqtt.broker.".
func (l *BrokerLimits) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("mqtt.broker.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if l.MaxPacketSize < 0 || l.MaxPacketSize > 268435455 {
		bad("maxPacketSize", "must be 0 (1 MiB) to 268435455 bytes (the MQTT maximum), got %d", l.MaxPacketSize)
	} else if l.MaxPacketSize > 0 && l.MaxPacketSize < 64 {
		bad("maxPacketSize", "must be at least 64 bytes (a CONNECT must fit), got %d", l.MaxPacketSize)
	}
	if l.MaxClients < 0 {
		bad("maxClients", "must not be negative, got %d", l.MaxClients)
	}
	if l.SessionExpiry < 0 || (l.SessionExpiry > 0 && l.SessionExpiry < time.Second) {
		bad("sessionExpiry", "must be 0 (24h) or at least 1s, got %v", l.SessionExpiry)
	} else if l.SessionExpiry/time.Second > math.MaxUint32 {
		bad("sessionExpiry", "must be at most %v, got %v", time.Duration(math.MaxUint32)*time.Second, l.SessionExpiry)
	}
	if l.MaxQueuedPerClient < 0 || l.MaxQueuedPerClient > math.MaxUint16 {
		bad("maxQueuedPerClient", "must be 0 (65535) to 65535, got %d", l.MaxQueuedPerClient)
	}
	if l.MaxPendingWrites < 0 || l.MaxPendingWrites > math.MaxInt32 {
		bad("maxPendingWrites", "must be 0 (8192) to %d, got %d", math.MaxInt32, l.MaxPendingWrites)
	}
	if l.MaxInFlightPerClient < 0 || l.MaxInFlightPerClient > math.MaxUint16 {
		bad("maxInFlightPerClient", "must be 0 (1024) to 65535, got %d", l.MaxInFlightPerClient)
	}
	if l.MaxInFlight < 0 || l.MaxInFlight > math.MaxInt32 {
		bad("maxInFlight", "must be 0 (16384) to %d, got %d", math.MaxInt32, l.MaxInFlight)
	}
	return errors.Join(errs...)
}

// apply sets mochi's capabilities from l (defaults filled in).
func (l BrokerLimits) apply(caps *mochi.Capabilities) {
	l = l.withDefaults()
	caps.MaximumPacketSize = uint32(l.MaxPacketSize)
	caps.MaximumClients = int64(l.MaxClients)
	caps.MaximumSessionExpiryInterval = uint32(l.SessionExpiry / time.Second)
	caps.MaximumInflight = uint16(l.MaxQueuedPerClient)
	caps.MaximumClientWritesPending = int32(l.MaxPendingWrites)
	caps.ReceiveMaximum = uint16(l.MaxInFlightPerClient)
}

// BrokerStats counts what the embedded broker refused or dropped because a
// limit was hit, and its hand-off (when it has a Handler).
type BrokerStats struct {
	Clients int64 // clients connected now
	// RefusedClients counts CONNECTs refused because MaxClients were
	// connected.
	RefusedClients uint64
	// OversizedPackets counts clients disconnected for a packet larger than
	// MaxPacketSize.
	OversizedPackets uint64
	// ExpiredSessions counts sessions removed after SessionExpiry.
	ExpiredSessions uint64
	// Dropped counts messages to subscribers dropped because a client's
	// queue (MaxQueuedPerClient) or write queue (MaxPendingWrites) was full.
	Dropped int64
	// Handoff is the hand-off to the Handler (zero without one); its
	// InFlightWaits counts MaxInFlightPerClient being hit, its
	// InFlightBudgetWaits MaxInFlight.
	Handoff HandoffStats
}

// limitsHook counts the limits that mochi enforces itself.
type limitsHook struct {
	mochi.HookBase
	srv                                atomic.Pointer[mochi.Server]
	maxClients                         int64
	refused, oversized, expiredSession atomic.Uint64
}

// ID identifies the hook to mochi.
func (h *limitsHook) ID() string { return "edged-limits" }

// Provides tells mochi which hook methods are implemented.
func (h *limitsHook) Provides(b byte) bool {
	return b == mochi.OnPacketRead || b == mochi.OnDisconnect || b == mochi.OnClientExpired
}

// OnPacketRead counts a CONNECT that mochi is about to refuse because
// MaxClients are connected (mochi checks that right after this hook and
// tells no hook about the refusal).
func (h *limitsHook) OnPacketRead(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect {
		if s := h.srv.Load(); s != nil && atomic.LoadInt64(&s.Info.ClientsConnected) >= h.maxClients {
			h.refused.Add(1)
		}
	}
	return pk, nil
}

// OnDisconnect counts clients disconnected for an oversized packet.
func (h *limitsHook) OnDisconnect(_ *mochi.Client, err error, _ bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.oversized.Add(1)
	}
}

// OnClientExpired counts expired sessions.
func (h *limitsHook) OnClientExpired(*mochi.Client) { h.expiredSession.Add(1) }
