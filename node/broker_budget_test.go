package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mqtt.broker.maxInFlight bounds the QoS 1 messages of all publishers of
// the embedded broker waiting for the input log together; publishers past
// it wait (counted in the status and /metrics), and every message
// acknowledged to them reaches the pipeline.
func TestEmbeddedBrokerInFlightBudget(t *testing.T) {
	const clients, each = 10, 30
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"m1": mqttPipeline})
	cfg.MQTT.Listen = "127.0.0.1:0"
	cfg.MQTT.ClientID = "edged-test"
	cfg.MQTT.MaxBatchDelay = time.Millisecond
	cfg.MQTT.Broker.MaxInFlight = 8
	tn := startNode(t, cfg, newFakeClock(t0))
	url := "tcp://" + tn.MQTTStatus().Listen
	var wg sync.WaitGroup
	toks := make([][]paho.Token, clients)
	for c := range clients {
		pub := pahoClient(t, url, fmt.Sprintf("pub%d", c), nil)
		wg.Go(func() {
			for i := range each {
				toks[c] = append(toks[c], pub.Publish(fmt.Sprintf("sensors/hall/s%d/temp", c), 1, false,
					fmt.Sprintf(`{"temp": %d}`, i)))
			}
		})
	}
	wg.Wait()
	for c := range toks {
		for _, tok := range toks[c] {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish of client %d not acknowledged: %v", c, tok.Error())
			}
		}
	}
	e := tn.MQTTStatus().Embedded
	if e == nil || e.InFlightBudgetWaits == 0 {
		t.Fatalf("embedded status %+v; want inFlightBudgetWaits > 0 with %d publishers and maxInFlight 8", e, clients)
	}
	want := fmt.Sprintf("edged_mqtt_broker_in_flight_budget_waits_total %d\n", e.InFlightBudgetWaits)
	if m := scrape(t, tn.Node); !strings.Contains(m, want) {
		t.Errorf("/metrics has no %q", strings.TrimSpace(want))
	}
	tn.epoch(t, "m1")
	lines := waitLines(t, dir+"/out/temps.jsonl", clients*each)
	seen := map[string]bool{}
	for _, l := range lines {
		seen[fmt.Sprintf("%v/%v", l["sensor"], l["temp"])] = true
	}
	for c := range clients {
		for i := range each {
			if !seen[fmt.Sprintf("s%d/%d", c, i)] {
				t.Errorf("reading %d of sensor s%d acknowledged but not in the pipeline's output", i, c)
			}
		}
	}
}
