package node

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/edgedio/edged/uplink/s3test"
	"github.com/parquet-go/parquet-go"
)

const typedUplinkPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: up3}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp"]}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: int}
        - {name: ts, type: time}
        - {name: temp, type: number}
  sinks:
    - {name: cloud, input: readings, type: uplink}
`

// TestUplinkParquetHasThePipelineSchema: the node declares each uplinked
// output's schema from the plan, so every object has the same typed
// columns in the pipeline's order (int as INT64, time as TIMESTAMP) even
// when a batch lacks a field, under pipeline=P/sink=S/date=…/hour=….
func TestUplinkParquetHasThePipelineSchema(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"up3": typedUplinkPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	ctx := context.Background()
	if err := tn.Ingest(ctx, []Message{
		msg("sensors/a/temp", `{"sensor":"a","seq":1,"ts":1704106799000,"temp":21.5}`),
		msg("sensors/a/temp", `{"sensor":"a","seq":2,"ts":1704106800000,"temp":22}`),
	}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "up3")
	if err := tn.Ingest(ctx, []Message{msg("sensors/b/temp", `{"sensor":"b","seq":3,"ts":1704106801000}`)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "up3")
	for name, u := range tn.uploaderMap() {
		ctx, cancel := context.WithTimeout(ctx, 10e9)
		if err := u.Flush(ctx); err != nil {
			t.Fatalf("flush %s: %v", name, err)
		}
		cancel()
	}
	root := filepath.Join(dir, "uplink")
	var keys []string
	want := "message schema {\n\toptional binary sensor (STRING);\n\toptional int64 seq (INT(64,true));\n" +
		"\toptional int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));\n\toptional double temp;\n\trequired binary _id (STRING);\n}"
	rows := map[string]map[string]any{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		keys = append(keys, filepath.ToSlash(rel))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parquet.OpenFile(strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if got := f.Schema().String(); got != want {
			t.Errorf("%s: schema\n%s\nwant\n%s", rel, got, want)
		}
		for _, r := range s3test.ReadParquet(t, b) {
			rows[r["_id"].(string)] = r
		}
		return nil
	})
	sort.Strings(keys)
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "pipeline=up3/sink=cloud/date=2024-01-01/hour=10/") ||
		!strings.HasPrefix(keys[1], "pipeline=up3/sink=cloud/date=2024-01-01/hour=11/") {
		t.Fatalf("keys = %v; want the batch split over hours 10 and 11", keys)
	}
	if got := rows["up3/0/1/2/0"]; !reflect.DeepEqual(got, map[string]any{"sensor": "b", "seq": int64(3), "ts": int64(1704106801000), "_id": "up3/0/1/2/0"}) {
		t.Errorf("row without temp = %v", got)
	}
	if len(rows) != 3 {
		t.Errorf("rows = %v; want 3", rows)
	}
}
