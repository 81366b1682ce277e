package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

// sensorRecord is a realistic 64-byte JSON reading.
func sensorRecord(i int) []byte {
	r := fmt.Appendf(nil, `{"dev":"s-%04d","t":%d,"temp":%.2f}`, i%500, 1700000000000+int64(i)*10, 20+float64(i%900)/100)
	for len(r) < 64 {
		r = append(r[:len(r)-1], ' ', '}')
	}
	return r[:64]
}

// benchBatch is the records per AppendLog call: the MQTT ingest hands off
// batches of messages (256-1024), not single records.
const benchBatch = 256

// benchRecords is a pool of realistic records, built once so that formatting
// is not measured.
var benchRecords = func() [][]byte {
	r := make([][]byte, 1<<14)
	for i := range r {
		r[i] = sensorRecord(i)
	}
	return r
}()

// fileRate is the records/s of the file sub-benchmark, which runs first, for
// the log's x-file metric.
var fileRate float64

// BenchmarkInputLogAppend measures the durable input log against a plain
// file. One op is one batch of benchBatch 64-byte JSON records.
//
//   - file: one writer appends each batch to a plain file and fsyncs it (one
//     fsync per batch), the floor for a durable per-batch hand-off.
//   - log: 4 concurrent appenders (4 MQTT sources), AppendLog with one batch per
//     call, at the default options (fsync per group commit, zstd).
//   - log-1: a single appender, so every commit carries exactly one batch.
//
// bytes-written/record is the /proc/self/io write_bytes delta (all writes of
// the process, which the benchmark dominates) per record; wear-bytes/record is
// Stats.BytesWritten (bbolt pages + meta pages) per record; raw payload is 64
// bytes/record. x-file is records/s over the file's records/s of the same run.
func BenchmarkInputLogAppend(b *testing.B) {
	b.Run("file", benchFile)
	b.Run("log", func(b *testing.B) { benchLog(b, storage.DefaultOptions(), 4) })
	b.Run("log-1", func(b *testing.B) { benchLog(b, storage.DefaultOptions(), 1) })
}

func procWriteBytes(b *testing.B) int64 {
	st, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func benchLog(b *testing.B, o storage.Options, appenders int) {
	db, err := storage.Open(filepath.Join(b.TempDir(), "edged.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var next atomic.Int64
	b.SetBytes(64 * benchBatch)
	b.ReportAllocs()
	st0, _ := db.Stats()
	w0 := procWriteBytes(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for a := 0; a < appenders; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([][]byte, benchBatch)
			for {
				n := int(next.Add(1)) - 1
				if n >= b.N {
					return
				}
				for i := range batch {
					batch[i] = benchRecords[(n*benchBatch+i)%len(benchRecords)]
				}
				if _, _, err := db.AppendLog(context.Background(), "in", batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	w1 := procWriteBytes(b)
	st, _ := db.Stats()
	recs := float64(st.RecordsAppended - st0.RecordsAppended)
	rate := recs / b.Elapsed().Seconds()
	b.ReportMetric(rate, "records/s")
	if fileRate > 0 {
		b.ReportMetric(rate/fileRate, "x-file")
	}
	if w0 >= 0 {
		b.ReportMetric(float64(w1-w0)/recs, "bytes-written/record")
	}
	b.ReportMetric(float64(st.BytesWritten-st0.BytesWritten)/recs, "wear-bytes/record")
	if c := st.Commits - st0.Commits; c > 0 {
		b.ReportMetric(recs/float64(c), "records/commit")
	}
}

func benchFile(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 0, 64*benchBatch)
	b.SetBytes(64 * benchBatch)
	b.ReportAllocs()
	w0 := procWriteBytes(b)
	for n := 0; b.Loop(); n++ {
		buf = buf[:0]
		for i := range benchBatch {
			buf = append(buf, benchRecords[(n*benchBatch+i)%len(benchRecords)]...)
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	w1 := procWriteBytes(b)
	recs := float64(b.N * benchBatch)
	fileRate = recs / b.Elapsed().Seconds()
	b.ReportMetric(fileRate, "records/s")
	if w0 >= 0 {
		b.ReportMetric(float64(w1-w0)/recs, "bytes-written/record")
	}
	b.ReportMetric(benchBatch, "records/commit")
}

// BenchmarkEpochCommit commits epochs of 10,000 dirty keys (8-byte keys,
// 16-byte values, a rolling key space of 100,000): fsync with real fsyncs,
// nosync without (the CPU part). wear-bytes/commit is Stats.BytesWritten per
// commit.
func BenchmarkEpochCommit(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchEpochCommit(b, storage.DefaultOptions()) })
	b.Run("nosync", func(b *testing.B) { benchEpochCommit(b, testOptions()) })
}

func benchEpochCommit(b *testing.B, o storage.Options) {
	db, err := storage.Open(filepath.Join(b.TempDir(), "edged.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const dirty = 10000
	c := &engine.Commit{Pipeline: "p", Input: map[string]uint64{"in": 0}}
	arena := make([]byte, dirty*24)
	c.State = make([]engine.StateOp, dirty)
	ctx := context.Background()
	epoch := func(e int) {
		c.Epoch = uint64(e + 1)
		c.Input["in"] += dirty
		for i := range c.State {
			k := arena[i*24 : i*24+8]
			v := arena[i*24+8 : i*24+24]
			putDigits(k, (e*dirty+i*7)%100000)
			putDigits(v, e)
			c.State[i] = engine.StateOp{Namespace: "win", Key: k, Val: v}
		}
		if err := db.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	e := 0
	for ; e < 10; e++ { // fill the key space: measure steady state
		epoch(e)
	}
	st0, _ := db.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for ; b.Loop(); e++ {
		epoch(e)
	}
	st, _ := db.Stats()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
	b.ReportMetric(float64(st.BytesWritten-st0.BytesWritten)/float64(b.N), "wear-bytes/commit")
}

// putDigits writes n zero-padded in decimal over b (no allocation, so that
// the benchmark measures the commit, not formatting).
func putDigits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}
