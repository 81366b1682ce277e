//go:build integration

package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// edgedBuild is the edged binary, built once per test process (buildEdged)
// and removed by TestMain.
var edgedBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildEdged returns the path of an edged binary built from this package,
// building it on first use.
func buildEdged(t *testing.T) string {
	t.Helper()
	edgedBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "edged-it-")
		if err != nil {
			edgedBuild.err = err
			return
		}
		edgedBuild.dir, edgedBuild.bin = dir, filepath.Join(dir, "edged")
		if out, err := exec.Command("go", "build", "-o", edgedBuild.bin, ".").CombinedOutput(); err != nil {
			edgedBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if edgedBuild.err != nil {
		t.Fatal(edgedBuild.err)
	}
	return edgedBuild.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if edgedBuild.dir != "" {
		os.RemoveAll(edgedBuild.dir)
	}
	os.Exit(code)
}

// newEdgedProc prepares an edged process with config cfgYAML (the whole
// edged.yaml) and the given pipeline files (name -> document), without
// starting it.
func newEdgedProc(t *testing.T, cfgYAML string, pipes map[string]string) *edgedProc {
	t.Helper()
	dir := t.TempDir()
	e := &edgedProc{bin: buildEdged(t), cfg: filepath.Join(dir, "edged.yaml"), data: filepath.Join(dir, "data"),
		pipes: filepath.Join(dir, "pipelines")}
	if err := os.MkdirAll(e.pipes, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, doc := range pipes {
		e.writePipeline(t, name, doc)
	}
	if err := os.WriteFile(e.cfg, []byte(cfgYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// writePipeline writes (or replaces) pipelines/NAME.yaml atomically, as an
// operator's editor or config management would.
func (e *edgedProc) writePipeline(t *testing.T, name, doc string) {
	t.Helper()
	file := filepath.Join(e.pipes, name+".yaml")
	if err := os.WriteFile(file+".tmp", []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
}

// removePipeline deletes pipelines/NAME.yaml.
func removePipeline(t *testing.T, e *edgedProc, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(e.pipes, name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// launch starts the process and waits until its API answers and it is
// ready, whatever the state of its MQTT connection.
func (e *edgedProc) launch(t *testing.T) {
	t.Helper()
	e.api = freeAddr(t)
	e.cmd = exec.Command(e.bin, "run", "-c", e.cfg, "--data-dir", e.data, "--pipelines-dir", e.pipes, "--api", e.api)
	e.stderr = &syncBuf{}
	e.cmd.Stderr = e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := e.cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 15*time.Second, func() error {
		var st nodeStatus
		if err := e.get("/api/v1/status", &st); err != nil {
			return fmt.Errorf("%v\n%s", err, e.stderr)
		}
		if !st.Ready {
			return fmt.Errorf("not ready\n%s", e.stderr)
		}
		return nil
	})
}

// nodeStatus is the part of /api/v1/status these tests read.
type nodeStatus struct {
	Ready bool `json:"ready"`
	MQTT  struct {
		Mode      string `json:"mode"`
		State     string `json:"state"`
		LastError string `json:"lastError"`
		Received  uint64 `json:"received"`
	} `json:"mqtt"`
}

func (e *edgedProc) status(t *testing.T) nodeStatus {
	t.Helper()
	var st nodeStatus
	if err := e.get("/api/v1/status", &st); err != nil {
		t.Fatalf("status: %v\n%s", err, e.stderr)
	}
	return st
}

// waitConnected waits until edged's MQTT source is connected and
// subscribed.
func (e *edgedProc) waitConnected(t *testing.T) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		if st := e.status(t); st.MQTT.State != "connected" {
			return fmt.Errorf("mqtt %s (%s)\n%s", st.MQTT.State, st.MQTT.LastError, e.stderr)
		}
		return nil
	})
}

// pipelineVersions returns metadata.version of each running pipeline by
// name (GET /api/v1/pipelines).
func (e *edgedProc) pipelineVersions(t *testing.T) map[string]string {
	t.Helper()
	var l struct {
		Pipelines []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"pipelines"`
	}
	if err := e.get("/api/v1/pipelines", &l); err != nil {
		t.Fatalf("pipelines: %v", err)
	}
	out := map[string]string{}
	for _, p := range l.Pipelines {
		out[p.Name] = p.Version
	}
	return out
}

// post sends an empty POST and returns the status code and body.
func (e *edgedProc) post(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := apiClient.Post("http://"+e.api+path, "application/json", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// reading is one row of a pass-through pipeline's file sink.
type reading struct {
	ID     string  `json:"_id"`
	Sensor string  `json:"sensor"`
	Seq    int     `json:"seq"`
	Ver    float64 `json:"ver"`
}

// readings returns the complete rows of the file sink file (under
// data/out).
func (e *edgedProc) readings(t *testing.T, file string) []reading {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.data, "out", file))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	// A line being written is not complete yet: read up to the last newline.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []reading
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var r reading
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", file, l, err)
		}
		out = append(out, r)
	}
	return out
}

// checkOnce fails unless rows hold every seq in [from, to) exactly once,
// under distinct output ids; it returns an error while some are missing.
func checkOnce(t *testing.T, rows []reading, from, to int) error {
	t.Helper()
	seen := map[int]int{}
	ids := map[string]bool{}
	for _, r := range rows {
		if r.ID == "" || ids[r.ID] {
			t.Fatalf("output id %q empty or repeated", r.ID)
		}
		ids[r.ID] = true
		if r.Seq >= from && r.Seq < to {
			seen[r.Seq]++
		}
	}
	var dup, missing []int
	for s := from; s < to; s++ {
		switch seen[s] {
		case 0:
			missing = append(missing, s)
		case 1:
		default:
			dup = append(dup, s)
		}
	}
	if len(dup) > 0 {
		t.Fatalf("%d readings output more than once (first %v)", len(dup), dup[:min(len(dup), 10)])
	}
	if len(missing) > 0 {
		sort.Ints(missing)
		return fmt.Errorf("%d of the readings %d..%d not output yet (first %d)", len(missing), from, to-1, missing[0])
	}
	return nil
}

// mqttClient connects a paho client (clean session) to url, with tlsCfg
// for ssl:// URLs.
func mqttClient(url, id string, tlsCfg *tls.Config) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect to %s: timed out", url)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	return c, nil
}

// publishReadings publishes readings from..to-1 at QoS 1 on
// sensors/sNN/temp (sensors sensors), waiting for every PUBACK.
func publishReadings(c paho.Client, from, to, sensors int) error {
	toks := make([]paho.Token, 0, 256)
	flush := func() error {
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				return fmt.Errorf("publish: no PUBACK: %v", tok.Error())
			}
		}
		toks = toks[:0]
		return nil
	}
	for i := from; i < to; i++ {
		payload := fmt.Sprintf(`{"seq":%d,"temp":%d.5}`, i, i%40)
		toks = append(toks, c.Publish(fmt.Sprintf("sensors/s%02d/temp", i%sensors), 1, false, payload))
		if len(toks) == cap(toks) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// publishTo connects to url, publishes readings from..to-1 and disconnects.
func publishTo(t *testing.T, url, id string, tlsCfg *tls.Config, from, to int) {
	t.Helper()
	c, err := mqttClient(url, id, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	if err := publishReadings(c, from, to, 10); err != nil {
		t.Fatal(err)
	}
}

// passThrough is a pipeline that writes every reading to file (file sink
// "out"), tagged with ver: version, subscribed to topic.
func passThrough(name, version, topic, file string) string {
	return fmt.Sprintf(`apiVersion: edged/v1
kind: Pipeline
metadata: {name: %s, version: "%s"}
spec:
  interval: 100ms
  sources:
    - name: readings
      mqtt: {topics: [%q], qos: 1}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: temp, type: number}
  steps:
    - name: tag
      input: readings
      extend: [{ver: "%s"}]
  sinks:
    - {name: out, input: tag, type: file, path: %s}
`, name, version, topic, version, file)
}
