package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/edgedio/edged/internal/testkit"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const e2ePipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: e2e}
spec:
  interval: 100ms
  sources:
    - name: readings
      fields:
        - {name: sensor, type: string}
        - {name: temp, type: number}
  steps:
    - name: hot
      filter: temp >= 20
    - name: totals
      input: hot
      updateStateByKey: {key: sensor, value: temp, func: count}
  sinks:
    - {name: hot-out, input: hot, type: file, path: hot.jsonl}
`

// eventually polls until fn returns nil (see testkit.Eventually).
var eventually = testkit.Eventually

// apiClient is how tests call edged's API: a node that accepts a request
// and never answers is an error after 10s, not a test that hangs until the
// go test timeout.
var apiClient = &http.Client{Timeout: 10 * time.Second}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func fileLines(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("bad output line %q: %w", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out, nil
}

// TestEndToEndRunWithInputFile builds edged, runs `edged run --input FILE` as
// a real process, checks the outputs, stops it with SIGTERM, restarts it on
// the same data directory and checks that nothing is appended twice.
func TestEndToEndRunWithInputFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "edged")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pipes := filepath.Join(dir, "pipelines")
	os.MkdirAll(pipes, 0o755)
	os.WriteFile(filepath.Join(pipes, "e2e.yaml"), []byte(e2ePipeline), 0o644)
	var in strings.Builder
	wantHot := 0
	for i := range 2000 {
		temp := i % 40
		if temp >= 20 {
			wantHot++
		}
		fmt.Fprintf(&in, `{"sensor":"s%d","temp":%d}`+"\n", i%7, temp)
	}
	in.WriteString("this is not json\n")
	input := filepath.Join(dir, "input.jsonl")
	os.WriteFile(input, []byte(in.String()), 0o644)
	data := filepath.Join(dir, "data")
	out := filepath.Join(data, "out", "hot.jsonl")

	start := func() (*exec.Cmd, string, *strings.Builder) {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "run", "--data-dir", data, "--pipelines-dir", pipes, "--input", input, "--api", addr)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		eventually(t, 15*time.Second, func() error {
			resp, err := apiClient.Get("http://" + addr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("readyz: %d", resp.StatusCode)
			}
			return nil
		})
		return cmd, addr, &stderr
	}
	stop := func(cmd *exec.Cmd, stderr *strings.Builder) {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("edged exited with %v\n%s", err, stderr)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("edged did not stop on SIGTERM\n%s", stderr)
		}
	}
	settled := func(addr string) {
		eventually(t, 20*time.Second, func() error {
			resp, err := apiClient.Get("http://" + addr + "/api/v1/status")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st struct {
				Pipelines []struct {
					Backlog map[string]uint64 `json:"inputBacklog"`
				} `json:"pipelines"`
				Sinks []struct {
					Depth uint64 `json:"spoolDepth"`
				} `json:"sinks"`
				Ingest struct{ InputFileDone bool } `json:"ingest"`
			}
			json.NewDecoder(resp.Body).Decode(&st)
			if !st.Ingest.InputFileDone || len(st.Pipelines) != 1 || st.Pipelines[0].Backlog["readings"] != 0 ||
				len(st.Sinks) != 1 || st.Sinks[0].Depth != 0 {
				return fmt.Errorf("not settled: %+v", st)
			}
			return nil
		})
	}
	check := func() []map[string]any {
		var lines []map[string]any
		eventually(t, 20*time.Second, func() error {
			var err error
			if lines, err = fileLines(out); err != nil {
				return err
			}
			if len(lines) != wantHot {
				return fmt.Errorf("%s: %d lines; want %d", out, len(lines), wantHot)
			}
			return nil
		})
		seen := map[string]bool{}
		for _, l := range lines {
			id, _ := l["_id"].(string)
			if seen[id] || !strings.HasPrefix(id, "e2e/0/") {
				t.Fatalf("output id %q duplicated or malformed", id)
			}
			seen[id] = true
			if l["temp"].(float64) < 20 {
				t.Fatalf("output %v does not pass the filter", l)
			}
		}
		return lines
	}

	cmd, addr, stderr := start()
	settled(addr)
	check()
	resp, err := apiClient.Get("http://" + addr + "/api/v1/deadletters?pipeline=e2e")
	if err != nil {
		t.Fatal(err)
	}
	var dl struct {
		DeadLetters []struct{ Payload string } `json:"deadLetters"`
	}
	json.NewDecoder(resp.Body).Decode(&dl)
	resp.Body.Close()
	if len(dl.DeadLetters) != 1 || dl.DeadLetters[0].Payload != "this is not json" {
		t.Errorf("dead letters: got %+v; want the bad line", dl.DeadLetters)
	}
	resp, err = apiClient.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&mb)
	resp.Body.Close()
	for _, want := range []string{`edged_step_records_in_total{pipeline="e2e",step="hot"} 2000`, `edged_pipeline_decode_errors_total{pipeline="e2e"} 1`, "edged_sink_spool_depth", "edged_storage_bytes_written_per_million_records "} {
		if !strings.Contains(mb.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	stop(cmd, stderr)

	// Restart on the same data directory: the input file is not appended again.
	cmd, addr, stderr = start()
	settled(addr)
	check()
	stop(cmd, stderr)
}
