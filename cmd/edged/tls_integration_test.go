//go:build integration

package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
	"github.com/edgedio/edged/internal/testkit"
)

// forwarded collects the seq of every message an MQTT client receives.
type forwarded struct {
	mu   sync.Mutex
	seqs map[int]int
}

func (f *forwarded) handle(_ paho.Client, m paho.Message) {
	var r reading
	if err := json.Unmarshal(m.Payload(), &r); err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seqs[r.Seq]++
}

func (f *forwarded) missing(from, to int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for s := from; s < to; s++ {
		if f.seqs[s] == 0 {
			n++
		}
	}
	return n
}

// TestIntegrationClientTLSToMosquitto runs edged against a mosquitto that
// accepts only TLS clients with a certificate of its CA: edged's source and
// its mqtt sink connect with mqtt.tls (caFile, certFile, keyFile), every
// reading is processed once and forwarded. Without the client certificate,
// or trusting another CA, edged does not connect and says why.
func TestIntegrationClientTLSToMosquitto(t *testing.T) {
	pki := testkit.NewPKI(t, "mosquitto")
	other := testkit.NewPKI(t, "other")
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{
		CAFile: pki.CAFile, CertFile: pki.ServerCert, KeyFile: pki.ServerKey, RequireClientCert: true}})
	if !strings.HasPrefix(b.URL(), "ssl://") {
		t.Fatalf("broker URL %s; want ssl://", b.URL())
	}
	config := func(id, tlsYAML string) string {
		return fmt.Sprintf("storage: {sync: never}\nmqtt:\n  brokers: [%s]\n  clientID: %s\n  tls: {%s}\n", b.URL(), id, tlsYAML)
	}
	pipe := passThrough("tagged", "1", readingsTopic, "tagged.jsonl") +
		"    - {name: fwd, input: tag, type: mqtt, topic: \"out/{sensor}\", qos: 1}\n"

	t.Run("client certificate", func(t *testing.T) {
		fwd := &forwarded{seqs: map[int]int{}}
		sub, err := mqttClient(b.URL(), "it-tls-sub", pki.ClientTLS(t, true))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Disconnect(100)
		if tok := sub.Subscribe("out/#", 1, fwd.handle); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe out/#: %v", tok.Error())
		}
		e := newEdgedProc(t, config("edged-it-tls", fmt.Sprintf("caFile: %s, certFile: %s, keyFile: %s",
			pki.CAFile, pki.ClientCert, pki.ClientKey)), map[string]string{"tagged": pipe})
		e.launch(t)
		e.waitConnected(t)
		publishTo(t, b.URL(), "it-tls-pub", pki.ClientTLS(t, true), 0, 200)
		eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 200) })
		eventually(t, 20*time.Second, func() error {
			if n := fwd.missing(0, 200); n > 0 {
				return fmt.Errorf("%d of 200 readings not forwarded by the mqtt sink over TLS", n)
			}
			return nil
		})
		e.term(t)
	})

	refused := []struct{ name, tlsYAML, why string }{
		{"no client certificate", "caFile: " + pki.CAFile, "the broker requires a client certificate"},
		{"another CA", fmt.Sprintf("caFile: %s, certFile: %s, keyFile: %s", other.CAFile, pki.ClientCert, pki.ClientKey),
			"the broker's certificate is not signed by the trusted CA"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			e := newEdgedProc(t, config("edged-it-tls-bad", tc.tlsYAML), map[string]string{"tagged": pipe})
			e.launch(t)
			eventually(t, 15*time.Second, func() error {
				st := e.status(t)
				if st.MQTT.State == "connected" {
					t.Fatalf("edged connected although %s", tc.why)
				}
				if st.MQTT.LastError == "" {
					return fmt.Errorf("no connection error reported yet (state %s)", st.MQTT.State)
				}
				return nil
			})
			t.Logf("%s: edged reports %q", tc.name, e.status(t).MQTT.LastError)
		})
	}
}

// TestIntegrationEmbeddedBrokerTLS runs edged's embedded broker with a TLS
// listener (mqtt.listenTLS), then with mutual TLS (clientCAFile): a sensor
// connecting with the CA (and, for mutual TLS, its client certificate) has
// every reading processed once; a plain-TCP client is refused, and under
// mutual TLS so is a client without a certificate or with one from another
// CA.
func TestIntegrationEmbeddedBrokerTLS(t *testing.T) {
	pki := testkit.NewPKI(t, "edged")
	other := testkit.NewPKI(t, "other")
	for _, mutual := range []bool{false, true} {
		name := "tls"
		if mutual {
			name = "mutual tls"
		}
		t.Run(name, func(t *testing.T) {
			listen := freeAddr(t)
			cfg := fmt.Sprintf("storage: {sync: never}\nmqtt:\n  listen: %q\n  clientID: edged-it-btls\n"+
				"  listenTLS: {certFile: %s, keyFile: %s}\n", listen, pki.ServerCert, pki.ServerKey)
			if mutual {
				cfg = fmt.Sprintf("storage: {sync: never}\nmqtt:\n  listen: %q\n  clientID: edged-it-btls\n"+
					"  listenTLS: {certFile: %s, keyFile: %s, clientCAFile: %s}\n"+
					"  tls: {certFile: %s, keyFile: %s}\n",
					listen, pki.ServerCert, pki.ServerKey, pki.CAFile, pki.ClientCert, pki.ClientKey)
			}
			e := newEdgedProc(t, cfg, map[string]string{"tagged": passThrough("tagged", "1", readingsTopic, "tagged.jsonl")})
			e.launch(t)
			e.waitConnected(t)
			url := "ssl://" + listen
			publishTo(t, url, "it-btls-pub", pki.ClientTLS(t, mutual), 0, 100)
			eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 100) })

			refuse := func(what, url string, c *tls.Config) {
				t.Helper()
				if cl, err := mqttClient(url, "it-btls-bad", c); err == nil {
					cl.Disconnect(0)
					t.Errorf("%s connected to the embedded broker; want refused", what)
				}
			}
			refuse("a plain-TCP client", "tcp://"+listen, nil)
			if mutual {
				refuse("a client without a certificate", url, pki.ClientTLS(t, false))
				bad := other.ClientTLS(t, true)
				bad.RootCAs = pki.Pool
				refuse("a client with a certificate of another CA", url, bad)
			} else {
				// Without clientCAFile a client certificate is not required.
				publishTo(t, url, "it-btls-nocert", pki.ClientTLS(t, false), 100, 110)
				eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 110) })
			}
			e.term(t)
		})
	}
}
