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
	file, msgs := rateRecords()
	y := rateYAML
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
		if st := tn.Backfills("rate")[0]; st.State != BackfillDone || st.Entries != rateTotal {
			b.Fatalf("backfill %s: %d entries of %d", st.State, st.Entries, rateTotal)
		}
		_ = info

		c, err := pipeline.ParseAndCompile("rate.yaml", []byte(y))
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		res, err := RunBackfillOffline(context.Background(), tn.db, c, from, to, false, false, func(string, []byte) error { return nil })
		if err != nil || res.Entries != rateTotal {
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
		b.ReportMetric(rateTotal/api.Seconds(), "backfill_api_rec/s")
		b.ReportMetric(rateTotal/offline.Seconds(), "from_log_rec/s")
		b.ReportMetric(rateTotal/batch.Seconds(), "batch_input_rec/s")
	}
}

// rateSensors and rateTotal size the records of the rate benchmarks.
const rateSensors, rateTotal = 1000, 200_000

// rateRecords returns the rate benchmarks' readings, as a JSON-lines file
// (for edged batch --input) and as MQTT messages, in the same order.
func rateRecords() (*bytes.Buffer, []Message) {
	var file bytes.Buffer
	var msgs []Message
	for i := range rateTotal {
		p := fmt.Sprintf(`{"sensor":"s%04d","ts":%d,"temp":%.2f}`, i%rateSensors, 1_700_000_000_000+int64(i/rateSensors)*50, 15+float64(i%997)/100)
		file.WriteString(p + "\n")
		msgs = append(msgs, Message{Topic: fmt.Sprintf("sensors/s%04d/temp", i%rateSensors), Payload: []byte(p)})
	}
	return &file, msgs
}

// rateYAML is the rate benchmarks' pipeline: a per-sensor 1 s tumbling
// window with count and avg, partitioned by sensor, into a file sink.
const rateYAML = `apiVersion: edged/v1
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

// BenchmarkReplay measures the catch-up path of a restarted gateway beside
// edged batch on the same records: 200,000 readings are logged (and
// acknowledged) while the pipeline's epochs do not run (a clock that does
// not move), the node stops, and a new node on the same data directory
// reads them back from the log file, decodes them, runs the epochs and
// commits state and outputs, timed from its start to the last epoch
// (replay_rec/s); then edged batch --input runs the same records in memory
// (batch_input_rec/s).
//
//	go test ./node -run '^$' -bench Replay -benchtime 1x
func BenchmarkReplay(b *testing.B) {
	file, msgs := rateRecords()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		cfg := testConfig(b, dir, map[string]string{"rate": rateYAML})
		tn := startNode(b, cfg, newFakeClock(t0))
		for i := 0; i < len(msgs); i += 4096 {
			if err := tn.Ingest(context.Background(), msgs[i:min(i+4096, len(msgs))]); err != nil {
				b.Fatal(err)
			}
		}
		if p := tn.pipeByName("rate").r.Status().Position[LogMQTT]; p > 1 {
			b.Fatalf("the pipeline consumed up to %d before the restart; the replay must read everything", p)
		}
		tn.stop(b)

		b.StartTimer()
		start := time.Now()
		tn = startNode(b, cfg, newFakeClock(t0), WithClock(engine.SystemClock{}))
		p := tn.pipeByName("rate")
		eventually(b, 5*time.Minute, func() error {
			if st := p.r.Status(); st.Backlog[LogMQTT] > 0 || st.Position[LogMQTT] <= rateTotal {
				return fmt.Errorf("replay at %d of %d", st.Position[LogMQTT], rateTotal)
			}
			return nil
		})
		replay := time.Since(start)
		b.StopTimer()
		tn.stop(b)

		c, err := pipeline.ParseAndCompile("rate.yaml", []byte(rateYAML))
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		var out bytes.Buffer
		if _, err := pipeline.RunBatch(context.Background(), c, pipeline.BatchOptions{Input: bytes.NewReader(file.Bytes()), Output: &out}); err != nil {
			b.Fatal(err)
		}
		batch := time.Since(start)
		b.ReportMetric(rateTotal/replay.Seconds(), "replay_rec/s")
		b.ReportMetric(rateTotal/batch.Seconds(), "batch_input_rec/s")
		b.ReportMetric(replay.Seconds()/batch.Seconds(), "replay/batch_time")
	}
}
