package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt"
	"github.com/edgedio/edged/ingest/source"
	"github.com/edgedio/edged/storage"
)

const pushPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: push}
spec:
  interval: 1s
  sources:
    - name: readings
      http: {maxBodyBytes: 400}
      fields: [{name: sensor, type: string}, {name: v, type: number}]
    - name: other
      mqtt: {topics: ["#"]}
      fields: [{name: sensor, type: string}, {name: v, type: number}]
  steps: []
  sinks:
    - {name: out, input: readings, type: file, path: push.jsonl}
`

func post(t *testing.T, h http.Handler, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestHTTPPushAcceptsLinesDurablyAndDeadLettersBadOnes: an HTTP push logs
// the good lines (and says how many), drops a line repeated from a recent
// push, stores malformed lines as dead letters naming their line, answers
// with the same bearer token as the rest of the API, and refuses what it
// cannot take with a status and a message that say why.
func TestHTTPPushAcceptsLinesDurablyAndDeadLettersBadOnes(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"push": pushPipeline})
	cfg.API.Token = "tok"
	cfg.MQTT.Brokers = []string{"tcp://127.0.0.1:9"} // MQTT on (handleMQTT is called directly), never connected
	tn := startNode(t, cfg, newFakeClock(t0))
	h := tn.Handler()
	const path = "/api/v1/ingest/push/readings"

	code, body := post(t, h, path, "tok", "{\"sensor\":\"a\",\"v\":1}\r\n\n{\"sensor\":\"b\",\"v\":2}\n{bad\n42\n")
	var res PushResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("push: %d %s", code, body)
	}
	if res.Accepted != 2 || res.Duplicates != 0 || res.DeadLettered != 2 || len(res.Errors) != 2 ||
		!strings.HasPrefix(res.Errors[0], "line 4: not valid JSON") || !strings.HasPrefix(res.Errors[1], "line 5: not a JSON object") {
		t.Fatalf("push result %+v; want 2 accepted, lines 4 and 5 dead-lettered", res)
	}
	// A retry of a line already logged is dropped; a new one is logged.
	code, body = post(t, h, path, "tok", "{\"sensor\":\"b\",\"v\":2}\n{\"sensor\":\"c\",\"v\":3}")
	if code != 200 || !strings.Contains(body, `"accepted": 1`) || !strings.Contains(body, `"duplicates": 1`) {
		t.Fatalf("second push: %d %s; want 1 accepted, 1 duplicate", code, body)
	}
	dls, err := tn.DB().ListDeadLetters(storage.DeadLetterFilter{Pipeline: "push"}, 0)
	if err != nil || len(dls) != 2 || string(dls[0].Payload) != "{bad" || !strings.Contains(dls[0].Reason, "line 4") || dls[0].Source != "readings" {
		t.Fatalf("dead letters %+v, %v; want the two bad lines", dls, err)
	}
	tn.epoch(t, "push")
	lines := waitLines(t, filepath.Join(cfg.outputDir(), "push.jsonl"), 3)
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprint(l["sensor"], l["v"]))
	}
	if !slices.Equal(got, []string{"a1", "b2", "c3"}) {
		t.Fatalf("sink %q; want a1 b2 c3", got)
	}

	for _, tt := range []struct {
		path, token, body string
		code              int
		want              string
	}{
		{path, "", `{"v":1}`, 401, "bearer token"},
		{path, "wrong", `{"v":1}`, 401, "bearer token"},
		{"/api/v1/ingest/nope/readings", "tok", `{"v":1}`, 404, `pipeline \"nope\" does not exist`},
		{"/api/v1/ingest/push/nope", "tok", `{"v":1}`, 404, `has no source \"nope\" (its sources with an http: block: readings)`},
		{"/api/v1/ingest/push/other", "tok", `{"v":1}`, 404, "does not accept HTTP push"},
		{path, "tok", "\n \n", 400, "empty body"},
		{path, "tok", strings.Repeat(`{"v":1}`+"\n", 100), 413, "body over 400 bytes"},
	} {
		code, body := post(t, h, tt.path, tt.token, tt.body)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("POST %s (token %q): %d %s; want %d with %q", tt.path, tt.token, code, body, tt.code, tt.want)
		}
	}
	// MQTT clients cannot write the push source's topic.
	before := tn.logNext(LogMQTT)
	if err := tn.handleMQTT(context.Background(), []mqtt.Message{{Topic: "$src/http/push/readings", Payload: []byte(`{"v":9}`)}}); err != nil {
		t.Fatal(err)
	}
	if tn.logNext(LogMQTT) != before {
		t.Fatal("an MQTT message under $src/ reached the input log")
	}
	var m strings.Builder
	w := bufio.NewWriter(&m)
	tn.WriteMetrics(w)
	w.Flush()
	for _, want := range []string{`edged_source_records_total{source="http/push/readings"} 3`,
		`edged_source_duplicates_total{source="http/push/readings"} 1`, `edged_source_dead_letters_total{source="http/push/readings"} 2`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

const tailPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: logs}
spec:
  interval: 1s
  sources:
    - name: app
      format: raw
      file: {path: %q, poll: 10ms}
      fields: [{name: payload, type: string}]
  steps: []
  sinks:
    - {name: out, input: app, type: file, path: lines.jsonl}
`

// TestFileTailThroughTheNodeSurvivesRestarts: a file source's lines reach
// the sink (a repeated line too: the position, not the log's dedup, keeps
// lines from being logged twice); the node stops while a line is half
// written and more lines follow; after the restart every line is in the
// sink once, in order.
func TestFileTailThroughTheNodeSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logFile, []byte("l1\nl2\nl2\nl3-ha"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, map[string]string{"logs": fmt.Sprintf(tailPipeline, logFile)})
	out := filepath.Join(cfg.outputDir(), "lines.jsonl")
	clock := newFakeClock(t0)
	tn := startNode(t, cfg, clock)
	eventually(t, 10*time.Second, func() error {
		if k := tn.logNext(LogMQTT) - 1; k != 3 {
			return fmt.Errorf("%d lines logged; want 3 (l3 is partial)", k)
		}
		return nil
	})
	tn.epoch(t, "logs")
	waitLines(t, out, 3)
	tn.stop(t)

	appendTo(t, logFile, "lf\nl4\n")
	tn = startNode(t, cfg, clock)
	eventually(t, 10*time.Second, func() error {
		if k := tn.logNext(LogMQTT) - 1; k != 5 {
			return fmt.Errorf("%d lines logged; want 5", k)
		}
		return nil
	})
	tn.epoch(t, "logs")
	var got []string
	for _, l := range waitLines(t, out, 5) {
		got = append(got, fmt.Sprint(l["payload"]))
	}
	if !slices.Equal(got, []string{"l1", "l2", "l2", "l3-half", "l4"}) {
		t.Fatalf("sink %q; want l1 l2 l2 l3-half l4", got)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// counter is a custom source: it writes readings n = pos+1, pos+2, ... with
// its position, up to max, then waits for ctx.
type counter struct {
	max  int
	mu   sync.Mutex
	errs []error
}

func (c *counter) Run(ctx context.Context, w source.Writer) error {
	next := 1
	if p := w.Position(); p != nil {
		k, err := strconv.Atoi(string(p))
		if err != nil {
			return err
		}
		next = k + 1
	}
	for ; next <= c.max; next++ {
		err := w.Write(ctx, [][]byte{fmt.Appendf(nil, `{"n":%d}`, next)}, strconv.AppendInt(nil, int64(next), 10))
		if err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
			return err
		}
	}
	<-ctx.Done()
	return nil
}

const customPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: counts}
spec:
  interval: 1s
  sources:
    - name: c
      custom: counter
      fields: [{name: n, type: number}]
  steps: []
  sinks:
    - {name: out, input: c, type: file, path: counts.jsonl}
`

// TestCustomSourceResumesFromItsPosition: a registered source's payloads
// reach the pipeline that names it; after a restart it resumes from the
// position committed with its last payload (no number lost or repeated); a
// pipeline naming an unregistered source is refused with the names that
// are registered.
func TestCustomSourceResumesFromItsPosition(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"counts": customPipeline})
	out := filepath.Join(cfg.outputDir(), "counts.jsonl")
	clock := newFakeClock(t0)
	tn := startNode(t, cfg, clock, WithSource("counter", &counter{max: 5}))
	eventually(t, 10*time.Second, func() error {
		if k := tn.logNext(LogMQTT) - 1; k != 5 {
			return fmt.Errorf("%d logged; want 5", k)
		}
		return nil
	})
	tn.stop(t)
	if m, _ := openMark(t, dir, "custom/counter"); m != "5" {
		t.Fatalf("committed position %q; want 5", m)
	}
	tn = startNode(t, cfg, clock, WithSource("counter", &counter{max: 8}))
	eventually(t, 10*time.Second, func() error {
		if k := tn.logNext(LogMQTT) - 1; k != 8 {
			return fmt.Errorf("%d logged; want 8", k)
		}
		return nil
	})
	tn.epoch(t, "counts")
	var got []string
	for _, l := range waitLines(t, out, 8) {
		got = append(got, fmt.Sprint(l["n"]))
	}
	if !slices.Equal(got, strings.Fields("1 2 3 4 5 6 7 8")) {
		t.Fatalf("sink %q; want 1..8 once each", got)
	}
	tn.stop(t)

	// Applied through the API: 400, naming the source.
	tn = startNode(t, testConfig(t, t.TempDir(), nil), clock)
	req := httptest.NewRequest("PUT", "/api/v1/pipelines/counts", strings.NewReader(customPipeline))
	rec := httptest.NewRecorder()
	tn.Handler().ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `custom: \"counter\" is not a source this program registered`) {
		t.Fatalf("apply with an unregistered custom source: %d %s; want 400 naming it", rec.Code, rec.Body.String())
	}
	tn.stop(t)

	n, err := New(cfg, WithSource("meter", &counter{}))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `custom: "counter" is not a source this program registered (node.WithSource); meter are`) {
		t.Fatalf("Run with an unregistered custom source: %v", err)
	}
}

// openMark reads a source mark from the node's storage (node stopped).
func openMark(t *testing.T, dir, key string) (string, error) {
	t.Helper()
	db, err := storage.Open(filepath.Join(dir, "edged.db"), storage.DefaultOptions())
	if err != nil {
		return "", err
	}
	defer db.Close()
	m, err := db.Mark(key)
	return string(m), err
}

// TestCustomSourceWithoutReaderIsRefused: a source that no pipeline reads
// gets ErrUnread and writes nothing (its payloads would be read by no one).
func TestCustomSourceWithoutReaderIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{})
	c := &counter{max: 1}
	tn := startNode(t, cfg, newFakeClock(t0), WithSource("counter", c))
	eventually(t, 10*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.errs) == 0 || !errors.Is(c.errs[0], source.ErrUnread) {
			return fmt.Errorf("errors %v; want ErrUnread", c.errs)
		}
		return nil
	})
	if k := tn.logNext(LogMQTT); k != 1 {
		t.Fatalf("log next %d; want nothing logged", k)
	}
	eventually(t, 10*time.Second, func() error {
		st, err := tn.Status()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(st.Conditions, func(c string) bool {
			return strings.Contains(c, "source custom/counter: failing") && strings.Contains(c, "no pipeline reads this source")
		}) {
			return fmt.Errorf("conditions %q; want the failing source", st.Conditions)
		}
		return nil
	})
}
