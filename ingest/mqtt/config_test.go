package mqtt

import (
	"github.com/edgedio/edged/internal/topic"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
	b := DefaultBrokerConfig()
	if err := b.Validate(); err != nil {
		t.Fatalf("DefaultBrokerConfig().Validate() = %v; want nil", err)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // substrings, all must appear
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, []string{"mqtt.brokers: at least one"}},
		{"bad scheme", func(c *Config) { c.Brokers = []string{"tcp://a:1", "http://b"} }, []string{`mqtt.brokers[1]: "http://b": unsupported scheme`}},
		{"no scheme", func(c *Config) { c.Brokers = []string{"localhost:1883"} }, []string{"mqtt.brokers[0]:"}},
		{"no client id", func(c *Config) { c.ClientID = "" }, []string{"mqtt.client_id: required"}},
		{"password alone", func(c *Config) { c.Password = "x" }, []string{"mqtt.password:"}},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, []string{"mqtt.tls: certFile and keyFile"}},
		{"no subscriptions", func(c *Config) { c.Subscriptions = nil }, []string{"mqtt.subscriptions: at least one"}},
		{"bad filter", func(c *Config) { c.Subscriptions[0].Topic = "a/#/b" }, []string{"mqtt.subscriptions[0].topic:", "'#' must be the last level"}},
		{"mixed wildcard", func(c *Config) { c.Subscriptions[0].Topic = "a/b+" }, []string{"mqtt.subscriptions[0].topic:"}},
		{"bad share", func(c *Config) { c.Subscriptions[0].Topic = "$share//a" }, []string{"mqtt.subscriptions[0].topic: shared subscription"}},
		{"qos 2", func(c *Config) { c.Subscriptions[0].QoS = 2 }, []string{"mqtt.subscriptions[0].qos: QoS 2 is not supported"}},
		{"qos 7", func(c *Config) { c.Subscriptions[0].QoS = 7 }, []string{"mqtt.subscriptions[0].qos: must be 0 or 1"}},
		{"clean session with qos1", func(c *Config) { c.CleanSession = true }, []string{"mqtt.clean_session: must be false"}},
		{"keepalive sub-second", func(c *Config) { c.KeepAlive = time.Millisecond }, []string{"mqtt.keepalive:"}},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, []string{"mqtt.connect_timeout:"}},
		{"backoff order", func(c *Config) { c.ReconnectBackoffMax = time.Millisecond }, []string{"mqtt.reconnect_backoff_max:"}},
		{"retry backoff zero", func(c *Config) { c.RetryBackoffMin = 0 }, []string{"mqtt.retry_backoff_min:"}},
		{"batch size", func(c *Config) { c.BatchSize = 0 }, []string{"mqtt.batch_size:"}},
		{"in flight below batch", func(c *Config) { c.MaxInFlight = 10; c.BatchSize = 20 }, []string{"mqtt.max_in_flight: must be at least batch_size (20)"}},
		{"packet size", func(c *Config) { c.MaxPacketSize = 100 }, []string{"mqtt.max_packet_size: must be between 1024 and 268435455 bytes, got 100"}},
		{"every problem at once", func(c *Config) { c.ClientID = ""; c.BatchSize = 0; c.Brokers = nil }, []string{"mqtt.client_id", "mqtt.batch_size", "mqtt.brokers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			before := c.Subscriptions[0:len(c.Subscriptions):len(c.Subscriptions)]
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil; want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
			if len(before) != len(c.Subscriptions) {
				t.Errorf("Validate modified the config")
			}
		})
	}
}

func TestValidateFilterAcceptsMQTTFilters(t *testing.T) {
	for _, f := range []string{"#", "+", "a/+/c", "a/b/#", "+/+", "$share/g/sensors/#", "$SYS/x", "a//b", "/"} {
		if err := topic.ValidateFilter(f); err != nil {
			t.Errorf("ValidateFilter(%q) = %v; want nil", f, err)
		}
	}
}

func TestBrokerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    BrokerConfig
		want string
	}{
		{"bad address", BrokerConfig{Address: "1883"}, "broker.address:"},
		{"password alone", BrokerConfig{Password: "p"}, "broker.password:"},
		{"key alone", BrokerConfig{TLS: BrokerTLSConfig{KeyFile: "k"}}, "broker.tls:"},
		{"client ca without cert", BrokerConfig{TLS: BrokerTLSConfig{ClientCAFile: "ca"}}, "broker.tls.clientCAFile:"},
		{"queue too big", BrokerConfig{Limits: BrokerLimits{MaxQueuedPerClient: 70000}}, "mqtt.broker.maxQueuedPerClient:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
