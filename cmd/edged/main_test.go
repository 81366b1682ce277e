package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBatchRunsExamplePipelineAndDeadLettersBadLines runs the README's first
// command in-process: the ETL example over the sample readings.
func TestBatchRunsExamplePipelineAndDeadLettersBadLines(t *testing.T) {
	dir := t.TempDir()
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"batch", "-f", "../../configs/pipelines/etl.yaml",
		"--input", "../../configs/samples/sensors.jsonl", "--output", out, "--dead-letter", dead}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, out)), "\n")
	// 600 lines: 2 do not decode, 1 lacks temp; the rest are plausible readings.
	if len(lines) != 597 {
		t.Fatalf("got %d output rows; want 597", len(lines))
	}
	if !strings.Contains(lines[0], `"temp_f":`) {
		t.Fatalf("first row %s lacks temp_f", lines[0])
	}
	dl := readFile(t, dead)
	for _, want := range []string{`"line":251`, `want number, got string`, `"line":401`, `"step":"complete"`, `missing field \"temp\"`} {
		if !strings.Contains(dl, want) {
			t.Errorf("dead letters lack %s:\n%s", want, dl)
		}
	}
	if !strings.Contains(stderr.String(), "598 records, 2 undecodable, 1 rejected by steps") {
		t.Errorf("summary %q", stderr.String())
	}
}

func TestCheckReportsEveryErrorWithLocation(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: edged/v1
kind: Pipeline
metadata: {name: bad}
spec:
  sources: [{name: in, fields: [{name: temp, type: number}]}]
  steps:
    - {name: f, filter: "temp > 'x'"}
    - {name: g, input: in, project: [{y: nosuch + 1}]}
  sinks: [{name: out, input: f}, {name: out2, input: g}]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d; want 1", code)
	}
	for _, want := range []string{"bad.yaml:7: spec.steps[0]: step \"f\"", "cannot compare number with string",
		"bad.yaml:8: spec.steps[1]: step \"g\"", "unknown field \"nosuch\""} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestCheckAcceptsExamples(t *testing.T) {
	files, _ := filepath.Glob("../../configs/pipelines/*.yaml")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"check"}, files...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckRejectsAMissingBus: `edged check` rejects a bus source whose bus
// this machine lacks, naming the key and the buses found; --offline checks
// the file alone.
func TestCheckRejectsAMissingBus(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bus.yaml")
	os.WriteFile(f, []byte(`apiVersion: edged/v1
kind: Pipeline
metadata: {name: b}
spec:
  sources:
    - name: room
      bus:
        device: bmp280
        i2c: {bus: "97", addr: 0x77}
        interval: 5s
  sinks: [{name: out}]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", f}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d; want 1 (%s)", code, stdout.String())
	}
	for _, want := range []string{"bus.yaml:9: spec.sources[0].bus.i2c.bus: /dev/i2c-97 does not exist on this machine (buses found: ", "--offline"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "--offline", f}, &stdout, &stderr); code != 0 {
		t.Fatalf("--offline: exit %d: %s", code, stderr.String())
	}
}

// edged check makes the checks apply makes beyond compiling: a file sink
// outside the allowed directories and a broken mqtt sink topic are both
// reported, in one run, naming the sink.
func TestCheckRejectsWhatApplyRejects(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.yaml")
	spec := `apiVersion: edged/v1
kind: Pipeline
metadata: {name: bad}
spec:
  sources:
    - name: in
      mqtt: {topics: ["a/{x}/b"]}
      fields: [{name: x, type: string}]
  sinks:
    - {name: f, type: file, path: /etc/edged-check-test.jsonl}
    - {name: m, type: mqtt, topic: "out/{nofield"}
`
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check", "--offline", f}, &out, &errb)
	msg := errb.String()
	if code != 1 || !strings.Contains(msg, "spec.sinks[0] (f): path") || !strings.Contains(msg, "allowedDirs") || !strings.Contains(msg, "spec.sinks[1] (m): topic") {
		t.Errorf("check: exit %d, stderr %q; want 1 naming both sinks", code, msg)
	}
}

// TestCheckRejectsJoinsAgainstMissingOrOtherTables: `edged check` rejects a
// history join against a table no pipeline checked with it writes, and one
// against a table with other key columns, each at its file, line and key,
// every problem at once; with the writer of the right keys it passes.
func TestCheckRejectsJoinsAgainstMissingOrOtherTables(t *testing.T) {
	dir := t.TempDir()
	reader := filepath.Join(dir, "reader.yaml")
	os.WriteFile(reader, []byte(`apiVersion: edged/v1
kind: Pipeline
metadata: {name: reader}
spec:
  sources:
    - name: in
      fields: [{name: sensor, type: string}, {name: site, type: string}, {name: ts, type: time}, {name: v, type: number}]
      eventTime: ts
  steps:
    - name: by-site
      historyJoin: {table: hourly_temp, keys: [site], offset: 24h, fields: [{name: temp, type: number}]}
    - name: missing
      input: in
      historyJoin: {table: nope, keys: [sensor], offset: 24h, fields: [{name: temp, type: number}]}
  sinks: [{name: o1, input: by-site}, {name: o2, input: missing}]
`), 0o644)
	writer := "../../configs/pipelines/history.yaml"
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", reader, writer}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d; want 1\n%s", code, stderr.String())
	}
	for _, want := range []string{
		reader + `:11: spec.steps[0].historyJoin.keys: table "hourly_temp" has key columns [sensor] (written by history/keep); this step names [site]`,
		reader + `:14: spec.steps[1].historyJoin.table: no pipeline writes table "nope" (tables written: hourly_temp)`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stdout.String(), "reader.yaml: ok") || !strings.Contains(stdout.String(), "history.yaml: ok") {
		t.Errorf("stdout: %s", stdout.String())
	}
	// Alone, the example's own join finds its writer; without it, a reader
	// of hourly_temp does not.
	stderr.Reset()
	if code := run(context.Background(), []string{"check", writer}, &stdout, &stderr); code != 0 {
		t.Fatalf("the example alone: exit %d: %s", code, stderr.String())
	}
}
