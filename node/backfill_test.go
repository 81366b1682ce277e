package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// bfPipeline has a processing-time window (its results depend on where
// epochs are cut) and an event-time window, both partitioned by sensor.
const bfPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: bf}
spec:
  interval: 200ms
  idleTimeout: 1h # no window closes by idleness while the test compares
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
    - name: recent
      dstreamWindow: {op: reduceByKeyAndWindow, size: 600ms, slide: 200ms, key: sensor, value: temp, func: sum}
    - name: per-second
      input: readings
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - avg: avg(temp)
  sinks:
    - {name: recent-out, input: recent, type: file, path: recent.jsonl}
    - {name: second-out, input: per-second, type: file, path: second.jsonl}
`

// bfLines reads a file sink's lines with the pipeline name of each "_id"
// replaced by P, sorted by id.
func bfLines(t *testing.T, path, pipeline string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %q: %v", path, l, err)
		}
		id, err := engine.ParseOutputID(m.ID)
		if err != nil || id.Pipeline != pipeline {
			t.Fatalf("%s: id %q is not of pipeline %q", path, m.ID, pipeline)
		}
		id.Pipeline = "P"
		out = append(out, strings.Replace(l, m.ID, id.String(), 1))
	}
	slices.Sort(out)
	return out
}

// TestBackfillGivesTheLiveRunsOutputs runs a live pipeline on the system
// clock while input arrives continuously (so commits land on every epoch
// boundary), then backfills the same period over the retained log: every
// output of both sinks is byte for byte the live one, ids included but for
// the pipeline name. With epochs.cut: read the live epochs are not a
// function of the log and the comparison fails: BF_CUT=read go test -run
// TestBackfillGivesTheLiveRunsOutputs ./node (4 of 4 runs failed).
func TestBackfillGivesTheLiveRunsOutputs(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"bf": bfPipeline})
	cfg.Epochs.Cut = os.Getenv("BF_CUT")
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	p := tn.pipeByName("bf")
	from := time.Now()
	start := time.Now().UnixMilli()
	ctx := context.Background()
	for i := 0; p.r.Status().LastTime < start+1400; i++ {
		var msgs []Message
		for s := range 5 {
			now := time.Now().UnixMilli()
			msgs = append(msgs, Message{Topic: fmt.Sprintf("sensors/s%d/temp", s),
				Payload: fmt.Appendf(nil, `{"sensor":"s%d","ts":%d,"temp":%d.%d}`, s, now, 20+i%7, i%10)})
		}
		if err := tn.Ingest(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	// Let the processing-time windows empty and the last outputs arrive.
	last := time.Now().UnixMilli()
	eventually(t, 10*time.Second, func() error {
		if lt := p.r.Status().LastTime; lt < last+1000 {
			return fmt.Errorf("live epoch at %d", lt)
		}
		return nil
	})
	to := time.UnixMilli(p.r.Status().LastTime)

	info, err := tn.StartBackfill("bf", BackfillOptions{From: from, To: to, CPUShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if in := tn.Backfills("bf")[0]; in.State != BackfillDone {
			return fmt.Errorf("backfill %s: %+v", in.State, in)
		}
		return nil
	})
	out := cfg.outputDir()
	for _, sk := range []string{"recent", "second"} {
		var live, bf []string
		eventually(t, 10*time.Second, func() error {
			live = bfLines(t, filepath.Join(out, sk+".jsonl"), "bf")
			bf = bfLines(t, filepath.Join(out, "backfill", info.Name, sk+".jsonl"), info.Name)
			if len(bf) == 0 || len(live) != len(bf) {
				return fmt.Errorf("sink %s: live %d outputs, backfill %d\n%s\n\n%s", sk, len(live), len(bf), strings.Join(live, "\n"), strings.Join(bf, "\n"))
			}
			return nil
		})
		if !slices.Equal(live, bf) {
			for i := range live {
				if live[i] != bf[i] {
					t.Fatalf("sink %s: %d outputs; first difference at %d:\nlive:     %s\nbackfill: %s", sk, len(live), i, live[i], bf[i])
				}
			}
		}
		t.Logf("sink %s: %d outputs identical", sk, len(live))
	}
	st := tn.Backfills("bf")[0]
	if st.Entries == 0 || st.Progress != 1 {
		t.Fatalf("status: %+v", st)
	}
	// Its state goes once its sinks delivered everything.
	eventually(t, 10*time.Second, func() error {
		cp, err := tn.db.LastCheckpoint(info.Name, -1)
		if err != nil || cp.Input != nil {
			return fmt.Errorf("backfill checkpoint still there: %+v %v", cp, err)
		}
		return nil
	})
}

// TestBackfillRefusesAPeriodTheLogNoLongerHolds: with no retention the log
// is truncated once consumed; a backfill over that period is refused with
// the missing part named, runs nothing, and runs with partial=true.
func TestBackfillRefusesAPeriodTheLogNoLongerHolds(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"bf": bfPipeline})
	cfg.InputLog.Retain = -1
	cfg.Epochs.StateEvery = -1 // the log is kept from the last state commit on: commit it every epoch
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	p := tn.pipeByName("bf")
	from := time.Now()
	ctx := context.Background()
	for i := range 3 {
		if err := tn.Ingest(ctx, []Message{{Topic: "sensors/a/temp", Payload: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"temp":%d}`, time.Now().UnixMilli(), i)}}); err != nil {
			t.Fatal(err)
		}
	}
	tn.lastTruncate.Store(0)
	eventually(t, 10*time.Second, func() error {
		tn.maybeTruncate()
		st, _ := tn.db.Stats()
		if ls := st.Log[LogMQTT]; ls.Records != 0 || p.r.Status().Backlog[LogMQTT] != 0 {
			tn.lastTruncate.Store(0)
			return fmt.Errorf("log not truncated yet: %+v", ls)
		}
		return nil
	})
	// No truncation for a while (a retry above may have left the clock of
	// truncations at zero while the truncation was still committing).
	tn.lastTruncate.Store(time.Now().UnixMilli())
	// Something arrives after the truncation: the log holds it.
	if err := tn.Ingest(ctx, []Message{{Topic: "sensors/a/temp", Payload: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"temp":9}`, time.Now().UnixMilli())}}); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	eventually(t, 10*time.Second, func() error {
		if time.Now().Before(held.Add(time.Second)) {
			return errors.New("wait for the interval to end")
		}
		return nil
	})
	to := time.Now().Add(-200 * time.Millisecond)

	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	url := fmt.Sprintf("%s/api/v1/pipelines/bf/backfill?from=%s&to=%s", srv.URL, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	resp, err := http.Post(url, "application/yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error   string   `json:"error"`
		Missing []LogGap `json:"missing"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || len(body.Missing) != 1 {
		t.Fatalf("status %d, body %+v; want 422 naming the missing period", resp.StatusCode, body)
	}
	g := body.Missing[0]
	if g.Log != LogMQTT || g.From.After(from) || g.To.Before(from) || g.To.After(held) {
		t.Fatalf("missing %+v; want log mqtt from <= %v to a time in [%v, %v]", g, from, from, held)
	}
	if !strings.Contains(body.Error, "no longer holds") || !strings.Contains(body.Error, "partial=true") {
		t.Fatalf("error %q does not say what is missing and what to do", body.Error)
	}
	if bs := tn.Backfills("bf"); len(bs) != 0 {
		t.Fatalf("a refused backfill was started: %+v", bs)
	}
	resp, err = http.Post(url+"&partial=true", "application/yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var info BackfillInfo
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(info.Missing) != 1 {
		t.Fatalf("partial: status %d, %+v", resp.StatusCode, info)
	}
	eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(srv.URL + "/api/v1/pipelines/bf/backfill/" + info.ID)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var in BackfillInfo
		json.NewDecoder(resp.Body).Decode(&in)
		if in.State != BackfillDone || in.Entries != 1 {
			return fmt.Errorf("%+v", in)
		}
		return nil
	})
}

// TestInputLogRetainsConsumedInputAndYieldsToTheBudget: consumed input stays
// in the log (inputLog.retain), and while input is back-pressured at the
// disk budget the oldest retained input goes first, counted; a backfill
// over what went is then refused with the gap.
func TestInputLogRetainsConsumedInputAndYieldsToTheBudget(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"bf": bfPipeline})
	cfg.Epochs.StateEvery = -1 // the log is kept from the last state commit on: commit it every epoch
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	p := tn.pipeByName("bf")
	from := time.Now().Add(-2 * time.Second)
	first := time.Now()
	ctx := context.Background()
	for i := range 20 {
		msg := Message{Topic: "sensors/a/temp", Payload: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"temp":%d}`, time.Now().UnixMilli(), i)}
		if err := tn.Ingest(ctx, []Message{msg}); err != nil {
			t.Fatal(err)
		}
	}
	truncate := func() storage.LogStats {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if p.r.Status().Position[LogMQTT] != tn.logNext(LogMQTT) || tn.truncating.Load() {
				return errors.New("not consumed yet")
			}
			return nil
		})
		tn.lastTruncate.Store(0)
		tn.maybeTruncate() // one truncation, in the background
		eventually(t, 10*time.Second, func() error {
			if tn.truncating.Load() {
				return errors.New("truncating")
			}
			return nil
		})
		st, _ := tn.db.Stats()
		return st.Log[LogMQTT]
	}
	if ls := truncate(); ls.Records != 20 || ls.First != 1 {
		t.Fatalf("after truncation the log holds %+v; want the 20 consumed entries retained", ls)
	}
	tn.backpressure.Store(true)
	ls := truncate()
	tn.backpressure.Store(false)
	if ls.Records >= 20 || ls.Records == 0 || tn.bf.retainDropped.Load() != 20-ls.Records {
		t.Fatalf("at the budget: log %+v, %d counted as dropped; want the oldest quarter of the bytes gone and counted", ls, tn.bf.retainDropped.Load())
	}
	last := time.Now()
	eventually(t, 5*time.Second, func() error {
		if time.Since(last) < 500*time.Millisecond {
			return errors.New("the period's last interval has not ended yet")
		}
		return nil
	})
	_, err := tn.StartBackfill("bf", BackfillOptions{From: from, To: last.Add(100 * time.Millisecond)})
	var ge *GapError
	if !errors.As(err, &ge) || ge.Gaps[0].To.Before(first) {
		t.Fatalf("backfill over dropped input: %v; want a GapError", err)
	}
}

// TestBackfillCancel: DELETE stops a running backfill between epochs; its
// status says canceled and where it stopped, and its state is freed.
func TestBackfillCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"bf": bfPipeline})
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	// An hour of 200 ms epochs at a hundredth of a core: it runs for minutes.
	info, err := tn.StartBackfill("bf", BackfillOptions{From: time.Now().Add(-time.Hour), To: time.Now().Add(-time.Second), CPUShare: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if in := tn.Backfills("bf")[0]; in.Progress == 0 {
			return errors.New("no epoch yet")
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/v1/pipelines/bf/backfill/"+info.ID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in BackfillInfo
	json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || in.State != BackfillCanceled || in.Finished == nil || in.Progress <= 0 || in.Progress >= 1 {
		t.Fatalf("cancel: %d %+v", resp.StatusCode, in)
	}
	eventually(t, 10*time.Second, func() error {
		cp, err := tn.db.LastCheckpoint(info.Name, -1)
		if err != nil || cp.Input != nil {
			return fmt.Errorf("canceled backfill's checkpoint still there: %+v %v", cp, err)
		}
		return nil
	})
}

// TestBackfillReadsTheLivePipelinesInputSources: entries of an http source
// are logged under a topic that names the live pipeline; its backfill
// (named apart) still reads them.
func TestBackfillReadsTheLivePipelinesInputSources(t *testing.T) {
	const y = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: pushed}
spec:
  interval: 200ms
  sources:
    - name: in
      http: {}
      fields: [{name: v, type: number}]
  steps:
    - {name: big, filter: v > 1}
  sinks:
    - {name: out, input: big, type: file, path: pushed.jsonl}
`
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"pushed": y})
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	from := time.Now()
	if code, body := post(t, tn.Handler(), "/api/v1/ingest/pushed/in", "", "{\"v\":1}\n{\"v\":2}\n{\"v\":3}\n"); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	live := waitLines(t, filepath.Join(cfg.outputDir(), "pushed.jsonl"), 2)
	eventually(t, 5*time.Second, func() error {
		if time.Since(from) < time.Second {
			return errors.New("the period's last interval has not ended yet")
		}
		return nil
	})
	info, err := tn.StartBackfill("pushed", BackfillOptions{From: from, To: from.Add(500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	bf := waitLines(t, filepath.Join(cfg.outputDir(), "backfill", info.Name, "pushed.jsonl"), 2)
	if len(bf) != len(live) || tn.Backfills("pushed")[0].Entries == 0 {
		t.Fatalf("backfill: %d outputs (live %d), status %+v", len(bf), len(live), tn.Backfills("pushed")[0])
	}
}

// TestBackfillLeavesHistoryTablesAlone: a backfill of a new version of a
// pipeline that writes a history table, with other columns, neither drops
// nor rewrites the live table.
func TestBackfillLeavesHistoryTablesAlone(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"writer": historyWriter})
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	from := time.Now()
	ctx := context.Background()
	for i := range 5 {
		if err := tn.Ingest(ctx, []Message{{Topic: "sensors/a/temp", Payload: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"temp":%d}`, time.Now().UnixMilli()+int64(i), i)}}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() int64 {
		ts, err := tn.db.Tables()
		if err != nil || len(ts) != 1 {
			t.Fatalf("tables %+v %v", ts, err)
		}
		return ts[0].Rows
	}
	eventually(t, 10*time.Second, func() error {
		if tn.db == nil || len(mustTables(tn)) == 0 || rows() != 5 {
			return errors.New("live rows not written yet")
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		if time.Since(from) < 2*time.Second {
			return errors.New("the period's last interval has not ended yet")
		}
		return nil
	})
	v2 := strings.Replace(historyWriter, "{name: temp, type: number}]", "{name: temp, type: number}, {name: extra, type: string}]", 1)
	info, err := tn.StartBackfill("writer", BackfillOptions{From: from, To: from.Add(time.Second), Spec: []byte(v2)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if st := tn.Backfills("writer")[0]; st.State != BackfillDone || st.Entries != 5 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if got := rows(); got != 5 {
		t.Fatalf("the live table has %d rows after the backfill %s; want its 5", got, info.Name)
	}
	ts, _ := tn.db.Tables()
	if len(ts[0].Cols) != 2 {
		t.Fatalf("the live table's columns changed: %+v", ts[0].Cols)
	}
}

func mustTables(tn *testNode) []storage.TableInfo {
	ts, _ := tn.db.Tables()
	return ts
}

// TestTruncationKeepsWhatARestartReplays: with the state committed every
// epochs.stateEvery, the log is truncated only behind the last state
// commit's position (runner Status.Replay), not behind what the pipeline
// consumed, so the entries a restart after a crash replays stay. A graceful
// stop commits the state: the restarted node resumes where it was with
// nothing to replay.
func TestTruncationKeepsWhatARestartReplays(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"bf": bfPipeline})
	cfg.InputLog.Retain = -1
	cfg.Epochs.StateEvery = time.Hour
	tn := startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	p := tn.pipeByName("bf")
	ctx := context.Background()
	for i := range 3 {
		if err := tn.Ingest(ctx, []Message{{Topic: "sensors/a/temp", Payload: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"temp":%d}`, time.Now().UnixMilli(), i)}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if st := p.r.Status(); st.Backlog[LogMQTT] != 0 || st.Position[LogMQTT] < 4 {
			return fmt.Errorf("not consumed yet: %+v", st)
		}
		return nil
	})
	tn.lastTruncate.Store(0)
	tn.maybeTruncate()
	eventually(t, 10*time.Second, func() error {
		if tn.truncating.Load() {
			return errors.New("truncating")
		}
		return nil
	})
	st, err := tn.db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if ls := st.Log[LogMQTT]; ls.Records != 3 {
		t.Fatalf("log after a truncation: %+v; want the 3 consumed entries kept (the state was not committed since)", ls)
	}
	want := p.r.Status()
	tn.stop(t)
	tn = startNode(t, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
	if got := tn.pipeByName("bf").r.Status(); got.Epoch != want.Epoch+1 || got.Position[LogMQTT] != want.Position[LogMQTT] || got.Replay[LogMQTT] != got.Position[LogMQTT] {
		t.Errorf("restarted: epoch %d at %d, replay from %d; want epoch %d (the stop's state commit) at %d, nothing to replay",
			got.Epoch, got.Position[LogMQTT], got.Replay[LogMQTT], want.Epoch+1, want.Position[LogMQTT])
	}
}
