package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// historyWriter keeps every reading in the table temps. Its source
// declares a key, so it runs as several partitions whose rows commit in
// one transaction.
const historyWriter = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: writer}
spec:
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp", "sensors/+/now"]}
      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: temp, type: number}]
      eventTime: ts
      key: [sensor]
  steps:
    - name: keep
      history: {table: temps, keys: [sensor], keep: 7d}
  sinks:
    - {name: out, input: keep, type: file, path: written.jsonl}
`

// historyReader joins each reading with the same sensor's reading an
// hour before, from the table the writer pipeline keeps. It reads only the
// later readings (topic now), so what it joins does not depend on whether
// the writer committed the earlier ones before its epoch or after.
const historyReader = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: reader}
spec:
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/now"]}
      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: temp, type: number}]
      eventTime: ts
  steps:
    - name: vs-hour-ago
      historyJoin: {table: temps, keys: [sensor], offset: 1h, fields: [{name: temp, type: number}]}
  sinks:
    - {name: out, input: vs-hour-ago, type: file, path: joined.jsonl}
`

// TestHistoryTablesAcrossPipelinesAndAPI: one pipeline writes a history
// table in its epochs, another joins its live readings against it; the API
// lists the table and reads its rows by key and time range (RFC 3339), and
// apply refuses a reader whose keys are not the table's, naming the file,
// line and key.
func TestHistoryTablesAcrossPipelinesAndAPI(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"writer": historyWriter, "reader": historyReader})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	ctx := context.Background()
	h := int64(3600_000)
	base := t0.UnixMilli() / h * h
	reading := func(sensor string, ts int64, temp float64) Message {
		topic := "sensors/" + sensor + "/temp"
		if ts >= base {
			topic = "sensors/" + sensor + "/now"
		}
		return msg(topic, fmt.Sprintf(`{"sensor":%q,"ts":%d,"temp":%v}`, sensor, ts, temp))
	}
	if err := tn.Ingest(ctx, []Message{reading("a", base-h, 10), reading("b", base-h, 20), reading("a", base-2*h, 5)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "writer")
	tn.epoch(t, "reader")
	if n := tn.pipeByName("writer").r.Status().Partitions; n < 2 {
		t.Fatalf("the writer runs as %d partitions; want several", n)
	}
	// An hour later: a joins its reading of an hour before, c has none.
	if err := tn.Ingest(ctx, []Message{reading("a", base, 11), reading("c", base, 30)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "reader")
	var joined []map[string]any
	eventually(t, 10*time.Second, func() error {
		if joined = readLines(t, dir+"/out/joined.jsonl"); len(joined) == 0 {
			return fmt.Errorf("nothing joined yet")
		}
		return nil
	})
	var got []string
	for _, r := range joined {
		got = append(got, fmt.Sprintf("%v %v %v", r["sensor"], r["temp"], r["hist_temp"]))
	}
	if fmt.Sprint(got) != "[a 11 10]" {
		t.Fatalf("joined: %v; want a's 11 with its 10 of an hour before", got)
	}

	// The writer commits its second epoch on its own time: wait for its rows.
	var list struct{ Tables []TableSummary }
	eventually(t, 10*time.Second, func() error {
		code, body := do(t, "GET", srv.URL+"/api/v1/tables", "", "")
		list.Tables = nil
		if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Tables) != 1 {
			return fmt.Errorf("GET /api/v1/tables: %d %s", code, body)
		}
		if list.Tables[0].Rows < 5 {
			return fmt.Errorf("GET /api/v1/tables: %d rows so far", list.Tables[0].Rows)
		}
		return nil
	})
	// Five readings were written: three, then two more.
	if tb := list.Tables[0]; tb.Name != "temps" || tb.Writer != "writer/keep" || tb.Rows != 5 || tb.Keep != "168h0m0s" ||
		tb.Bytes <= 0 || fmt.Sprint(tb.Keys) != "[{sensor string}]" || fmt.Sprint(tb.Columns) != "[{ts time} {temp number}]" {
		t.Fatalf("GET /api/v1/tables: %+v", tb)
	}
	iso := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
	q := url.Values{"key": {"a"}, "from": {iso(base - 2*h)}, "to": {iso(base - h)}}
	code, body := do(t, "GET", srv.URL+"/api/v1/tables/temps?"+q.Encode(), "", "")
	var rows TableRows
	if err := json.Unmarshal([]byte(body), &rows); code != 200 || err != nil {
		t.Fatalf("GET rows: %d %s", code, body)
	}
	var temps []string
	for _, r := range rows.Rows {
		var m map[string]any
		json.Unmarshal(r, &m)
		temps = append(temps, fmt.Sprint(m["sensor"], " ", m["temp"], " ", m["time_rfc3339"]))
	}
	if strings.Join(rows.Columns, ",") != "sensor,time,ts,temp" || len(temps) != 2 ||
		temps[0] != "a 5 "+strings.TrimSuffix(iso(base-2*h), "Z")+".000Z" || !strings.HasPrefix(temps[1], "a 10 ") {
		t.Fatalf("rows of a in [base-2h, base-h]: columns %v rows %v", rows.Columns, temps)
	}
	for path, want := range map[string]int{
		"/api/v1/tables/nope":                  404,
		"/api/v1/tables/temps?from=yesterday":  400,
		"/api/v1/tables/temps?key=a&key=extra": 400,
	} {
		if code, body := do(t, "GET", srv.URL+path, "", ""); code != want {
			t.Errorf("GET %s: %d %s; want %d", path, code, body, want)
		}
	}

	bad := strings.Replace(historyReader, "keys: [sensor], offset", "keys: [ts], offset", 1)
	code, body = do(t, "PUT", srv.URL+"/api/v1/pipelines/reader", "", bad)
	if code != 400 || !strings.Contains(body, `reader.yaml:12: spec.steps[0].historyJoin.keys: table \"temps\" has key columns [sensor]`) {
		t.Fatalf("PUT a reader with other keys: %d %s", code, body)
	}
}

// historyModel flags readings far from each sensor's model.
const historyModel = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: model}
spec:
  sources:
    - name: readings
      mqtt: {topics: ["sensors/+/temp", "sensors/+/now"]}
      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: temp, type: number}]
      eventTime: ts
  steps:
    - name: unusual
      anomaly: {keys: [sensor], value: temp, warmup: 3, minStd: 0.5}
  sinks:
    - {name: out, input: unusual, type: file, path: anomalies.jsonl}
`

// TestHistoryAndModelsSurviveARestart: after a restart of the node, the
// join reads the rows written before it (the table is durable, in the
// node's database) and the anomaly models continue from their checkpoint:
// three readings warmed sensor a's model before the restart, so a spike
// after it is an anomaly, with the band the three readings gave.
func TestHistoryAndModelsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"writer": historyWriter, "reader": historyReader, "model": historyModel})
	clock := newFakeClock(t0)
	ctx := context.Background()
	h := int64(3600_000)
	base := t0.UnixMilli() / h * h
	reading := func(sensor string, ts int64, temp float64) Message {
		topic := "sensors/" + sensor + "/temp"
		if ts >= base {
			topic = "sensors/" + sensor + "/now"
		}
		return msg(topic, fmt.Sprintf(`{"sensor":%q,"ts":%d,"temp":%v}`, sensor, ts, temp))
	}
	tn := startNode(t, cfg, clock)
	if err := tn.Ingest(ctx, []Message{reading("a", base-h, 20), reading("a", base-h+1, 20.2), reading("a", base-h+2, 19.8)}); err != nil {
		t.Fatal(err)
	}
	tn.epoch(t, "model")
	tn.stop(t)

	tn2 := startNode(t, cfg, clock)
	if err := tn2.Ingest(ctx, []Message{reading("a", base+2, 40)}); err != nil {
		t.Fatal(err)
	}
	tn2.epoch(t, "model")
	var joined, events []map[string]any
	eventually(t, 10*time.Second, func() error {
		joined, events = readLines(t, dir+"/out/joined.jsonl"), readLines(t, dir+"/out/anomalies.jsonl")
		if len(joined) == 0 || len(events) == 0 {
			return fmt.Errorf("joined %d, anomalies %d", len(joined), len(events))
		}
		return nil
	})
	if j := joined[0]; len(joined) != 1 || j["temp"] != 40.0 || j["hist_temp"] != 19.8 {
		t.Fatalf("joined after the restart: %v; want 40 against the 19.8 of an hour (to the millisecond) before", joined)
	}
	if e := events[0]; len(events) != 1 || e["value"] != 40.0 || e["event"] != "anomaly" || e["expected"].(float64) < 19.9 || e["expected"].(float64) > 20.1 {
		t.Fatalf("anomalies after the restart: %v; want one, for 40, expecting about 20", events)
	}
}
