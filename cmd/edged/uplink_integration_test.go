//go:build integration

package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgedio/edged/uplink/s3test"
)

// uplinkPipeline filters readings; its results go both to a file sink (the
// reference) and to an uplink sink (S3).
const uplinkPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: hotup}
spec:
  interval: 50ms
  sources:
    - name: readings
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: temp, type: number}
  steps:
    - name: hot
      filter: temp >= 20
  sinks:
    - {name: ref, input: hot, type: file, path: hot.jsonl}
    - {name: cloud, input: hot, type: uplink}
`

// uplinkEdged is an edged process fed by --input, uploading to S3.
type uplinkEdged struct {
	bin, cfg, data, pipes, input, api string
	cmd                               *exec.Cmd
	stderr                            *syncBuf
}

func (e *uplinkEdged) start(t *testing.T) {
	t.Helper()
	e.api = freeAddr(t)
	e.cmd = exec.Command(e.bin, "run", "-c", e.cfg, "--data-dir", e.data, "--pipelines-dir", e.pipes,
		"--api", e.api, "--input", e.input, "--epoch-records", "200")
	e.stderr = &syncBuf{}
	e.cmd.Stderr = e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := e.cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 15*time.Second, func() error {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := (&edgedProc{api: e.api}).get("/api/v1/status", &st); err != nil {
			return err
		}
		if !st.Ready {
			return fmt.Errorf("not ready\n%s", e.stderr)
		}
		return nil
	})
}

// uplinkStatus polls the node's uplink status of sink cloud.
func (e *uplinkEdged) uplinkStatus() (rows, objects, depth uint64, err error) {
	var st map[string]struct {
		Rows    uint64 `json:"rows"`
		Objects uint64 `json:"objects"`
		Depth   uint64 `json:"spool_depth"`
	}
	if err := (&edgedProc{api: e.api}).get("/api/v1/uplink/status", &st); err != nil {
		return 0, 0, 0, err
	}
	c := st["hotup/cloud"] // sinks are named pipeline/sink
	return c.Rows, c.Objects, c.Depth, nil
}

// bucketRows reads every object of the bucket: rows by _id, how often each
// _id appears, and the keys.
func bucketRows(t *testing.T, srv *s3test.Server, bucket string) (rows map[string]map[string]any, seen map[string]int, keys []string) {
	t.Helper()
	rows, seen = map[string]map[string]any{}, map[string]int{}
	for key, b := range srv.Objects(bucket) {
		keys = append(keys, key)
		for _, m := range s3test.ReadParquet(t, b) {
			id, _ := m["_id"].(string)
			seen[id]++
			rows[id] = m
		}
	}
	sort.Strings(keys)
	return rows, seen, keys
}

func writeReadings(t *testing.T, path string, from, n int) (hot int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		temp := i % 40
		if temp >= 20 {
			hot++
		}
		fmt.Fprintf(&b, `{"sensor":"s%d","seq":%d,"temp":%d}`+"\n", i%7, i, temp)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	return hot
}

// checkBucket waits until the bucket holds want rows, then checks that every
// output id appears exactly once and that the rows equal the pipeline's
// results, as written by the file sink of the same step (output ids differ
// between sinks, so rows are matched by their input's unique seq and epoch).
func checkBucket(t *testing.T, srv *s3test.Server, bucket, refFile string, want int) []string {
	t.Helper()
	var rows map[string]map[string]any
	var seen map[string]int
	var keys []string
	eventually(t, 60*time.Second, func() error {
		rows, seen, keys = bucketRows(t, srv, bucket)
		total := 0
		for _, k := range seen {
			total += k
		}
		if total < want {
			return fmt.Errorf("bucket: %d rows in %d objects; want %d", total, len(keys), want)
		}
		return nil
	})
	for id, k := range seen {
		if k != 1 {
			t.Errorf("output %s: in the bucket %d times; want 1", id, k)
		}
	}
	bySeq := map[float64]map[string]any{}
	for id, m := range rows {
		seq, _ := m["seq"].(float64)
		if prev, dup := bySeq[seq]; dup {
			t.Errorf("input seq %v uploaded twice: as %s and %s", seq, prev["_id"], id)
		}
		bySeq[seq] = m
	}
	ref, err := fileLines(refFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != want || len(rows) != want {
		t.Fatalf("rows: %d in the bucket, %d from the file sink; want %d", len(rows), len(ref), want)
	}
	epoch := func(id string) string { return strings.Join(strings.Split(id, "/")[:4], "/") }
	for _, l := range ref {
		got := bySeq[l["seq"].(float64)]
		if got == nil {
			t.Errorf("result %v: not in the bucket", l)
			continue
		}
		if epoch(got["_id"].(string)) != epoch(l["_id"].(string)) {
			t.Errorf("result %v: uploaded as %s, from another epoch", l, got["_id"])
		}
		g, w := maps.Clone(got), maps.Clone(l)
		delete(g, "_id")
		delete(w, "_id")
		if !reflect.DeepEqual(g, w) {
			t.Errorf("row %s: got %v in S3; want %v (the pipeline's result)", got["_id"], g, w)
		}
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "edge/pipeline=hotup/") || !strings.HasSuffix(k, ".parquet") || !strings.Contains(k, "/gw1-p0-e") {
			t.Errorf("object key %q does not follow PREFIX/pipeline=P/date=D/hour=H/NODE-pPART-eFIRST-LAST.parquet", k)
		}
	}
	return keys
}

// TestIntegrationUplinkToS3KillMidUpload runs a real edged with an uplink
// sink to a real S3 server (versitygw): the rows uploaded equal the
// pipeline's results; then edged is killed with SIGKILL while it uploads and
// restarted, and every row still arrives exactly once.
func TestIntegrationUplinkToS3KillMidUpload(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket("edged-up")
	dir := t.TempDir()
	e := &uplinkEdged{bin: buildEdged(t), cfg: filepath.Join(dir, "edged.yaml"), data: filepath.Join(dir, "data"),
		pipes: filepath.Join(dir, "pipelines"), input: filepath.Join(dir, "input.jsonl")}
	os.MkdirAll(e.pipes, 0o755)
	if err := os.WriteFile(filepath.Join(e.pipes, "hotup.yaml"), []byte(uplinkPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`mqtt: {listen: ""}
uplink:
  node: gw1
  target: s3
  prefix: edge
  max_rows: 150
  max_age: 200ms
  poll_interval: 50ms
  backoff_min: 10ms
  backoff_max: 200ms
  timeout: 5s
  s3: {endpoint: %q, region: us-east-1, bucket: %s, access_key: %s, secret_key: %s, path_style: true, tls: false}
`, srv.Endpoint, bucket, srv.Access, srv.Secret)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(e.data, "out", "hot.jsonl")

	// Phase 1: outputs flow edged -> spool -> S3.
	want := writeReadings(t, e.input, 0, 2000)
	e.start(t)
	keys := checkBucket(t, srv, bucket, ref, want)
	t.Logf("phase 1: %d rows in %d objects", want, len(keys))
	ctl := filepath.Join(t.TempDir(), "edgectl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../edgectl").CombinedOutput(); err != nil {
		t.Fatalf("go build edgectl: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"flush", "--timeout", "10s"}, {"status"}, {"status", "-o", "json"}} {
		out, err := exec.Command(ctl, append(append([]string{"uplink"}, args...), "--api", "http://"+e.api)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "cloud") {
			t.Errorf("edgectl uplink %v: got %v\n%s; want success naming sink cloud", args, err, out)
		}
		t.Logf("edgectl uplink %v:\n%s", args, out)
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	if err := e.cmd.Wait(); err != nil {
		t.Fatalf("edged exit: %v\n%s", err, e.stderr)
	}

	// Phase 2: more input; kill -9 once uploads of it are under way.
	want += writeReadings(t, e.input, 2000, 20000)
	e.start(t)
	var depthAtKill, rowsAtKill uint64
	eventually(t, 30*time.Second, func() error {
		rows, _, depth, err := e.uplinkStatus()
		if err != nil {
			return err
		}
		if rows < 2000 {
			return fmt.Errorf("%d rows uploaded in this run; want 2000 before the kill", rows)
		}
		rowsAtKill, depthAtKill = rows, depth
		return nil
	})
	e.cmd.Process.Signal(syscall.SIGKILL)
	e.cmd.Wait()
	t.Logf("killed with %d rows uploaded by this run and %d spooled", rowsAtKill, depthAtKill)

	// Phase 3: restart; everything arrives, once.
	e.start(t)
	keys = checkBucket(t, srv, bucket, ref, want)
	t.Logf("after kill -9 and restart: %d rows in %d objects", want, len(keys))
	e.cmd.Process.Signal(syscall.SIGTERM)
	if err := e.cmd.Wait(); err != nil {
		t.Fatalf("edged exit: %v\n%s", err, e.stderr)
	}
}
