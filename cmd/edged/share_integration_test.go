//go:build integration

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
)

// epochTime returns the processing time of pipeline name's last epoch.
func (e *edgedProc) epochTime(t *testing.T, name string) int64 {
	t.Helper()
	var st struct {
		Pipelines []struct {
			Name      string `json:"name"`
			EpochTime int64  `json:"epochTimeMs"`
		} `json:"pipelines"`
	}
	if err := e.get("/api/v1/status", &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, p := range st.Pipelines {
		if p.Name == name {
			return p.EpochTime
		}
	}
	t.Fatalf("no pipeline %q in status", name)
	return 0
}

// TestIntegrationSharedSubscription runs two edged processes against one
// mosquitto, both subscribed to $share/edged/sensors/{sensor}/temp: the
// broker splits the readings between them, each reading is output exactly
// once across the two, by both of them some, and the topic field is
// captured as without the $share prefix.
func TestIntegrationSharedSubscription(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	pipe := passThrough("shared", "1", "$share/edged/"+readingsTopic, "shared.jsonl")
	var nodes []*edgedProc
	for _, id := range []string{"edged-it-share-a", "edged-it-share-b"} {
		e := newEdgedProc(t, fmt.Sprintf("storage: {sync: never}\nmqtt:\n  brokers: [%s]\n  clientID: %s\n", b.URL(), id),
			map[string]string{"shared": pipe})
		e.launch(t)
		nodes = append(nodes, e)
	}
	for _, e := range nodes {
		e.waitConnected(t)
	}
	const n = 2000
	publishTo(t, b.URL(), "it-share-pub", nil, 0, n)

	all := func() []reading {
		var rows []reading
		for i, e := range nodes {
			rs := e.readings(t, "shared.jsonl")
			ids := map[string]bool{}
			for _, r := range rs {
				if ids[r.ID] {
					t.Fatalf("node %d output id %s twice", i, r.ID)
				}
				ids[r.ID] = true
				r.ID = fmt.Sprintf("%d:%s", i, r.ID) // ids are per node
				rows = append(rows, r)
			}
		}
		return rows
	}
	eventually(t, 30*time.Second, func() error { return checkOnce(t, all(), 0, n) })
	// Two more epochs on both nodes add nothing (no late copy).
	for _, e := range nodes {
		t0 := e.epochTime(t, "shared")
		eventually(t, 10*time.Second, func() error {
			if et := e.epochTime(t, "shared"); et < t0+200 {
				return fmt.Errorf("epoch time %d; want %d", et, t0+200)
			}
			return nil
		})
	}
	rows := all()
	if len(rows) != n {
		t.Fatalf("%d outputs across both nodes; want %d, one per reading", len(rows), n)
	}
	if err := checkOnce(t, rows, 0, n); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if want := fmt.Sprintf("s%02d", r.Seq%10); r.Sensor != want {
			t.Fatalf("reading %d: sensor %q captured from the topic; want %q", r.Seq, r.Sensor, want)
		}
	}
	a, bn := len(nodes[0].readings(t, "shared.jsonl")), len(nodes[1].readings(t, "shared.jsonl"))
	if a == 0 || bn == 0 {
		t.Fatalf("node a output %d readings, node b %d: the broker did not share the subscription", a, bn)
	}
	t.Logf("node a processed %d, node b %d of %d readings", a, bn, n)
	for _, e := range nodes {
		e.term(t)
	}
}
