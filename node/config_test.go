package node

import (
	"strings"
	"testing"
)

func TestConfigExampleAndStrictDecoding(t *testing.T) {
	if _, err := LoadConfig("../configs/edged.yaml"); err != nil {
		t.Fatalf("configs/edged.yaml: %v", err)
	}
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error; nil: valid
	}{
		{"empty", "", nil},
		{"unknown key", "dataDir: /x\napi:\n  listn: 1\n", []string{"c.yaml:3", "listn"}},
		{"bad values all at once", "logLevel: loud\nstorage:\n  sync: sometimes\n  compression: lz4\nsinks:\n  batch: -1\n",
			[]string{"logLevel", "storage.sync", "storage.compression", "sinks.batch"}},
		{"duration", "storage:\n  groupMaxDelay: 5ms\n", nil},
		{"tls pair", "api:\n  tlsCert: a.pem\n", []string{"api.tlsCert"}},
		{"broker url", "mqtt:\n  brokers: [localhost]\n", []string{"mqtt.brokers[0]"}},
		{"broker limits", "mqtt:\n  broker: {maxPacketSize: 2097152, maxClients: 50, sessionExpiry: 1h, maxQueuedPerClient: 1000, maxInFlightPerClient: 256}\n", nil},
		{"bad broker limits", "mqtt:\n  broker: {maxClients: -1, sessionExpiry: 10ms, maxInFlightPerClient: 70000, maxInFlight: -1}\n",
			[]string{"mqtt.broker.maxClients", "mqtt.broker.sessionExpiry", "mqtt.broker.maxInFlightPerClient", "mqtt.broker.maxInFlight"}},
		{"write queue below a batch", "mqtt:\n  batchSize: 16384\n  broker: {maxPendingWrites: 8192}\n",
			[]string{"mqtt.broker.maxPendingWrites", "mqtt.batchSize (16384)"}},
		{"default write queue below a larger batch", "mqtt:\n  batchSize: 12000\n", []string{"mqtt.broker.maxPendingWrites"}},
		{"write queue raised with the batch", "mqtt:\n  batchSize: 16384\n  broker: {maxPendingWrites: 16384}\n", nil},
		{"external broker: no write queue", "mqtt:\n  brokers: [tcp://127.0.0.1:1883]\n  batchSize: 16384\n", nil},
		{"unknown broker key", "mqtt:\n  broker: {maxClient: 5}\n", []string{"c.yaml:2", "maxClient"}},
		{"output bound", "epochs:\n  maxOutputs: 1024\n", nil},
		{"no output bound", "epochs:\n  maxOutputs: -1\n", nil},
		{"bad output bound", "epochs:\n  maxOutputs: -2\n", []string{"epochs.maxOutputs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil; want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
