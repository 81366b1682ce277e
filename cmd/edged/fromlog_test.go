package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

const fromLogPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: fl}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp"]}
      fields:
        - {name: sensor, type: string}
        - {name: ts, type: time}
        - {name: temp, type: number}
      eventTime: ts
      watermark: 0s
      key: [sensor]
  steps:
    - name: per-second
      window: {type: tumbling, size: 1s, keys: [sensor], output: append, aggregates: [{n: count()}, {avg: avg(temp)}]}
  sinks:
    - {name: out, input: per-second, type: stdout}
`

// TestBatchFromLogRunsTheRetainedInput: edged batch --from-log runs a
// pipeline over the input a node logged for a period and gives the windows
// edged batch --input gives for the same readings; once the log no longer
// holds the start of the period it refuses, naming the missing part.
func TestBatchFromLogRunsTheRetainedInput(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "fl.yaml")
	os.WriteFile(spec, []byte(fromLogPipeline), 0o644)
	db, err := storage.Open(filepath.Join(dir, "edged.db"), storage.Options{Sync: storage.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	var file bytes.Buffer
	ctx := context.Background()
	for i := range 30 {
		var recs [][]byte
		for s := range 4 {
			p := fmt.Sprintf(`{"sensor":"s%d","ts":%d,"temp":%d.25}`, s, 1_700_000_000_000+int64(i)*250, 20+i%5)
			file.WriteString(p + "\n")
			recs = append(recs, runner.AppendEntry(nil, fmt.Sprintf("sensors/s%d/temp", s), []byte(p)))
		}
		if _, _, err := db.AppendLog(ctx, "mqtt", recs); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	to := time.Now()
	input := filepath.Join(dir, "in.jsonl")
	os.WriteFile(input, file.Bytes(), 0o644)

	batch := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append([]string{"batch", "-f", spec}, args...), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	logOut, errOut, code := batch("--from-log", dir, "--from", rfc(from), "--to", rfc(to))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fileOut, _, _ := batch("--input", input)
	got := strings.Split(strings.TrimSpace(logOut), "\n")
	if len(got) < 4*6 {
		t.Fatalf("from the log: %d windows:\n%s\n%s", len(got), logOut, errOut)
	}
	for _, l := range got {
		if !strings.Contains(fileOut, l+"\n") {
			t.Fatalf("window %s from the log is not batch --input's:\n%s", l, fileOut)
		}
	}
	if !strings.Contains(errOut, "120 log entries") {
		t.Fatalf("summary %q", errOut)
	}

	db, err = storage.Open(filepath.Join(dir, "edged.db"), storage.Options{Sync: storage.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.TruncateLog(ctx, "mqtt", 41); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, errOut, code = batch("--from-log", dir, "--from", rfc(from), "--to", rfc(to))
	if code != 1 || !strings.Contains(errOut, `input log "mqtt" no longer holds `+rfc(from.Truncate(time.Second))) {
		t.Fatalf("exit %d, %q; want a refusal naming the missing part", code, errOut)
	}
	if _, errOut, code = batch("--from-log", dir, "--from", rfc(from), "--to", rfc(to), "--partial"); code != 0 || !strings.Contains(errOut, "partial:") {
		t.Fatalf("--partial: exit %d, %q", code, errOut)
	}
}
