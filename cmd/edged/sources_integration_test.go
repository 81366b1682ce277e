//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pushPipeline passes the readings of an HTTP push source to a file sink.
const pushE2EPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: push}
spec:
  interval: 1s
  sources:
    - name: readings
      http: {}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: temp, type: number}
  steps: []
  sinks:
    - {name: out, input: readings, type: file, path: push.jsonl}
`

func readingLines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"sensor":"s%d","seq":%d,"temp":%d.5}`+"\n", i%7, i, i%40)
	}
	return b.String()
}

// TestHTTPPushLosesNothingAcknowledgedOnKill: batches are pushed to a real
// edged process; right after the 200 of the 20th, the process is killed
// (SIGKILL, with its epoch interval of 1 s the last batches are only in the
// input log). After the restart every acknowledged reading is in the sink
// exactly once.
func TestHTTPPushLosesNothingAcknowledgedOnKill(t *testing.T) {
	e := newEdgedProc(t, "mqtt: {listen: \"\"}\n", map[string]string{"push": pushE2EPipeline})
	e.launch(t)
	const batch = 250
	acked := 0
	for k := 0; k < 20; k++ {
		resp, err := apiClient.Post("http://"+e.api+"/api/v1/ingest/push/readings", "application/x-ndjson",
			strings.NewReader(readingLines(acked, acked+batch)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var res struct{ Accepted, Duplicates, DeadLettered int }
		if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Accepted != batch {
			t.Fatalf("push %d: %d %s", k, resp.StatusCode, body)
		}
		acked += batch
	}
	e.kill(t)
	before := len(e.readings(t, "push.jsonl"))
	e.launch(t)
	eventually(t, 30*time.Second, func() error { return checkOnce(t, e.readings(t, "push.jsonl"), 0, acked) })
	t.Logf("%d readings acknowledged, %d in the sink when killed, all %d once after the restart", acked, before, acked)
}

const tailE2EPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: tail}
spec:
  interval: 200ms
  sources:
    - name: app
      file: {path: %q, poll: 20ms}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: temp, type: number}
  steps: []
  sinks:
    - {name: out, input: app, type: file, path: tail.jsonl}
`

// TestFileTailSurvivesKillAndRotation: a real edged process follows a log
// file that an application appends to; it is killed (SIGKILL) while lines
// arrive, a half-written line is left, the file is rotated (rename and
// create) while edged is down and copy-truncated while it runs. Every line
// reaches the sink exactly once.
func TestFileTailSurvivesKillAndRotation(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "app.log")
	e := newEdgedProc(t, "mqtt: {listen: \"\"}\n", map[string]string{"tail": fmt.Sprintf(tailE2EPipeline, logFile)})
	write := func(s string) {
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write(readingLines(0, 1000))
	e.launch(t)
	eventually(t, 30*time.Second, func() error { return checkOnce(t, e.readings(t, "tail.jsonl"), 0, 1000) })
	// Lines keep coming while edged is killed; the last one is half written.
	for i := 1000; i < 3000; i += 100 {
		write(readingLines(i, i+100))
	}
	half := readingLines(3000, 3001)
	write(half[:20])
	e.kill(t)
	// Rotated while edged is down: the rest of the half line, then a new file.
	write(half[20:])
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	write(readingLines(3001, 4000))
	e.launch(t)
	eventually(t, 30*time.Second, func() error { return checkOnce(t, e.readings(t, "tail.jsonl"), 0, 4000) })
	// copytruncate while edged runs.
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile+".2", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logFile, 0); err != nil {
		t.Fatal(err)
	}
	write(readingLines(4000, 5000))
	eventually(t, 30*time.Second, func() error { return checkOnce(t, e.readings(t, "tail.jsonl"), 0, 5000) })
}
