package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeInfo is a node answering /api/v1/info after delay; a negative delay
// never answers (until the client gives up).
func fakeInfo(t *testing.T, delay time.Duration, recs float64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/info" {
			http.NotFound(w, r)
			return
		}
		if delay < 0 {
			<-r.Context().Done() // a hung node: answers nothing
			return
		}
		select {
		case <-time.After(delay): // the node's own response time
		case <-r.Context().Done():
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "version": "v1.2.0", "uptimeSeconds": 3600,
			"recordsPerSec": recs, "status": map[string]any{"ready": true, "pipelines": []any{}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestNodesFanOutWaitsOnlyForTheSlowestAnswer asks 20 nodes, two of which
// hang: the 18 answer, the two are named in one line each, the result is
// partial (exit 3), and the whole takes about one --timeout, not the sum.
func TestNodesFanOutWaitsOnlyForTheSlowestAnswer(t *testing.T) {
	var args []string
	hung := map[string]bool{}
	for i := range 20 {
		delay := 100 * time.Millisecond
		if i == 3 || i == 17 {
			delay = -1
		}
		srv := fakeInfo(t, delay, float64(i))
		if delay < 0 {
			hung[strings.TrimPrefix(srv.URL, "http://")] = true
		}
		args = append(args, "--node", srv.URL)
	}
	const timeout = 1500 * time.Millisecond
	start := time.Now()
	code, out, errs := ectl(t, append([]string{"nodes", "--timeout", timeout.String(), "-o", "json"}, args...)...)
	elapsed := time.Since(start)
	if code != exitPartial {
		t.Fatalf("exit %d; want 3 (partial)\n%s", code, errs)
	}
	if elapsed > timeout+time.Second {
		t.Fatalf("took %v; want about one timeout (%v): nodes must be asked in parallel", elapsed, timeout)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) != 3 { // two nodes + the partial summary
		t.Fatalf("stderr %q; want one line per hung node and the summary", errs)
	}
	for h := range hung {
		if !strings.Contains(errs, "node "+h+": no answer within 1.5s") {
			t.Errorf("stderr %q does not name hung node %s", errs, h)
		}
	}
	var res struct {
		Nodes   []nodeRow `json:"nodes"`
		Partial bool      `json:"partial"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	answered := 0
	for _, r := range res.Nodes {
		if r.Error == "" {
			answered++
		}
	}
	if answered != 18 || !res.Partial {
		t.Fatalf("%d nodes answered (partial=%v); want 18 and partial", answered, res.Partial)
	}
}

// BenchmarkNodes20 is `edgectl nodes` against 20 in-process API servers
// that each take 50 ms to answer: the figure is the slowest answer plus the
// fan-out overhead.
func BenchmarkNodes20(b *testing.B) {
	var args []string
	for range 20 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(50 * time.Millisecond) // the node's response time
			fmt.Fprint(w, `{"apiVersion":"v1","version":"v1","status":{"ready":true,"pipelines":[]}}`)
		}))
		defer srv.Close()
		args = append(args, "--node", srv.URL)
	}
	for b.Loop() {
		if code, _, errs := ectl2(append([]string{"nodes"}, args...)...); code != 0 {
			b.Fatal(errs)
		}
	}
}

func ectl2(args ...string) (int, string, string) {
	var out, errb strings.Builder
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestIncompatibleNodeIsNamed(t *testing.T) {
	old := httptest.NewServer(http.NotFoundHandler()) // an edged without /api/v1/info
	defer old.Close()
	future := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"apiVersion":"v2"}`)
	}))
	defer future.Close()
	code, _, errs := ectl(t, "nodes", "--node", old.URL, "--node", future.URL)
	if code != exitFailed {
		t.Fatalf("exit %d; want 1", code)
	}
	mustContain(t, "stderr", errs, "incompatible API: the node has no /api/v1/info", `incompatible API version "v2"`)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n%s", path, unifiedDiff(path, "got", string(want), got))
	}
	for i, line := range strings.Split(got, "\n") {
		if k := len([]rune(line)); k > 80 {
			t.Errorf("%s line %d is %d columns wide; want at most 80: %q", name, i+1, k, line)
		}
	}
}

func TestNodesTableGolden(t *testing.T) {
	two := 2
	rows := []nodeRow{
		{Node: "gw-hall-a-01", Version: "v0.9.0", UptimeSeconds: 3*86400 + 5, Pipelines: 4, RecordsPerSec: 1234.5,
			MaxLagSeconds: 1.2, SpoolDepth: 12, Uplink: "ok", DiskUsedBytes: 300 << 20, DiskQuota: 1 << 30},
		{Node: "gw-hall-a-02", Version: "v0.9.0-12-gabcdef-dirty", UptimeSeconds: 95, Pipelines: 4, RecordsPerSec: 0.5,
			MaxLagSeconds: 75, Uplink: "failing", DiskUsedBytes: 1 << 20, Conditions: 2},
		{Node: "gw-hall-b-01", Version: "v0.9.0", UptimeSeconds: 7200, Pipelines: 1, RecordsPerSec: 25000,
			Uplink: "none", DiskUsedBytes: 512, Partitions: &two},
		{Node: "gw-yard-very-long-name-07", Error: "unreachable"},
	}
	var b strings.Builder
	writeNodes(&b, rows)
	golden(t, "nodes.golden", b.String())
}

func TestStatusGolden(t *testing.T) {
	var info nodeInfo
	if err := json.Unmarshal([]byte(`{"apiVersion":"v1","version":"v0.9.0","hostname":"gw1","uptimeSeconds":4000,
"recordsPerSec":250,"rates":{"etl":{"inPerSec":250,"latePerSec":1.5,"invalidPerSec":0.2}},
"status":{"ready":true,"pipelines":[{"name":"etl","version":"v3","epoch":4321,"epochLagSeconds":0.4,"inputBacklog":{"readings":12}},
{"name":"alerts","epoch":4320,"epochLagSeconds":1,"lastError":"sink out: disk full"}],
"storage":{"usedBytes":104857600,"quotaBytes":1073741824,"deadLetters":7},
"sinks":[{"name":"etl/clean","spoolDepth":3}],"conditions":["pipeline alerts: last epoch failed: sink out: disk full"]}}`), &info); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeStatus(&b, target{Name: "gw1", URL: "http://10.0.0.1:8080"}, info)
	golden(t, "status.golden", b.String())
}

// edgectl status shows the mesh: its members, whether the pipeline set
// converged, the versions that lost a conflict and those not run here.
func TestStatusShowsTheMesh(t *testing.T) {
	var info nodeInfo
	if err := json.Unmarshal([]byte(`{"mesh":true,"partitions":21,"status":{"ready":true,"pipelines":[],
"mesh":{"name":"gw1","members":[{"name":"gw1","state":"alive","owns":21,"standby":22,"self":true},
{"name":"gw2","state":"suspect","owns":22,"standby":21},{"name":"gw3","state":"alive","owns":21,"standby":21,"draining":true}],
"pipelines":{"node":"gw1","digest":"0a1b2c3d4e5f6071","converged":false,
"pipelines":[{"name":"etl","version":3,"hash":"ab","node":"gw2"},{"name":"alerts","version":2,"hash":"cd","node":"gw1","failed":"alerts.yaml:7: steps[0].window: unknown key"}],
"lost":[{"pipeline":"etl","lost":"v2 (sha256 0123456789ab by gw1)","lostNode":"gw1","winner":"v3 (sha256 ba9876543210 by gw2)","winnerNode":"gw2","at":"2026-12-06T10:00:00Z"}]}}}}`), &info); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeStatus(&b, target{Name: "gw1", URL: "http://10.0.0.1:8080"}, info)
	mustContain(t, "status", b.String(),
		"mesh:         3 members: gw1 (21 owned, 22 standby), gw2 (22 owned, 21 standby, suspect), gw3 (21 owned, 21 standby, draining)",
		"pipeline set: 2 pipelines, digest 0a1b2c3d4e5f6071, NOT converged",
		"alerts version 2 (by gw1) NOT RUN here: alerts.yaml:7: steps[0].window: unknown key",
		"etl: conflict: v2 (sha256 0123456789ab by gw1) lost to v3 (sha256 ba9876543210 by gw2)")

	info.Status.Mesh.Incompatible = "another mesh.key"
	b.Reset()
	writeStatus(&b, target{Name: "gw1", URL: "http://10.0.0.1:8080"}, info)
	mustContain(t, "refused", b.String(), "mesh:         REFUSED by the site, emits nothing: another mesh.key")
}

func TestConfigContexts(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "edgectl", "config.yaml")
	steps := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"config", "get-contexts"}, 0, "no contexts"},
		{[]string{"config", "set-context", "prod", "--site", "hall-a", "--node", "https://10.0.1.11:8080", "--node-name", "gw1", "--token", "s3cret"}, 0, `context "prod": 1 nodes`},
		{[]string{"config", "set-context", "prod", "--site", "hall-a", "--node", "https://10.0.1.12:8080"}, 0, `context "prod": 2 nodes`},
		{[]string{"config", "set-context", "lab", "--node", "http://127.0.0.1:8080"}, 0, `context "lab": 1 nodes`},
		{[]string{"config", "set-context", "lab", "--node", "127.0.0.1:8080"}, 2, "want a URL like"},
		{[]string{"config", "current-context"}, 0, "prod\n"},
		{[]string{"config", "use-context", "nope"}, 2, `no context "nope"`},
		{[]string{"config", "use-context", "lab"}, 0, `switched to context "lab"`},
		{[]string{"config", "get-contexts"}, 0, "*        lab"},
		{[]string{"config", "view"}, 0, "token: REDACTED"},
	}
	for _, s := range steps {
		code, out, errs := ectl(t, append(s.args, "--config", cfg)...)
		if code != s.wantCode || !strings.Contains(out+errs, s.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %d and %q", s.args, code, out, errs, s.wantCode, s.want)
		}
	}
	if data, _ := os.ReadFile(cfg); !strings.Contains(string(data), "s3cret") {
		t.Fatalf("the token was not saved: %s", data)
	}
	// Resolution: names, sites, the write-guard and unknown keys.
	g := &globals{configFlag: cfg, contextFlag: "prod", timeout: time.Second, parallel: 1}
	g.site = "hall-a"
	ts, err := g.resolve(true)
	if err != nil || len(ts) != 2 || ts[0].Name != "gw1" || ts[0].Token != "s3cret" || ts[1].Name != "10.0.1.12:8080" {
		t.Fatalf("--site hall-a: %+v, %v", ts, err)
	}
	g.site = ""
	if _, err := g.resolve(true); err == nil || !strings.Contains(err.Error(), "say which with --node, --site or --all") {
		t.Fatalf("a write to a 2-node context without a selection: %v", err)
	}
	os.WriteFile(cfg, []byte("contexts:\n  - name: x\n    nodez: []\n"), 0o600)
	code, _, errs := ectl(t, "nodes", "--config", cfg)
	if code != exitUsage || !strings.Contains(errs, "nodez") || !strings.Contains(errs, cfg) {
		t.Fatalf("unknown key: exit %d, %q; want 2 naming the file and the key", code, errs)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, _ := ectl(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "rollout") || !strings.Contains(out, "get-contexts") {
			t.Errorf("completion %s: exit %d, %q", sh, code, out)
		}
	}
	if code, _, _ := ectl(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh: exit %d; want 2", code)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
	b := "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	got := unifiedDiff("x", "y", a, b)
	want := "--- x\n+++ y\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if unifiedDiff("x", "y", a, a) != "" {
		t.Fatal("equal texts differ")
	}
}
