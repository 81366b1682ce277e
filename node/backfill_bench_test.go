package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/pipeline"
)

// BenchmarkBackfillRate measures, on the same records (200,000 readings of
// 1,000 sensors, a per-sensor 1 s tumbling window with count and avg,
// partitioned by sensor): the backfill API (into the spool, committed to
// bbolt, one core), the offline backfill of edged batch --from-log (state in
// memory), and edged batch --input in arrival order. Each reports records/s.
//
//	go test ./node -run '^$' -bench BackfillRate -benchtime 1x
func BenchmarkBackfillRate(b *testing.B) {
	const sensors, total = 1000, 200_000
	var file bytes.Buffer
	var msgs []Message
	for i := range total {
		p := fmt.Sprintf(`{"sensor":"s%04d","ts":%d,"temp":%.2f}`, i%sensors, 1_700_000_000_000+int64(i/sensors)*50, 15+float64(i%997)/100)
		file.WriteString(p + "\n")
		msgs = append(msgs, Message{Topic: fmt.Sprintf("sensors/s%04d/temp", i%sensors), Payload: []byte(p)})
	}
	y := `apiVersion: edged/v1
kind: Pipeline
metadata: {name: rate}
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
      watermark: 1s
      key: [sensor]
  steps:
    - name: per-second
      window: {type: tumbling, size: 1s, keys: [sensor], output: append, aggregates: [{n: count()}, {avg: avg(temp)}]}
  sinks:
    - {name: out, input: per-second, type: file, path: rate.jsonl}
`
	for range b.N {
		dir := b.TempDir()
		cfg := testConfig(b, dir, map[string]string{"rate": y})
		tn := startNode(b, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
		from := time.Now()
		for i := 0; i < len(msgs); i += 4096 {
			if err := tn.Ingest(context.Background(), msgs[i:min(i+4096, len(msgs))]); err != nil {
				b.Fatal(err)
			}
		}
		p := tn.pipeByName("rate")
		last := time.Now().UnixMilli()
		eventually(b, time.Minute, func() error {
			if p.r.Status().Backlog[LogMQTT] > 0 || p.r.Status().LastTime <= last+1000 {
				return fmt.Errorf("live run behind")
			}
			return nil
		})
		to := time.UnixMilli(p.r.Status().LastTime)

		b.ResetTimer()
		start := time.Now()
		info, err := tn.StartBackfill("rate", BackfillOptions{From: from, To: to, CPUShare: 1})
		if err != nil {
			b.Fatal(err)
		}
		eventually(b, time.Minute, func() error {
			if st := tn.Backfills("rate")[0]; st.State == BackfillRunning {
				return fmt.Errorf("backfill at %v", st.Reached)
			}
			return nil
		})
		api := time.Since(start)
		if st := tn.Backfills("rate")[0]; st.State != BackfillDone || st.Entries != total {
			b.Fatalf("backfill %s: %d entries of %d", st.State, st.Entries, total)
		}
		_ = info

		c, err := pipeline.ParseAndCompile("rate.yaml", []byte(y))
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		res, err := RunBackfillOffline(context.Background(), tn.db, c, from, to, false, false, func(string, []byte) error { return nil })
		if err != nil || res.Entries != total {
			b.Fatalf("offline: %v, %d entries", err, res.Entries)
		}
		offline := time.Since(start)

		c, _ = pipeline.ParseAndCompile("rate.yaml", []byte(y))
		start = time.Now()
		var out bytes.Buffer
		if _, err := pipeline.RunBatch(context.Background(), c, pipeline.BatchOptions{Input: bytes.NewReader(file.Bytes()), Output: &out}); err != nil {
			b.Fatal(err)
		}
		batch := time.Since(start)
		b.StopTimer()
		tn.stop(b)
		b.ReportMetric(total/api.Seconds(), "backfill_api_rec/s")
		b.ReportMetric(total/offline.Seconds(), "from_log_rec/s")
		b.ReportMetric(total/batch.Seconds(), "batch_input_rec/s")
	}
}
