package node

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/ingest/mqtt"
)

// TestQoS0ReadingsAreNeverDroppedAsCopies: MQTT never sends a QoS 0
// message twice, so two equal QoS 0 readings are two readings and both
// reach the windows; a QoS 1 redelivery and a retained copy sent again on
// a resubscribe are dropped by the input log's dedup as before.
func TestQoS0ReadingsAreNeverDroppedAsCopies(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	cfg.MQTT.Brokers = []string{"tcp://127.0.0.1:9"} // MQTT on (handleMQTT is called directly), never connected
	tn := startNode(t, cfg, newFakeClock(t0))
	m := func(topic, payload string, qos byte, retained bool) mqtt.Message {
		return mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: qos, Retained: retained}
	}
	before := tn.logNext(LogMQTT)
	if err := tn.handleMQTT(context.Background(), []mqtt.Message{
		m("sensors/a/temp", `{"sensor":"a","temp":1}`, 0, false),
		m("sensors/a/temp", `{"sensor":"a","temp":1}`, 0, false), // the same value again: a reading
		m("sensors/b/temp", `{"sensor":"b","temp":2}`, 1, false),
		m("sensors/b/temp", `{"sensor":"b","temp":2}`, 1, false), // a QoS 1 redelivery
		m("sensors/c/temp", `{"sensor":"c","temp":3}`, 0, true),
		m("sensors/c/temp", `{"sensor":"c","temp":3}`, 0, true), // the retained copy, sent again
	}); err != nil {
		t.Fatal(err)
	}
	if got := tn.logNext(LogMQTT) - before; got != 4 {
		t.Fatalf("%d entries logged; want 4 (both QoS 0 readings, one of each copy)", got)
	}
	tn.epoch(t, "t1")
	sums := waitLines(t, filepath.Join(dir, "out", "sums.jsonl"), 3)
	got := map[string]float64{}
	for _, l := range sums {
		got[l["sensor"].(string)] = l["state"].(float64)
	}
	if got["a"] != 2 || got["b"] != 2 || got["c"] != 3 {
		t.Errorf("sums: got %v; want map[a:2 b:2 c:3]", got)
	}
}
