package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgedio/edged/storage"
)

func msg(topic, payload string) Message { return Message{Topic: topic, Payload: []byte(payload)} }

func TestIngestEpochsFileSinkAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	ctx := context.Background()

	err := tn.Ingest(ctx, []Message{
		msg("sensors/a/temp", `{"sensor":"a","temp":1}`),
		msg("sensors/b/temp", `{"sensor":"b","temp":2}`),
		msg("sensors/a/temp", `{"sensor":"a","temp":1}`), // redelivered copy: dropped
		{Topic: "sensors/a/temp", Payload: []byte(`{"sensor":"a","temp":3}`), Duplicate: true},
		msg("sensors/c/temp", `not json`),
		msg("other/topic", `{"sensor":"z","temp":9}`), // no subscriber
	})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	tn.epoch(t, "t1")

	clean := waitLines(t, filepath.Join(dir, "out", "clean.jsonl"), 3)
	if got, want := fmt.Sprint(ids(clean)), "[t1/0/1/1/0 t1/0/1/1/1 t1/0/1/1/2]"; got != want {
		t.Errorf("clean ids: got %s; want %s", got, want)
	}
	sums := waitLines(t, filepath.Join(dir, "out", "sums.jsonl"), 2)
	got := map[string]float64{}
	for _, l := range sums {
		got[l["sensor"].(string)] = l["state"].(float64)
	}
	if got["a"] != 4 || got["b"] != 2 || len(got) != 2 {
		t.Errorf("sums: got %v; want map[a:4 b:2]", got)
	}

	dls, err := tn.DB().ListDeadLetters(storage.DeadLetterFilter{Pipeline: "t1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Source != "readings" || string(dls[0].Payload) != "not json" || dls[0].Reason == "" {
		t.Errorf("dead letters: got %+v; want one for source readings with payload %q", dls, "not json")
	}
	st, err := tn.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingest.Messages != 6 || st.Ingest.Unrouted != 1 || st.Ingest.DedupDropped != 1 || st.Ingest.DuplicateFlag != 1 {
		t.Errorf("ingest status: got %+v; want 6 messages, 1 unrouted, 1 dedup-dropped, 1 DUP-flagged", st.Ingest)
	}
	if st.Pipelines[0].DecodeError != 1 {
		t.Errorf("decode errors: got %d; want 1", st.Pipelines[0].DecodeError)
	}
}

func TestRestartContinuesWithoutLossOrDuplication(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	clock := newFakeClock(t0)
	ctx := context.Background()

	tn := startNode(t, cfg, clock)
	for i := range 3 {
		if err := tn.Ingest(ctx, []Message{msg("sensors/a/temp", fmt.Sprintf(`{"sensor":"a","temp":%d}`, i+1))}); err != nil {
			t.Fatal(err)
		}
		tn.epoch(t, "t1")
	}
	// Logged but not yet consumed by an epoch when the node stops.
	if err := tn.Ingest(ctx, []Message{msg("sensors/b/temp", `{"sensor":"b","temp":10}`)}); err != nil {
		t.Fatal(err)
	}
	waitLines(t, filepath.Join(dir, "out", "clean.jsonl"), 3)
	tn.stop(t)

	tn2 := startNode(t, cfg, clock)
	// The 3 epochs, then the state commit of the graceful stop.
	if e := tn2.pipeByName("t1").r.Epoch(); e != 4 {
		t.Fatalf("restored epoch: got %d; want 4", e)
	}
	// A redelivery of a message logged before the restart is dropped.
	if err := tn2.Ingest(ctx, []Message{msg("sensors/b/temp", `{"sensor":"b","temp":10}`), msg("sensors/a/temp", `{"sensor":"a","temp":100}`)}); err != nil {
		t.Fatal(err)
	}
	tn2.epoch(t, "t1")
	clean := waitLines(t, filepath.Join(dir, "out", "clean.jsonl"), 5)
	if got, want := strings.Join(ids(clean), " "), "t1/0/1/1/0 t1/0/1/2/0 t1/0/1/3/0 t1/0/1/4/0 t1/0/1/4/1"; got != want {
		t.Errorf("clean ids after restart: got %s; want %s", got, want)
	}
	sums := waitLines(t, filepath.Join(dir, "out", "sums.jsonl"), 5)
	last := map[string]float64{}
	for _, l := range sums {
		if strings.HasPrefix(l["_id"].(string), "t1/0/1/4/") {
			last[l["sensor"].(string)] = l["state"].(float64)
		}
	}
	if last["a"] != 106 || last["b"] != 10 {
		t.Errorf("sums in epoch 4: got %v; want a=106 (1+2+3+100, state restored) b=10", last)
	}
}

func TestIngestBackPressureAtQuota(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	cfg.Storage.QuotaBytes = 1 // any data exceeds it
	tn := startNode(t, cfg, newFakeClock(t0))
	err := tn.Ingest(context.Background(), []Message{msg("sensors/a/temp", `{"sensor":"a","temp":1}`)})
	if !errors.Is(err, storage.ErrQuotaExceeded) {
		t.Fatalf("Ingest at quota: got %v; want ErrQuotaExceeded", err)
	}
	st, _ := tn.Status()
	if !st.Ingest.Backpressure || len(st.Conditions) == 0 {
		t.Errorf("status at quota: got backpressure=%v conditions=%q; want true and a status line", st.Ingest.Backpressure, st.Conditions)
	}
}

func TestStartRejectsEveryInvalidPipeline(t *testing.T) {
	dir := t.TempDir()
	bad1 := strings.Replace(testPipeline, "name: t1", "name: bad1", 1)
	bad1 = strings.Replace(bad1, "filter: temp > -100", "filter: nosuch > 1", 1)
	bad2 := "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: bad2}\nspec: {bogus: 1}\n"
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline, "bad1": bad1, "bad2": bad2})
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if err == nil {
		t.Fatal("Run with invalid pipelines: got nil; want an error")
	}
	for _, want := range []string{"bad1.yaml", "nosuch", "bad2.yaml", "bogus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run error %q does not mention %q", err, want)
		}
	}
}

// TestIngestDedupsOnTopicAndPayload: the input log drops a message equal to a
// recent one in topic and payload, and keeps equal payloads that arrived on
// different topics (both are logged with their topic).
func TestIngestDedupsOnTopicAndPayload(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	ctx := context.Background()
	payload := `{"sensor":"a","temp":1}`
	if err := tn.Ingest(ctx, []Message{msg("sensors/a/temp", payload), msg("sensors/b/temp", payload)}); err != nil {
		t.Fatal(err)
	}
	if err := tn.Ingest(ctx, []Message{msg("sensors/b/temp", payload)}); err != nil {
		t.Fatal(err)
	}
	st, err := tn.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingest.Messages != 3 || st.Ingest.DedupDropped != 1 {
		t.Errorf("ingest status: got %+v; want 3 messages, 1 dedup-dropped", st.Ingest)
	}
	ds, err := tn.DB().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Log[LogMQTT].Records; got != 2 {
		t.Errorf("log records: got %d; want 2 (one per topic)", got)
	}
}
