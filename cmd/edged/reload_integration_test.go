//go:build integration

package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
)

const readingsTopic = "sensors/{sensor}/temp"

// reloadNode starts mosquitto and an edged running pipeline "tagged" at
// version 1, and checks that version 1 processes readings 0..99.
func reloadNode(t *testing.T, clientID string) (*mosquittotest.Broker, *edgedProc) {
	t.Helper()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	e := newEdgedProc(t, fmt.Sprintf("storage: {sync: never}\nmqtt:\n  brokers: [%s]\n  clientID: %s\n", b.URL(), clientID),
		map[string]string{"tagged": passThrough("tagged", "1", readingsTopic, "tagged.jsonl")})
	e.launch(t)
	e.waitConnected(t)
	publishTo(t, b.URL(), clientID+"-pub1", nil, 0, 100)
	eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 100) })
	for _, r := range e.readings(t, "tagged.jsonl") {
		if r.Ver != 1 {
			t.Fatalf("reading %d has ver %v before any reload; want 1", r.Seq, r.Ver)
		}
	}
	return b, e
}

// checkVersion waits until readings from..to-1 are each output once and
// fails unless each carries ver.
func checkVersion(t *testing.T, e *edgedProc, from, to int, ver float64) {
	t.Helper()
	eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "tagged.jsonl"), from, to) })
	for _, r := range e.readings(t, "tagged.jsonl") {
		if r.Seq >= from && r.Seq < to && r.Ver != ver {
			t.Fatalf("reading %d was processed by version %v; want %v (the version reloaded before it was published)", r.Seq, r.Ver, ver)
		}
	}
}

// TestIntegrationSIGHUPReloadsPipelines changes a pipeline file and sends
// SIGHUP: the new version processes what is published after it, nothing is
// lost or doubled across the swap, and a broken file is refused with the
// running version kept.
func TestIntegrationSIGHUPReloadsPipelines(t *testing.T) {
	b, e := reloadNode(t, "edged-it-hup")

	e.writePipeline(t, "tagged", passThrough("tagged", "2", readingsTopic, "tagged.jsonl"))
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() error {
		if v := e.pipelineVersions(t)["tagged"]; v != "2" {
			return fmt.Errorf("pipeline tagged at version %q after SIGHUP; want 2\n%s", v, e.stderr)
		}
		return nil
	})
	e.waitConnected(t)
	publishTo(t, b.URL(), "edged-it-hup-pub2", nil, 100, 200)
	checkVersion(t, e, 100, 200, 2)
	if err := checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 200); err != nil {
		t.Fatal(err)
	}

	// A file that does not validate: SIGHUP logs the problem with the file
	// and line, and version 2 keeps running.
	e.writePipeline(t, "broken", "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: broken}\nspec:\n  nosuchkey: 1\n")
	e.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 15*time.Second, func() error {
		if s := e.stderr.String(); !strings.Contains(s, "reload failed") || !strings.Contains(s, "broken.yaml:5") {
			return fmt.Errorf("no reload failure naming broken.yaml:5 logged yet:\n%s", s)
		}
		return nil
	})
	if v := e.pipelineVersions(t); v["tagged"] != "2" || len(v) != 1 {
		t.Fatalf("pipelines after a failed reload: %v; want only tagged at version 2", v)
	}
	publishTo(t, b.URL(), "edged-it-hup-pub3", nil, 200, 250)
	checkVersion(t, e, 200, 250, 2)
	e.term(t)
}

// TestIntegrationAPIReloadsPipelines does the same through POST
// /api/v1/reload, which answers only once the reload is done: a changed
// file is swapped, a new file starts, a removed file stops, and an invalid
// file is answered 400 naming it, with nothing changed.
func TestIntegrationAPIReloadsPipelines(t *testing.T) {
	b, e := reloadNode(t, "edged-it-apireload")

	e.writePipeline(t, "tagged", passThrough("tagged", "2", readingsTopic, "tagged.jsonl"))
	e.writePipeline(t, "extra", passThrough("extra", "1", readingsTopic, "extra.jsonl"))
	if code, body := e.post(t, "/api/v1/reload"); code != 200 {
		t.Fatalf("POST /api/v1/reload: %d %s", code, body)
	}
	// Synchronous: the versions are in place when the answer arrives.
	if v := e.pipelineVersions(t); v["tagged"] != "2" || v["extra"] != "1" || len(v) != 2 {
		t.Fatalf("pipelines right after the reload answered: %v; want tagged 2, extra 1", v)
	}
	e.waitConnected(t) // the new union of subscriptions
	publishTo(t, b.URL(), "edged-it-apireload-pub2", nil, 100, 200)
	checkVersion(t, e, 100, 200, 2)
	eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, "extra.jsonl"), 100, 200) })

	// Invalid: 400 naming the file; nothing changes.
	e.writePipeline(t, "broken", "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: broken}\nspec:\n  nosuchkey: 1\n")
	e.writePipeline(t, "tagged", passThrough("tagged", "3", readingsTopic, "tagged.jsonl"))
	code, body := e.post(t, "/api/v1/reload")
	if code != 400 || !strings.Contains(body, "broken.yaml:5") {
		t.Fatalf("POST /api/v1/reload with an invalid file: %d %s; want 400 naming broken.yaml:5", code, body)
	}
	if v := e.pipelineVersions(t); v["tagged"] != "2" || len(v) != 2 {
		t.Fatalf("pipelines after a refused reload: %v; want tagged still at 2, extra", v)
	}
	publishTo(t, b.URL(), "edged-it-apireload-pub3", nil, 200, 250)
	checkVersion(t, e, 200, 250, 2)

	// Remove the broken file and extra: version 3 runs, extra stops.
	removePipeline(t, e, "broken")
	removePipeline(t, e, "extra")
	if code, body := e.post(t, "/api/v1/reload"); code != 200 {
		t.Fatalf("POST /api/v1/reload: %d %s", code, body)
	}
	if v := e.pipelineVersions(t); v["tagged"] != "3" || len(v) != 1 {
		t.Fatalf("pipelines after removing extra.yaml: %v; want only tagged at 3", v)
	}
	publishTo(t, b.URL(), "edged-it-apireload-pub4", nil, 250, 300)
	checkVersion(t, e, 250, 300, 3)
	for _, r := range e.readings(t, "extra.jsonl") {
		if r.Seq >= 250 {
			t.Fatalf("reading %d reached pipeline extra after its file was removed and reloaded", r.Seq)
		}
	}
	if err := checkOnce(t, e.readings(t, "tagged.jsonl"), 0, 300); err != nil {
		t.Fatal(err)
	}
	e.term(t)
}
