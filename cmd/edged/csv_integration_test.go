//go:build integration

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
)

// TestIntegrationCSVOverMQTT publishes CSV payloads (a header row, then
// one or more rows) through mosquitto: every row becomes one record with
// the sensor captured from the topic, and a payload that does not decode is
// one dead letter with its reason.
func TestIntegrationCSVOverMQTT(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	pipe := strings.Replace(passThrough("csv", "1", readingsTopic, "csv.jsonl"),
		"    - name: readings\n", "    - name: readings\n      format: csv\n", 1)
	e := newEdgedProc(t, fmt.Sprintf("storage: {sync: never}\nmqtt:\n  brokers: [%s]\n  clientID: edged-it-csv\n", b.URL()),
		map[string]string{"csv": pipe})
	e.launch(t)
	e.waitConnected(t)

	c, err := mqttClient(b.URL(), "it-csv-pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	pub := func(topic, payload string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Readings 0..99 one per payload, columns in another order than the
	// schema; 100..199 two rows per payload.
	for i := range 100 {
		pub(fmt.Sprintf("sensors/s%02d/temp", i%10), fmt.Sprintf("temp,seq\n%d.5,%d\n", i%40, i))
	}
	for i := 100; i < 200; i += 2 {
		pub(fmt.Sprintf("sensors/s%02d/temp", i%10), fmt.Sprintf("seq,temp\n%d,1\n%d,2\n", i, i+1))
	}
	pub("sensors/s99/temp", "seq,temp\nnot-a-number,1\n")
	eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "csv.jsonl"), 0, 200) })
	for _, r := range e.readings(t, "csv.jsonl") {
		want := fmt.Sprintf("s%02d", r.Seq%10)
		if r.Seq >= 100 {
			want = fmt.Sprintf("s%02d", (r.Seq-r.Seq%2)%10) // both rows on the even reading's topic
		}
		if r.Sensor != want {
			t.Fatalf("reading %d: sensor %q from the topic; want %q", r.Seq, r.Sensor, want)
		}
	}
	eventually(t, 20*time.Second, func() error {
		var dl struct {
			DeadLetters []struct {
				Payload string `json:"payload"`
				Reason  string `json:"reason"`
			} `json:"deadLetters"`
		}
		if err := e.get("/api/v1/deadletters?pipeline=csv", &dl); err != nil {
			return err
		}
		if len(dl.DeadLetters) != 1 || !strings.Contains(dl.DeadLetters[0].Payload, "not-a-number") || dl.DeadLetters[0].Reason == "" {
			return fmt.Errorf("dead letters %+v; want the one bad payload", dl.DeadLetters)
		}
		return nil
	})
	e.term(t)
}
