// Package mesh lets the gateways of one site share the partitions of their
// pipelines. Membership is hashicorp/memberlist (SWIM gossip, encrypted with a
// shared key, timings tuned for a LAN); the owner and the standbys of every
// (pipeline, partition) come from rendezvous hashing over the live members;
// every change of owner raises the partition's term, which all members agree
// on by gossiping the term table and which never goes backwards across
// restarts (it is persisted in the data directory).
//
// The package is a leaf: it knows nothing of storage, ingest or the uplink.
// Node.Claims has the shape of the runner's Ownership with the package's own
// Claim type; the node adapts it.
package mesh

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is the `mesh:` section of edged.yaml. Zero values mean "use
// DefaultConfig's value" (see Defaults), so a section holding only `join`
// and `key` is complete.
type Config struct {
	// Name is this member's name, unique in the site. Empty means the host
	// name.
	Name string `yaml:"name"`
	// Bind is the host:port memberlist listens on (UDP and TCP). Empty
	// means 0.0.0.0:7946; port 0 picks a free port.
	Bind string `yaml:"bind"`
	// Advertise is the host:port the other members reach this one at.
	// Empty means memberlist picks the bind address (or the first private
	// address when binding to 0.0.0.0).
	Advertise string `yaml:"advertise"`
	// Join lists host:port seeds of the site. Empty starts a new mesh. A
	// node that reaches none of them keeps processing as a one-node mesh,
	// says so in its log and status, and tries again every JoinRetry.
	Join []string `yaml:"join"`
	// FetchState makes a node that comes to hold a partition whose state it
	// does not have current (a new member, a restarted one that did not
	// hold it when it stopped, a membership change) fetch the partition's
	// committed state from its current holder (node API) before it
	// follows the claim. Nil means true (README, Mesh).
	FetchState *bool `yaml:"fetchState"`
	// Key is the shared encryption key, base64 of 16, 24 or 32 bytes
	// (AES-128/192/256). Gossip from a node without it is rejected, logged
	// and counted. Empty means no encryption.
	Key string `yaml:"key"`
	// Standbys is R, the number of hot standbys of every partition. Zero
	// means 1; -1 means none.
	Standbys int `yaml:"standbys"`
	// ProbeInterval is how often a random member is probed. Zero means
	// 200ms (memberlist's LAN default is 1s; tuned so a dead member is
	// declared within about a second).
	ProbeInterval time.Duration `yaml:"probeInterval"`
	// ProbeTimeout is how long a probe waits for its ack. Zero means 100ms.
	ProbeTimeout time.Duration `yaml:"probeTimeout"`
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared dead. Zero means 2.
	SuspicionMult int `yaml:"suspicionMult"`
	// SuspicionMaxTimeoutMult bounds the suspicion timeout as a multiple of
	// its minimum. Zero means 2.
	SuspicionMaxTimeoutMult int `yaml:"suspicionMaxTimeoutMult"`
	// GossipInterval is how often gossip is sent. Zero means 50ms.
	GossipInterval time.Duration `yaml:"gossipInterval"`
	// PushPullInterval is how often the full state (members and the term
	// table) is exchanged with a random member. Zero means 2s.
	PushPullInterval time.Duration `yaml:"pushPullInterval"`
	// StandbyHold is how long a standby keeps the outputs it computed but
	// did not emit; when promoted it emits those of the last StandbyHold
	// first, so the windows that closed while the dead owner was being
	// detected are not lost (some may be emitted twice, with the same
	// values). Zero means 5s: failure detection (~1s) plus epochs and
	// sink delivery on a loaded gateway.
	StandbyHold time.Duration `yaml:"standbyHold"`
	// JoinRetry is how often a node that reached no seed tries again. Zero
	// means 2s.
	JoinRetry time.Duration `yaml:"joinRetry"`
}

// DefaultConfig returns the defaults, tuned for a LAN.
func DefaultConfig() Config {
	return Config{
		Bind:                    "0.0.0.0:7946",         // memberlist's usual port
		Standbys:                1,                      // one hot standby per partition
		ProbeInterval:           200 * time.Millisecond, // 5 probes a second
		ProbeTimeout:            100 * time.Millisecond, // a LAN answers in well under 100ms
		SuspicionMult:           2,                      // dead after ~0.75-0.95s on loopback
		SuspicionMaxTimeoutMult: 2,                      // no long tail when few members confirm
		GossipInterval:          50 * time.Millisecond,  // terms and deaths spread fast
		PushPullInterval:        2 * time.Second,        // repairs what gossip missed
		StandbyHold:             5 * time.Second,        // > detection + an epoch + delivery
		JoinRetry:               2 * time.Second,        // seeds unreachable: retry
	}
}

// Defaults returns c with every zero field set from DefaultConfig.
func (c Config) Defaults() Config {
	d := DefaultConfig()
	if c.Bind == "" {
		c.Bind = d.Bind
	}
	if c.Standbys == 0 {
		c.Standbys = d.Standbys
	}
	if c.Standbys < 0 {
		c.Standbys = 0
	}
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.ProbeInterval, d.ProbeInterval)
	set(&c.ProbeTimeout, d.ProbeTimeout)
	set(&c.GossipInterval, d.GossipInterval)
	set(&c.PushPullInterval, d.PushPullInterval)
	set(&c.JoinRetry, d.JoinRetry)
	set(&c.StandbyHold, d.StandbyHold)
	if c.SuspicionMult == 0 {
		c.SuspicionMult = d.SuspicionMult
	}
	if c.SuspicionMaxTimeoutMult == 0 {
		c.SuspicionMaxTimeoutMult = d.SuspicionMaxTimeoutMult
	}
	return c
}

// Validate reports every problem of the section at once, naming the YAML key
// under `mesh.`. It does not change c.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("mesh.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Bind != "" {
		if _, _, err := splitHostPort(c.Bind); err != nil {
			bad("bind", "%q is not host:port: %v", c.Bind, err)
		}
	}
	if c.Advertise != "" {
		if _, port, err := splitHostPort(c.Advertise); err != nil {
			bad("advertise", "%q is not host:port: %v", c.Advertise, err)
		} else if port == 0 {
			bad("advertise", "%q needs a port other members can reach", c.Advertise)
		}
	}
	for i, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad(fmt.Sprintf("join[%d]", i), "%q is not host:port: %v", j, err)
		}
	}
	if c.Key != "" {
		if _, err := c.SecretKey(); err != nil {
			bad("key", "%v", err)
		}
	}
	if c.Standbys < -1 {
		bad("standbys", "%d: must be at least -1 (-1 means none, 0 means 1)", c.Standbys)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"probeInterval", c.ProbeInterval}, {"probeTimeout", c.ProbeTimeout}, {"gossipInterval", c.GossipInterval},
		{"pushPullInterval", c.PushPullInterval}, {"joinRetry", c.JoinRetry}, {"standbyHold", c.StandbyHold}} {
		if d.v < 0 {
			bad(d.key, "%s is negative", d.v)
		}
	}
	if c.ProbeInterval > 0 && c.ProbeTimeout > 0 && c.ProbeTimeout >= c.ProbeInterval {
		bad("probeTimeout", "%s must be shorter than mesh.probeInterval (%s)", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 0 {
		bad("suspicionMult", "%d is negative", c.SuspicionMult)
	}
	if c.SuspicionMaxTimeoutMult < 0 {
		bad("suspicionMaxTimeoutMult", "%d is negative", c.SuspicionMaxTimeoutMult)
	}
	return errors.Join(errs...)
}

// SecretKey decodes Key; nil when Key is empty.
func (c Config) SecretKey() ([]byte, error) {
	if c.Key == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.Key)
	if err != nil {
		return nil, fmt.Errorf("not base64 (make one with `head -c 32 /dev/urandom | base64`): %v", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("decodes to %d bytes; it must be 16, 24 or 32", len(k))
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", p)
	}
	return h, port, nil
}
