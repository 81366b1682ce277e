package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgedio/edged/storage"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

const uplinkPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: up1}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp"]}
      fields:
        - {name: sensor, type: string}
        - {name: temp, type: number}
  steps:
    - name: valid
      filter: temp > -100
  sinks:
    - {name: cloud, input: valid, type: uplink}
`

// readUplinkDir decodes every .jsonl.zst object under dir into rows by key.
func readUplinkDir(t *testing.T, dir string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".jsonl.zst") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := zstd.NewReader(nil)
		defer dec.Close()
		raw, err := dec.DecodeAll(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: bad line %q: %v", p, line, err)
			}
			out[rel] = append(out[rel], m)
		}
		return nil
	})
	return out
}

func TestUplinkSinkUploadsToLocalDirByDefaultAndReports(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"up1": uplinkPipeline})
	cfg.Uplink.Format = "jsonl"
	cfg.API.Token = "tok"
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	if err := tn.Ingest(context.Background(), []Message{
		msg("sensors/a/temp", `{"sensor":"a","temp":21}`),
		msg("sensors/b/temp", `{"sensor":"b","temp":-500}`),
		msg("sensors/c/temp", `{"sensor":"c","temp":7.5}`),
	}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "up1")

	if code, _ := do(t, "POST", srv.URL+"/api/v1/uplink/flush", "", ""); code != 401 {
		t.Errorf("flush without token: got %d; want 401", code)
	}
	code, body := do(t, "POST", srv.URL+"/api/v1/uplink/flush?sink=up1/cloud&timeout=10s", "tok", "")
	if code != 200 || !strings.Contains(body, `"up1/cloud"`) {
		t.Fatalf("flush: got %d %s; want 200 naming cloud", code, body)
	}
	objs := readUplinkDir(t, filepath.Join(dir, "uplink"))
	var got []string
	for key, rows := range objs {
		if !strings.HasPrefix(key, "pipeline=up1/") {
			t.Errorf("object key %q; want it under pipeline=up1/", key)
		}
		for _, r := range rows {
			got = append(got, r["_id"].(string)+" "+r["sensor"].(string))
		}
	}
	sort.Strings(got)
	if want := []string{"up1/0/1/1/0 a", "up1/0/1/1/1 c"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("uploaded rows: got %v; want %v", got, want)
	}

	code, body = do(t, "GET", srv.URL+"/api/v1/uplink/status", "tok", "")
	if code != 200 || !strings.Contains(body, `"rows":2`) {
		t.Errorf("uplink status: got %d %s; want rows 2", code, body)
	}
	st, err := tn.Status()
	if err != nil {
		t.Fatal(err)
	}
	if us, ok := st.Uplink["up1/cloud"]; !ok || us.Rows != 2 || us.Objects != 1 || us.Target != "local" {
		t.Errorf("status.uplink[cloud]: got %+v; want 2 rows in 1 object to local", st.Uplink)
	}
	if len(st.Sinks) != 1 || st.Sinks[0].Type != "uplink" || st.Sinks[0].Name != "up1/cloud" || st.Sinks[0].Delivered != 2 {
		t.Errorf("status.sinks: got %+v; want cloud (uplink) with 2 delivered", st.Sinks)
	}
	_, metrics := do(t, "GET", srv.URL+"/metrics", "tok", "")
	for _, want := range []string{`edged_uplink_rows_total{pipeline="up1",sink="cloud"} 2`, `edged_uplink_objects_total{pipeline="up1",sink="cloud"} 1`,
		`edged_uplink_spool_depth{pipeline="up1",sink="cloud"} 0`, `edged_uplink_last_success_timestamp_seconds{pipeline="up1",sink="cloud"}`,
		`edged_uplink_compression_ratio{pipeline="up1",sink="cloud"}`, `edged_uplink_dropped_rows_total{pipeline="up1",sink="cloud"} 0`,
		`edged_uplink_failing{pipeline="up1",sink="cloud",kind="none"} 0`, `edged_uplink_bytes_uploaded_total{pipeline="up1",sink="cloud"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestConfigUplinkSectionIsStrictAndValidated(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "uplink:\n  bogus: 1\n", `edged.yaml:2: uplink.bogus: unknown key "bogus"`},
		{"s3 without endpoint", "uplink:\n  target: s3\n", "uplink.s3.endpoint: required"},
		{"bad format", "uplink:\n  format: csv\n", "uplink.format"},
		{"webhdfs relative root", "uplink:\n  target: webhdfs\n  webhdfs: {namenode: 'http://nn:9870', root: rel}\n", "uplink.webhdfs.root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("edged.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
	cfg, err := ParseConfig("edged.yaml", []byte("dataDir: /d\nuplink:\n  target: s3\n  s3: {endpoint: 'h:9000', bucket: b}\n"))
	if err != nil {
		t.Fatalf("valid s3 section: %v", err)
	}
	if uc := cfg.uplinkConfig(); uc.Node == "" || uc.JournalDir != "/d/uplink-journal" || uc.Local.Dir != "/d/uplink" || !uc.S3.TLS {
		t.Errorf("resolved uplink config: got node %q journal %q local %q tls %v; want defaults under /d",
			uc.Node, uc.JournalDir, uc.Local.Dir, uc.S3.TLS)
	}
}

// Sinks are named by pipeline and sink: two pipelines may each have a sink
// "cloud" (of different types), and each keeps its own spool and status.
func TestSinksOfTwoPipelinesWithOneNameStayApart(t *testing.T) {
	other := strings.NewReplacer("up1", "up2", "type: uplink", "type: file, path: x.jsonl").Replace(uplinkPipeline)
	cfg := testConfig(t, t.TempDir(), map[string]string{"up1": uplinkPipeline, "up2": other})
	tn := startNode(t, cfg, newFakeClock(t0))
	st, err := tn.Status()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range st.Sinks {
		names = append(names, s.Name+"="+s.Type)
	}
	if got := strings.Join(names, " "); got != "up1/cloud=uplink up2/cloud=file" {
		t.Errorf("sinks: got %s; want up1/cloud=uplink up2/cloud=file", got)
	}
}

// budgetNode runs up1 with a local uplink whose directory cannot be created
// (a file is in the way) and a one-byte spool quota under retention.
func budgetNode(t *testing.T, retention string) (*testNode, string, Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"up1": uplinkPipeline})
	cfg.Uplink.Format = "jsonl"
	cfg.Uplink.SpoolQuota = 1
	cfg.Uplink.Retention = retention
	cfg.Uplink.BackoffMin, cfg.Uplink.BackoffMax = 50*time.Millisecond, 100*time.Millisecond
	blocker := filepath.Join(dir, "uplink")
	if err := os.WriteFile(blocker, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startNode(t, cfg, newFakeClock(t0)), blocker, cfg
}

// An uplink sink with retention backpressure whose spool passes its quota
// stops Ingest (nothing acknowledged, so the broker keeps the messages),
// and Ingest accepts again within seconds of the target coming back; every
// output arrives, once.
func TestUplinkBackpressureStopsIngestUntilItDrains(t *testing.T) {
	tn, blocker, _ := budgetNode(t, "backpressure")
	ctx := context.Background()
	if err := tn.Ingest(ctx, []Message{msg("sensors/a/temp", `{"sensor":"a","temp":1}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "up1")
	want := []string{"a1"}
	n := 1
	eventually(t, 10*time.Second, func() error {
		n++
		err := tn.Ingest(ctx, []Message{msg("sensors/a/temp", fmt.Sprintf(`{"sensor":"a","temp":%d}`, 100+n))})
		if err == nil {
			want = append(want, fmt.Sprint("a", 100+n)) // accepted before the budget saw the spool: it must arrive
		}
		if !errors.Is(err, storage.ErrQuotaExceeded) || !strings.Contains(err.Error(), "up1/cloud") {
			return fmt.Errorf("ingest while the uplink is down and over quota: got %v; want back-pressure naming up1/cloud", err)
		}
		return nil
	})
	st, _ := tn.Status()
	if !st.Ingest.Backpressure {
		t.Error("status: ingest not reported back-pressured")
	}
	os.Remove(blocker) // the target comes back
	eventually(t, 10*time.Second, func() error {
		return tn.Ingest(ctx, []Message{msg("sensors/b/temp", `{"sensor":"b","temp":3}`)})
	})
	want = append(want, "b3")
	sort.Strings(want)
	tn.epoch(t, "up1")
	eventually(t, 10*time.Second, func() error {
		var got []string
		for _, rows := range readUplinkDir(t, filepath.Join(tn.cfg.DataDir, "uplink")) {
			for _, r := range rows {
				got = append(got, fmt.Sprint(r["sensor"], r["temp"]))
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("uploaded %v; want %v (what Ingest accepted, each once; the refused readings were never acknowledged)", got, want)
		}
		return nil
	})
}

// Under drop-oldest the spool is cut back to its quota instead, and every
// output is either uploaded or counted as dropped.
func TestUplinkDropOldestCountsWhatItDrops(t *testing.T) {
	tn, blocker, _ := budgetNode(t, "drop-oldest")
	ctx := context.Background()
	for i := range 5 {
		if err := tn.Ingest(ctx, []Message{msg("sensors/a/temp", fmt.Sprintf(`{"sensor":"a","temp":%d}`, i))}); err != nil {
			t.Fatalf("ingest %d under drop-oldest: %v", i, err)
		}
		tn.epoch(t, "up1")
	}
	os.Remove(blocker)
	eventually(t, 10*time.Second, func() error {
		us := tn.UplinkStatus()["up1/cloud"]
		if us.SpoolDepth != 0 || us.DroppedRows+us.Rows != 5 {
			return fmt.Errorf("uploaded %d + dropped %d, spool %d; want 5 and an empty spool", us.Rows, us.DroppedRows, us.SpoolDepth)
		}
		if us.DroppedRows == 0 {
			return fmt.Errorf("nothing dropped with a one-byte quota")
		}
		return nil
	})
}
