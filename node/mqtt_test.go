package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/ingest/mqtt"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

const mqttPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: m1}
spec:
  interval: 1s
  sources:
    - name: temps
      mqtt: {topics: ["sensors/{site}/{sensor}/temp"], qos: 1}
      key: [sensor]
      fields:
        - {name: site, type: string}
        - {name: sensor, type: string}
        - {name: temp, type: number}
    - name: packs
      format: senml
      mqtt: {topics: ["senml/{dev}"], qos: 1}
      eventTime: ts
      fields:
        - {name: dev, type: string}
        - {name: name, type: string}
        - {name: value, type: number}
        - {name: ts, type: time}
    - name: notes
      format: raw
      mqtt: {topics: ["notes/#"], qos: 0}
      fields:
        - {name: payload, type: string}
  steps:
    - name: hot
      input: temps
      filter: temp > 20
  sinks:
    - {name: temps-out, input: temps, type: file, path: temps.jsonl}
    - {name: packs-out, input: packs, type: file, path: packs.jsonl}
    - {name: notes-out, input: notes, type: file, path: notes.jsonl}
    - {name: alarm, input: hot, type: mqtt, topic: "alarms/{pipeline}/{site}/{sensor}", qos: 1}
`

// pahoClient connects a test client to url.
func pahoClient(t *testing.T, url, id string, onMsg paho.MessageHandler) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true)
	if onMsg != nil {
		o.SetDefaultPublishHandler(onMsg)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func TestEmbeddedBrokerIngestsTemplatesSenMLRawAndPublishes(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"m1": mqttPipeline})
	cfg.MQTT.Listen = "127.0.0.1:0"
	cfg.MQTT.ClientID = "edged-test"
	cfg.MQTT.MaxBatchDelay = time.Millisecond
	tn := startNode(t, cfg, newFakeClock(t0))
	st := tn.MQTTStatus()
	if st.Mode != "embedded" || st.Listen == "" {
		t.Fatalf("got mode %q listen %q; want embedded with an address", st.Mode, st.Listen)
	}
	url := "tcp://" + st.Listen
	eventually(t, 10*time.Second, func() error {
		if s := tn.MQTTStatus(); s.State != "listening" {
			return fmt.Errorf("broker state %s (%s)", s.State, s.LastError)
		}
		return nil
	})
	if got := strings.Join(tn.MQTTStatus().Subscriptions, ","); got != "notes/# (qos 0),senml/+ (qos 1),sensors/+/+/temp (qos 1)" {
		t.Fatalf("got subscriptions %q; want the union of the pipeline's topics as filters", got)
	}

	var mu sync.Mutex
	var alarms []string
	sub := pahoClient(t, url, "alarm-reader", nil)
	if tok := sub.Subscribe("alarms/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		alarms = append(alarms, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := pahoClient(t, url, "pub", nil)
	send := func(topic, payload string, qos byte) {
		if tok := pub.Publish(topic, qos, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	send("sensors/hall/s1/temp", `{"temp": 25}`, 1)
	send("sensors/yard/s2/temp", `{"temp": 10, "sensor": "spoofed"}`, 1)
	send("senml/dev7", `[{"bn":"dev7/","bt":1700000000,"n":"temp","v":21.5},{"n":"hum","v":40,"t":1}]`, 1)
	send("notes/a", "hello", 0)
	eventually(t, 10*time.Second, func() error {
		if s := tn.MQTTStatus(); s.HandedOff < 4 {
			return fmt.Errorf("handed off %d of 4", s.HandedOff)
		}
		return nil
	})
	tn.epoch(t, "m1")

	temps := waitLines(t, dir+"/out/temps.jsonl", 2)
	var got []string
	for _, l := range temps {
		got = append(got, fmt.Sprintf("%v/%v/%v", l["site"], l["sensor"], l["temp"]))
	}
	sort.Strings(got)
	if want := "hall/s1/25,yard/s2/10"; strings.Join(got, ",") != want {
		t.Errorf("temps: got %v; want %s (topic captures fill site and sensor)", got, want)
	}
	packs := waitLines(t, dir+"/out/packs.jsonl", 2)
	if packs[0]["name"] != "dev7/temp" || packs[0]["value"] != 21.5 || packs[0]["dev"] != "dev7" {
		t.Errorf("senml: got %v; want name dev7/temp value 21.5 dev dev7", packs[0])
	}
	notes := waitLines(t, dir+"/out/notes.jsonl", 1)
	if notes[0]["payload"] != "hello" {
		t.Errorf("raw: got %v; want payload hello", notes[0])
	}
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(alarms) != 1 {
			return fmt.Errorf("got %d alarms; want 1", len(alarms))
		}
		return nil
	})
	mu.Lock()
	topic, payload, _ := strings.Cut(alarms[0], " ")
	mu.Unlock()
	if topic != "alarms/m1/hall/s1" {
		t.Errorf("alarm topic: got %q; want alarms/m1/hall/s1", topic)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(payload), &out); err != nil || !strings.HasPrefix(fmt.Sprint(out["_id"]), "m1/") {
		t.Errorf("alarm payload: got %s (%v); want JSON with an _id", payload, err)
	}
	// The broker takes every PUBLISH: the 4 readings and the mqtt sink's
	// alarm (QoS 1); the QoS 0 reading is not acknowledged.
	eventually(t, 5*time.Second, func() error {
		if s := tn.MQTTStatus(); s.Acked != 4 || s.Received != 5 {
			return fmt.Errorf("status: got received %d acked %d; want 5 and 4 (the QoS 0 message is not acked)", s.Received, s.Acked)
		}
		return nil
	})
}

func TestSubscriptionsFollowPipelineChanges(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	cfg.MQTT.Listen = "127.0.0.1:0"
	cfg.MQTT.ClientID = "edged-subs"
	tn := startNode(t, cfg, newFakeClock(t0))
	want := func(s string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			st := tn.MQTTStatus()
			if got := strings.Join(st.Subscriptions, ","); got != s {
				return fmt.Errorf("got subscriptions %q; want %q", got, s)
			}
			if s != "" && st.State != "listening" {
				return fmt.Errorf("state %s", st.State)
			}
			return nil
		})
	}
	want("sensors/+/temp (qos 0)")
	if _, err := tn.Apply("m2", []byte(strings.ReplaceAll(strings.ReplaceAll(testPipeline, "name: t1", "name: m2"), `{topics: ["sensors/+/temp"]}`, `{topics: ["lab/+/#"], qos: 1}`))); err != nil {
		t.Fatal(err)
	}
	want("lab/+/# (qos 1),sensors/+/temp (qos 0)")
	if _, err := tn.Delete("t1"); err != nil {
		t.Fatal(err)
	}
	want("lab/+/# (qos 1)")
	if _, err := tn.Delete("m2"); err != nil {
		t.Fatal(err)
	}
	want("")
}

func TestHandlerMapsQuotaToBackPressure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"quota", fmt.Errorf("ingest into %q: %w", "x", storage.ErrQuotaExceeded), mqtt.ErrBackPressure},
		{"other", errors.New("disk on fire"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := backPressure(tt.err)
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v; want it to wrap %v", err, tt.want)
			}
			if tt.want == nil && errors.Is(err, mqtt.ErrBackPressure) {
				t.Errorf("got %v; want no back-pressure", err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("got %v; want it to keep wrapping %v", err, tt.err)
			}
		})
	}
}

func TestFrameTopicRoundTrip(t *testing.T) {
	rec := runner.AppendEntry(nil, "a/b", []byte(`{"x":1}`))
	topic, payload, ok := runner.SplitEntry(rec)
	if !ok || string(topic) != "a/b" || string(payload) != `{"x":1}` {
		t.Errorf("got %q %q %v; want a/b {\"x\":1} true", topic, payload, ok)
	}
	if _, p, ok := runner.SplitEntry([]byte(`{"x":1}`)); ok || string(p) != `{"x":1}` {
		t.Errorf("bare payload: got framed %v; want the payload as is", ok)
	}
	if _, _, ok := runner.SplitEntry([]byte{0, 200}); ok {
		t.Error("truncated frame: got framed; want bare")
	}
}

// A configured listener that cannot be opened stops start-up with one line
// naming the key (before, the node ran on without its broker).
func TestBusyMQTTListenIsFatal(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	cfg.MQTT.Listen = busy.Addr().String()
	n, err := New(cfg, WithClock(newFakeClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mqtt.listen") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Run with a busy mqtt.listen: got %v; want one line naming mqtt.listen", err)
	}
}
