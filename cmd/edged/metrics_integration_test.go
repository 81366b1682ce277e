//go:build integration

package main

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestIntegrationMetricsPassPromtool scrapes /metrics of an edged that ran
// two pipelines (both with a sink named "out") over the embedded broker and
// checks the exposition with Prometheus' own linter (`promtool check
// metrics`), and that no series is exposed twice.
func TestIntegrationMetricsPassPromtool(t *testing.T) {
	promtool := testkit.Need(t, "promtool (Prometheus' exposition linter)", "sudo apt-get install -y prometheus", "promtool")
	listen := freeAddr(t)
	e := newEdgedProc(t, fmt.Sprintf("storage: {sync: never}\nmqtt:\n  listen: %q\n  clientID: edged-it-metrics\n", listen),
		map[string]string{
			"one": passThrough("one", "1", readingsTopic, "one.jsonl"),
			"two": passThrough("two", "1", readingsTopic, "two.jsonl"),
		})
	e.launch(t)
	e.waitConnected(t)
	publishTo(t, "tcp://"+listen, "it-metrics-pub", nil, 0, 50)
	for _, f := range []string{"one.jsonl", "two.jsonl"} {
		eventually(t, 20*time.Second, func() error { return checkOnce(t, e.readings(t, f), 0, 50) })
	}
	resp, err := apiClient.Get("http://" + e.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nexposition:\n%s", err, out, body)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		series := l[:strings.LastIndexByte(l, ' ')]
		if seen[series] {
			t.Errorf("series %s exposed twice", series)
		}
		seen[series] = true
	}
	for _, want := range []string{`pipeline="one"`, `pipeline="two"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no series labelled %s", want)
		}
	}
	e.term(t)
}
