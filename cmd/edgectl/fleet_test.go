package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

const tempsV1 = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: temps, version: v1}
spec:
  interval: 500ms
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/reading"], qos: 0}
      fields:
        - {name: sensor, type: string}
        - {name: temp, type: number}
  steps:
    - name: sane
      filter: temp > -100
    - name: counts
      input: sane
      updateStateByKey: {key: sensor, value: temp, func: count}
  sinks:
    - {name: out, input: sane, type: file, path: temps.jsonl}
`

// tempsBadV2 reads temp as a boolean: every reading fails to decode.
var tempsBadV2 = strings.NewReplacer("version: v1", "version: v2", "{name: temp, type: number}", "{name: temp, type: bool}",
	"filter: temp > -100", "filter: temp").Replace(tempsV1)

// tempsV3 is a harmless change (a stricter filter).
var tempsV3 = strings.NewReplacer("version: v1", "version: v3", "temp > -100", "temp > -50").Replace(tempsV1)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// running returns the document a node runs for pipeline name ("" if none).
func running(t *testing.T, n *realNode, token, name string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", n.URL+"/api/v1/pipelines/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	if resp.StatusCode == 404 {
		return ""
	}
	return b.String()
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: got %q; want it to contain %q", what, got, w)
		}
	}
}

// TestFleetCommandsAgainstRealEdged runs every pipeline and fleet command
// against two edged processes under live MQTT traffic.
func TestFleetCommandsAgainstRealEdged(t *testing.T) {
	const tok = "fleet-token"
	n0 := startEdged(t, tok, nil)
	n1 := startEdged(t, tok, nil)
	cfg := writeContext(t, tok, n0, n1)
	c := func(args ...string) (int, string, string) {
		t.Helper()
		return ectl(t, append(args, "--config", cfg)...)
	}

	code, out, errs := c("nodes")
	if code != exitOK {
		t.Fatalf("nodes: exit %d, stderr %q", code, errs)
	}
	mustContain(t, "nodes", out, "NODE", "n0 ", "n1 ", "none")

	// Bad input: a pipeline file with errors, found locally and by the node.
	syntax := writeFile(t, "syntax.yaml", "kind: Pipeline\nmetadata:\n  name: x\n   bad: indentation\n")
	code, _, errs = c("apply", "-f", syntax, "--all")
	if code != exitUsage || !strings.Contains(errs, "syntax.yaml:4: ") {
		t.Fatalf("apply of a YAML syntax error: exit %d, stderr %q; want 2 and syntax.yaml:4:", code, errs)
	}
	bad := writeFile(t, "bad.yaml", strings.Replace(tempsV1, "interval: 500ms", "interval: -1s", 1))
	code, _, errs = c("apply", "-f", bad, "--all")
	if code != exitUsage || !strings.Contains(errs, bad+":5:") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("apply of an invalid pipeline: exit %d, stderr %q; want 2 and one line naming %s:5:", code, errs, bad)
	}
	if got := running(t, n0, tok, "temps"); got != "" {
		t.Fatalf("an invalid file was applied: %q", got)
	}
	code, _, errs = c("apply", "-f", writeFile(t, "temps.yaml", tempsV1))
	if code != exitUsage || !strings.Contains(errs, "say which with --node, --site or --all") {
		t.Fatalf("apply to a context of 2 nodes without selection: exit %d, %q", code, errs)
	}

	good := writeFile(t, "temps.yaml", tempsV1)
	code, out, errs = c("apply", "-f", good, "--all")
	if code != exitOK || strings.Count(out, "created") != 2 {
		t.Fatalf("apply: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = c("apply", "-f", good, "--all")
	if code != exitOK || strings.Count(out, "unchanged") != 2 {
		t.Fatalf("apply again: exit %d, stdout %q; want unchanged twice", code, out)
	}
	simulate(t, n0.Broker, "--malformed", "0.1")
	simulate(t, n1.Broker, "--seed", "2")

	code, out, _ = c("diff", "-f", good)
	if code != exitOK || strings.Count(out, "unchanged") != 2 {
		t.Fatalf("diff of the running file: exit %d, %q", code, out)
	}
	code, out, _ = c("diff", "-f", writeFile(t, "temps.yaml", tempsV3), "--site", "site-1")
	if code != exitFailed {
		t.Fatalf("diff of a changed file: exit %d; want 1", code)
	}
	mustContain(t, "diff", out, "n1: temps: changed", "-metadata: {name: temps, version: v1}", "+metadata: {name: temps, version: v3}",
		"     - name: sane\n-      filter: temp > -100\n+      filter: temp > -50\n")
	if strings.Contains(out, "n0") {
		t.Errorf("diff --site site-1 asked n0 too: %q", out)
	}

	code, out, _ = c("get")
	if code != exitOK {
		t.Fatalf("get: exit %d", code)
	}
	mustContain(t, "get", out, "PIPELINE", "n0 ", "n1 ", "temps", "v1", "running")
	code, out, _ = c("get", "temps", "-o", "yaml")
	if code != exitOK || out != tempsV1 {
		t.Fatalf("get temps -o yaml: exit %d, %q; want the applied document once", code, out)
	}
	code, out, _ = c("describe", "temps", "--node", "n1")
	if code != exitOK {
		t.Fatalf("describe: exit %d", code)
	}
	mustContain(t, "describe", out, "node:          n1", "pipeline:      temps", "sources:       readings")

	// Live traffic reaches the rates, the state and the dead letters.
	testkit.Eventually(t, 30*time.Second, func() error {
		_, out, _ := c("nodes", "-o", "json")
		var res struct {
			Nodes []nodeRow `json:"nodes"`
		}
		json.Unmarshal([]byte(out), &res)
		for _, r := range res.Nodes {
			if r.RecordsPerSec <= 0 {
				return fmt.Errorf("node %s: no records/s yet: %s", r.Node, out)
			}
		}
		return nil
	})
	testkit.Eventually(t, 20*time.Second, func() error {
		code, out, errs := c("query", "temps", "--step", "counts")
		if code != exitOK || !strings.Contains(out, "\nn0 ") || !strings.Contains(out, "\nn1 ") {
			return fmt.Errorf("query: exit %d, stdout %q, stderr %q; want rows of both nodes", code, out, errs)
		}
		return nil
	})
	code, out, _ = c("query", "temps", "--step", "counts", "--where", "sensor == 's-0001'", "-o", "json")
	var q struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &q); err != nil || code != exitOK || len(q.Rows) != 2 {
		t.Fatalf("query --where: exit %d, %q; want one row per node", code, out)
	}
	code, _, errs = c("query", "temps")
	if code != exitUsage || !strings.Contains(errs, "--step: required; the steps of temps: sane, counts") {
		t.Fatalf("query without --step: exit %d, %q", code, errs)
	}
	code, _, errs = c("query", "temps", "--step", "nope")
	if code != exitFailed || !strings.Contains(errs, "node n0:") || !strings.Contains(errs, "nope") {
		t.Fatalf("query of an unknown step: exit %d, %q", code, errs)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		code, out, _ := c("deadletters", "list", "--node", "n0")
		if code != exitOK || !strings.Contains(out, "temps") {
			return fmt.Errorf("deadletters list: exit %d, %q", code, out)
		}
		return nil
	})

	code, _, errs = c("deadletters", "replay", "--pipeline", "temps")
	if code != exitUsage || !strings.Contains(errs, "say which with --node, --site or --all") {
		t.Fatalf("replay without a node selection: exit %d, %q", code, errs)
	}
	code, out, errs = c("deadletters", "replay", "--pipeline", "temps", "--node", "n0", "--limit", "5")
	if code != exitOK || !strings.Contains(out, "n0: 5 replayed, 0 skipped") {
		t.Fatalf("deadletters replay: exit %d, stdout %q, stderr %q; want 5 replayed", code, out, errs)
	}

	code, out, _ = c("partitions")
	if code != exitOK || strings.Count(out, "no mesh on this node") != 2 {
		t.Fatalf("partitions: exit %d, %q", code, out)
	}
	code, _, errs = c("drain", "n0")
	if code != exitFailed || !strings.Contains(errs, "node n0: no mesh on this node") {
		t.Fatalf("drain: exit %d, %q", code, errs)
	}
	code, out, _ = c("status", "n0")
	if code != exitOK {
		t.Fatalf("status: exit %d", code)
	}
	mustContain(t, "status", out, "node:         n0", "PIPELINE", "temps", "partitions:   no mesh")
	code, out, _ = c("top", "--iterations", "2", "--interval", "10ms")
	if code != exitOK || strings.Count(out, "edgectl top") != 2 {
		t.Fatalf("top: exit %d, %q", code, out)
	}
	code, out, _ = c("uplink", "status")
	if code != exitOK || !strings.Contains(out, "no uplink sinks") {
		t.Fatalf("uplink status: exit %d, %q", code, out)
	}

	// Bad input: wrong token, unknown context, unreachable node.
	code, _, errs = ectl(t, "nodes", "--node", n0.URL, "--token", "wrong")
	if code != exitFailed || !strings.Contains(errs, "wrong or missing token (401)") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("wrong token: exit %d, %q", code, errs)
	}
	code, _, errs = c("nodes", "--context", "nope")
	if code != exitUsage || !strings.Contains(errs, `no context "nope"`) {
		t.Fatalf("unknown context: exit %d, %q", code, errs)
	}
	dead := "http://" + freeAddr(t)
	code, out, errs = c("nodes", "--node", "n0", "--node", dead)
	if code != exitPartial || !strings.Contains(errs, "unreachable") || !strings.Contains(out, "n0 ") {
		t.Fatalf("a dead node: exit %d, stdout %q, stderr %q; want 3, n0 listed, the dead one named", code, out, errs)
	}

	code, out, _ = c("delete", "temps", "--all")
	if code != exitOK || strings.Count(out, "deleted") != 2 {
		t.Fatalf("delete: exit %d, %q", code, out)
	}
	code, _, errs = c("get", "temps")
	if code != exitFailed || !strings.Contains(errs, `no pipeline "temps"`) {
		t.Fatalf("get after delete: exit %d, %q", code, errs)
	}
}

// TestRolloutCanaryFailureRollsBack rolls out a version whose every reading
// fails to decode: the canary is watched, found failing, rolled back to the
// version it ran, and the other node never gets the bad version. A harmless
// version then rolls out everywhere.
func TestRolloutCanaryFailureRollsBack(t *testing.T) {
	const tok = "t"
	n0 := startEdged(t, tok, map[string]string{"temps": tempsV1})
	n1 := startEdged(t, tok, map[string]string{"temps": tempsV1})
	cfg := writeContext(t, tok, n0, n1)
	simulate(t, n0.Broker)
	simulate(t, n1.Broker, "--seed", "3")

	code, out, errs := ectl(t, "rollout", "-f", writeFile(t, "temps.yaml", tempsBadV2), "--all", "--canary", "n0",
		"--watch", "8s", "--config", cfg)
	if code != exitFailed {
		t.Fatalf("rollout of a bad version: exit %d; want 1\nstdout %s\nstderr %s", code, out, errs)
	}
	mustContain(t, "rollout stdout", out, "canary n0 failed", "dead-lettered", "rolled back", "0 of 2 nodes updated")
	mustContain(t, "rollout stderr", errs, "rolled n0 back to the previous version")
	if got := running(t, n0, tok, "temps"); got != tempsV1 {
		t.Fatalf("canary runs %q after the rollback; want v1", got)
	}
	if got := running(t, n1, tok, "temps"); got != tempsV1 {
		t.Fatalf("n1 runs %q; want v1 (never touched)", got)
	}

	code, out, errs = ectl(t, "rollout", "-f", writeFile(t, "temps.yaml", tempsV3), "--all", "--watch", "3s",
		"--min-records", "1", "--config", cfg)
	if code != exitOK {
		t.Fatalf("rollout of a good version: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	mustContain(t, "rollout", out, "2 of 2 nodes updated")
	mustContain(t, "rollout progress", errs, "canary n0 healthy", "rollout temps [1/1] n1 ok")
	for _, n := range []*realNode{n0, n1} {
		if got := running(t, n, tok, "temps"); got != tempsV3 {
			t.Fatalf("%s runs %q; want v3", n.URL, got)
		}
	}
}
