package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// scrape returns the node's /metrics text.
func scrape(t *testing.T, n *Node) string {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	n.WriteMetrics(w)
	w.Flush()
	return b.String()
}

// examplesNode runs the four example pipelines of configs/ with the embedded
// broker on a free port.
func examplesNode(t *testing.T) *testNode {
	t.Helper()
	pipes := map[string]string{}
	files, _ := filepath.Glob("../configs/pipelines/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pipes[strings.TrimSuffix(filepath.Base(f), ".yaml")] = string(b)
	}
	cfg := testConfig(t, t.TempDir(), pipes)
	cfg.MQTT.Listen = "127.0.0.1:0"
	var out bytes.Buffer
	return startNode(t, cfg, newFakeClock(t0), WithStdout(&out))
}

// families parses an exposition: the families in order of their HELP line,
// and the series (name with labels) of each sample. It fails the test on a
// family whose samples are not all in its own group, or whose HELP or TYPE
// comes twice.
func families(t *testing.T, text string) (names []string, series []string) {
	t.Helper()
	seen := map[string]bool{}
	cur := ""
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		switch {
		case strings.HasPrefix(l, "# HELP "):
			name := strings.Fields(l)[2]
			if seen[name] {
				t.Errorf("family %s: a second HELP line (families must be one group)", name)
			}
			seen[name], cur = true, name
			names = append(names, name)
		case strings.HasPrefix(l, "# TYPE "):
			if name := strings.Fields(l)[2]; name != cur {
				t.Errorf("TYPE of %s outside its group (after HELP of %s)", name, cur)
			}
		default:
			s, _, _ := strings.Cut(l, " ")
			name, _, _ := strings.Cut(s, "{")
			if name != cur {
				t.Errorf("sample %q outside its family's group (current family %s)", l, cur)
			}
			series = append(series, s)
		}
	}
	return names, series
}

func promtool(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsExpositionIsStrictAndCompleteFromStartUp scrapes a node running
// the example pipelines at start-up and after input: promtool accepts both,
// every family is one group, and no series appears that was not there at
// start-up (with zero values), so dashboards and alerts see every series
// from the first scrape.
func TestMetricsExpositionIsStrictAndCompleteFromStartUp(t *testing.T) {
	tn := examplesNode(t)
	first := scrape(t, tn.Node)
	promtool(t, first)
	names, atStart := families(t, first)
	for _, want := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_cpu_seconds_total", "edged_step_records_unmatched_total", "edged_mqtt_connected"} {
		if !slices.Contains(names, want) {
			t.Errorf("no family %s at start-up", want)
		}
	}

	ts := t0.UnixMilli()
	var msgs []Message
	for i := range 20 {
		sensor := fmt.Sprintf("s-%04d", i%4)
		if i%4 == 3 {
			sensor = "s-9999" // not in the device table: the inner join drops it
		}
		msgs = append(msgs, msg("sensors/"+sensor+"/reading", fmt.Sprintf(`{"sensor":%q,"ts":%d,"temp":21.5,"hum":40}`, sensor, ts+int64(i)*100)))
		msgs = append(msgs, msg("machines/lathe-1/power", fmt.Sprintf(`{"ts":%d,"watts":600}`, ts+int64(i)*100)))
	}
	msgs = append(msgs, msg("sensors/s-0001/reading", "not json"))
	if err := tn.Ingest(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "enrichment")
	second := scrape(t, tn.Node)
	promtool(t, second)
	_, after := families(t, second)
	for _, s := range after {
		if !slices.Contains(atStart, s) {
			t.Errorf("series %s appeared after start-up", s)
		}
	}
	if !regexp.MustCompile(`edged_step_records_unmatched_total\{pipeline="enrichment",step="devices"\} 5\n`).MatchString(second) {
		t.Errorf("unmatched records of the enrichment join not counted:\n%s", grepLines(second, "unmatched"))
	}
	st, err := tn.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Conditions, func(c string) bool {
		return strings.Contains(c, "pipeline enrichment: step devices dropped 5 records whose key has no row in its table")
	}) {
		t.Errorf("status conditions %q lack the dropped join records", st.Conditions)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestGrafanaDashboardNamesOnlyExistingMetrics: every metric a query of the
// dashboard in configs/grafana names is a family edged exposes.
func TestGrafanaDashboardNamesOnlyExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile("../configs/grafana/edged-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	names, _ := families(t, scrape(t, examplesNode(t).Node))
	metric := regexp.MustCompile(`\b(?:edged|go|process)_[a-z0-9_]+\b`)
	checked := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				checked++
				if !slices.Contains(names, m) {
					t.Errorf("panel %q: query %q names %s, which edged does not expose", p.Title, tg.Expr, m)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d metric names; the dashboard should show at least 20", checked)
	}
}

// TestQueryOfEmptyStateHasEmptyColumnList: a step without state yet answers
// "columns": [] (not null), so clients can iterate it.
func TestQueryOfEmptyStateHasEmptyColumnList(t *testing.T) {
	tn := startNode(t, testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline}), newFakeClock(t0))
	res, err := tn.pipeByName("t1").query("totals", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"columns":[]`) || !strings.Contains(string(b), `"rows":[]`) {
		t.Errorf("got %s; want empty column and row lists", b)
	}
}
