package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIAuth(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	cfg.API.Token = "s3cret"
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	tests := []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 401},
		{"/metrics", "wrong", 401},
		{"/metrics", "s3cret", 200},
		{"/api/v1/status", "", 401},
		{"/api/v1/status", "s3cret", 200},
		{"/api/v1/pipelines", "s3cret", 200},
	}
	for _, tt := range tests {
		if code, body := do(t, "GET", srv.URL+tt.path, tt.token, ""); code != tt.want {
			t.Errorf("GET %s with token %q: got %d (%s); want %d", tt.path, tt.token, code, body, tt.want)
		}
	}
}

func TestConfigRequiresTokenOffLoopback(t *testing.T) {
	tests := []struct {
		listen, token string
		wantErr       string
	}{
		{"127.0.0.1:8080", "", ""},
		{"[::1]:8080", "", ""},
		{"localhost:8080", "", ""},
		{"0.0.0.0:8080", "", "api.token"},
		{":8080", "", "api.token"},
		{"192.168.1.5:8080", "t", ""},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.API.Listen, cfg.API.Token = tt.listen, tt.token
		err := cfg.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("listen %q token %q: got %v; want error containing %q", tt.listen, tt.token, err, tt.wantErr)
		}
	}
}

func TestAPIApplyGetDelete(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()

	bad := strings.Replace(testPipeline, "name: t1", "name: t2", 1)
	bad = strings.Replace(bad, "filter: temp > -100", "filter: nosuch > 1", 1)
	bad = strings.Replace(bad, "input: valid\n      updateStateByKey: {key: sensor, value: temp", "input: readings\n      updateStateByKey: {key: sensor, value: alsomissing", 1)
	code, body := do(t, "PUT", srv.URL+"/api/v1/pipelines/t2", "", bad)
	var ae apiError
	json.Unmarshal([]byte(body), &ae)
	if code != 400 || len(ae.Errors) < 2 || !strings.Contains(body, "nosuch") || !strings.Contains(body, "alsomissing") {
		t.Errorf("apply invalid: got %d %s; want 400 listing both errors", code, body)
	}
	if strings.Contains(body, cfg.PipelinesDir) || !strings.Contains(body, "t2.yaml:13:") {
		t.Errorf("apply invalid: %s; want the problems located in t2.yaml, not in a file on the node", body)
	}
	if _, err := os.Stat(filepath.Join(cfg.PipelinesDir, "t2.yaml")); !os.IsNotExist(err) {
		t.Errorf("invalid pipeline was written: %v", err)
	}
	code, body = do(t, "PUT", srv.URL+"/api/v1/pipelines/other", "", testPipeline)
	if code != 400 || !strings.Contains(body, "metadata.name") {
		t.Errorf("apply with mismatched name: got %d %s; want 400 naming metadata.name", code, body)
	}

	good := strings.Replace(testPipeline, "name: t1", "name: t2", 1)
	good = strings.ReplaceAll(good, ".jsonl", "-t2.jsonl")
	if code, body := do(t, "PUT", srv.URL+"/api/v1/pipelines/t2", "", good); code != 201 {
		t.Fatalf("apply new: got %d %s; want 201", code, body)
	}
	if code, body := do(t, "GET", srv.URL+"/api/v1/pipelines/t2", "", ""); code != 200 || body != good {
		t.Errorf("get: got %d %q; want 200 and the applied document", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.PipelinesDir, "t2.yaml")); err != nil || string(b) != good {
		t.Errorf("applied file: got %q, %v; want the document", b, err)
	}
	// Re-apply (hot swap) keeps the state.
	if err := tn.Ingest(context.Background(), []Message{msg("sensors/a/temp", `{"sensor":"a","temp":5}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "t2")
	if code, body := do(t, "PUT", srv.URL+"/api/v1/pipelines/t2", "", good+"# v2\n"); code != 200 {
		t.Fatalf("re-apply: got %d %s; want 200", code, body)
	}
	// Restored: the epoch, then the old version's state commit at its stop.
	if e := tn.pipeByName("t2").r.Epoch(); e != 2 {
		t.Errorf("epoch after hot swap: got %d; want 2 (restored)", e)
	}
	if code, body := do(t, "DELETE", srv.URL+"/api/v1/pipelines/t2", "", ""); code != 200 {
		t.Errorf("delete: got %d %s; want 200", code, body)
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/pipelines/t2", "", ""); code != 404 {
		t.Errorf("get after delete: got %d; want 404", code)
	}
	if _, err := os.Stat(filepath.Join(cfg.PipelinesDir, "t2.yaml")); !os.IsNotExist(err) {
		t.Errorf("file after delete: %v; want it removed", err)
	}
}

func TestAPIQuery(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	ctx := context.Background()
	if err := tn.Ingest(ctx, []Message{
		msg("sensors/a/temp", `{"sensor":"a","temp":1}`),
		msg("sensors/b/temp", `{"sensor":"b","temp":20}`),
		msg("sensors/a/temp", `{"sensor":"a","temp":2}`),
	}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "t1")

	var res QueryResult
	code, body := do(t, "GET", srv.URL+"/api/v1/query?pipeline=t1&step=totals", "", "")
	if code != 200 {
		t.Fatalf("query: got %d %s", code, body)
	}
	json.Unmarshal([]byte(body), &res)
	rows := []string{}
	for _, r := range res.Rows {
		var b bytes.Buffer
		json.Compact(&b, r)
		rows = append(rows, b.String())
	}
	if got, want := strings.Join(rows, " "), `{"sensor":"a","state":3} {"sensor":"b","state":20}`; got != want || res.Epoch != 1 {
		t.Errorf("query rows: got %s at epoch %d; want %s at epoch 1", got, res.Epoch, want)
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/query?pipeline=t1&step=totals&filter=state+%3E+10", "", "")
	if code != 200 || !strings.Contains(body, `"b"`) || strings.Contains(body, `"a"`) {
		t.Errorf("filtered query: got %d %s; want only sensor b", code, body)
	}
	tests := []struct {
		query, want string
		code        int
	}{
		{"step=totals", "parameter pipeline", 400},
		{"pipeline=t1", "parameter step", 400},
		{"pipeline=nope&step=totals", "parameter pipeline", 404},
		{"pipeline=t1&step=valid", "parameter step", 400},
		{"pipeline=t1&step=totals&filter=nosuch+%3E+1", "parameter filter", 400},
		{"pipeline=t1&step=totals&limit=x", "parameter limit", 400},
	}
	for _, tt := range tests {
		code, body := do(t, "GET", srv.URL+"/api/v1/query?"+tt.query, "", "")
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("query %s: got %d %s; want %d naming %q", tt.query, code, body, tt.code, tt.want)
		}
	}
}

// TestAPIQueryConsistentWithEpochs checks that a query racing epochs always
// sees the state of one whole epoch: the per-key sums equal what the
// committed epochs ingested.
func TestAPIQueryConsistentWithEpochs(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan string, 100)
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			resp, err := http.Get(srv.URL + "/api/v1/query?pipeline=t1&step=totals")
			if err != nil {
				errs <- err.Error()
				return
			}
			var res QueryResult
			json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			// Each epoch adds 1 to a and 2 to b: after epoch e, a=e and b=2e.
			sums := map[string]float64{}
			for _, r := range res.Rows {
				var m map[string]any
				json.Unmarshal(r, &m)
				sums[m["sensor"].(string)] = m["state"].(float64)
			}
			if e := float64(res.Epoch); e > 0 && (sums["a"] != e || sums["b"] != 2*e) {
				errs <- "inconsistent snapshot"
			}
		}
	}()
	for i := 0; i < 10; i++ {
		if err := tn.Ingest(ctx, []Message{
			msg("sensors/a/temp", `{"sensor":"a","temp":1,"n":`+string(rune('0'+i))+`}`),
			msg("sensors/b/temp", `{"sensor":"b","temp":2,"n":`+string(rune('0'+i))+`}`),
		}); err != nil {
			t.Fatal(err)
		}
		tn.epoch(t, "t1")
	}
	<-done
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestAPIDeadLettersListAndReplay(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	if err := tn.Ingest(context.Background(), []Message{msg("sensors/a/temp", `{"sensor":"a","temp":"hot"}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "t1")
	code, body := do(t, "GET", srv.URL+"/api/v1/deadletters?pipeline=t1", "", "")
	if code != 200 || !strings.Contains(body, `"source": "readings"`) || !strings.Contains(body, "hot") {
		t.Fatalf("list: got %d %s; want the dead letter", code, body)
	}
	code, body = do(t, "POST", srv.URL+"/api/v1/deadletters/replay?pipeline=t1", "", "")
	if code != 200 || !strings.Contains(body, `"replayed": 1`) {
		t.Fatalf("replay: got %d %s; want 1 replayed", code, body)
	}
	if next := tn.logNext(ReplayLog("t1")); next != 2 {
		t.Errorf("replay log next after replay: got %d; want 2 (the message appended to t1's replay log)", next)
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/deadletters?limit=0", "", "")
	if code != 400 || !strings.Contains(body, "parameter limit") {
		t.Errorf("bad limit: got %d %s; want 400 naming limit", code, body)
	}
}

// Apply is atomic: a version whose sink cannot open (here a path outside
// the directories sinks may write to) is refused with a 4xx-class error
// naming the sink, and the running version keeps running and producing.
func TestApplyWithABadSinkKeepsTheOldVersion(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	bad := strings.Replace(testPipeline, "path: clean.jsonl", "path: /etc/edged-should-not-write.jsonl", 1)
	_, err := tn.Apply("t1", []byte(bad))
	var ae *ApplyError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), `(clean): path`) || !strings.Contains(err.Error(), "allowedDirs") {
		t.Fatalf("apply: got %v; want an ApplyError naming sink clean and sinks.allowedDirs", err)
	}
	// A path that is allowed but cannot be opened (a directory is in the
	// way) is refused the same way, when the new version's sinks open.
	if err := os.MkdirAll(filepath.Join(cfg.outputDir(), "blocked.jsonl"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = tn.Apply("t1", []byte(strings.Replace(testPipeline, "path: clean.jsonl", "path: blocked.jsonl", 1)))
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), `sink "clean"`) {
		t.Fatalf("apply with an unopenable sink: got %v; want an ApplyError naming sink clean", err)
	}
	if err := tn.Ingest(context.Background(), []Message{msg("sensors/a/temp", `{"sensor":"a","temp":5}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "t1")
	waitLines(t, filepath.Join(cfg.outputDir(), "clean.jsonl"), 1)
	if _, err := os.Stat("/etc/edged-should-not-write.jsonl"); err == nil {
		t.Error("the refused version wrote its file")
	}
}

// A pipeline applied through the API may not read an enrichment table from
// anywhere on the machine: its rows could come back out through outputs.
func TestApplyRefusesAnEnrichTableOutsideEdgedsDirectories(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	spec := strings.Replace(testPipeline, "    - name: valid\n      filter: temp > -100\n",
		"    - name: valid\n      filter: temp > -100\n    - name: tagged\n      input: valid\n      enrich: {on: sensor, file: /etc/passwd, fields: [{name: sensor, type: string}, {name: x, type: string}]}\n", 1)
	_, err := tn.Apply("t1", []byte(spec))
	var ae *ApplyError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "(tagged): enrich.file") || !strings.Contains(err.Error(), "allowedDirs") {
		t.Fatalf("apply: got %v; want an ApplyError naming the enrich file of step tagged", err)
	}
}

// Deleting a pipeline stops it at once, but what it spooled is still
// delivered; only then are its checkpoints and state freed.
func TestDeletedPipelineDeliversItsSpoolFirst(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"up1": uplinkPipeline})
	cfg.Uplink.Format = "jsonl"
	cfg.Uplink.MaxAge = 50 * time.Millisecond
	cfg.Uplink.BackoffMin, cfg.Uplink.BackoffMax = 50*time.Millisecond, 100*time.Millisecond
	blocker := filepath.Join(dir, "uplink")
	if err := os.WriteFile(blocker, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	tn := startNode(t, cfg, newFakeClock(t0))
	if err := tn.Ingest(context.Background(), []Message{msg("sensors/a/temp", `{"sensor":"a","temp":1}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "up1")
	if ok, err := tn.Delete("up1"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if cp, _ := tn.DB().LastCheckpoint("up1", -1); cp.Input == nil {
		t.Fatal("checkpoint freed while the spool still holds an output")
	}
	os.Remove(blocker) // the target comes back
	eventually(t, 10*time.Second, func() error {
		if cp, _ := tn.DB().LastCheckpoint("up1", -1); cp.Input != nil {
			return fmt.Errorf("checkpoint of the deleted pipeline still there")
		}
		return nil
	})
	rows := 0
	for _, rs := range readUplinkDir(t, filepath.Join(dir, "uplink")) {
		rows += len(rs)
	}
	if rows != 1 {
		t.Errorf("uploaded rows of the deleted pipeline: got %d; want 1", rows)
	}
}

// The query API gives every time column an RFC 3339 twin beside its epoch
// milliseconds.
func TestQueryRowsCarryRFC3339Times(t *testing.T) {
	const win = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: w}
spec:
  sources:
    - name: in
      mqtt: {topics: ["w/+"]}
      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: v, type: number}]
      eventTime: ts
      watermark: 0s
  steps:
    - name: per-sensor
      window: {type: tumbling, size: 1m, keys: [sensor], output: append, aggregates: [{n: count()}]}
  sinks:
    - {name: out, input: per-sensor, type: stdout}
`
	cfg := testConfig(t, t.TempDir(), map[string]string{"w": win})
	tn := startNode(t, cfg, newFakeClock(t0), WithStdout(io.Discard))
	if err := tn.Ingest(context.Background(), []Message{msg("w/a", `{"sensor":"a","ts":1700000000000,"v":1}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "w")
	res, err := tn.pipeByName("w").query("per-sensor", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("rows: %s; want 1", res.Rows)
	}
	var row map[string]any
	json.Unmarshal(res.Rows[0], &row)
	if row["window_start_rfc3339"] != "2023-11-14T22:13:00.000Z" || row["window_start"] != float64(1699999980000) {
		t.Errorf("row %v; want window_start 1699999980000 and window_start_rfc3339 2023-11-14T22:13:00.000Z", row)
	}
}
