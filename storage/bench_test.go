package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// groupSize is the mean records per commit measured by the log sub-benchmark,
// used by the file sub-benchmark (256 if run alone).
var groupSize = 256

// BenchmarkInputLogAppend: 64 concurrent appenders of one 64-byte record each
// at the default options (fsync per group commit, zstd); sub-benchmark file
// writes the same bytes to a plain file with one fsync per group of the size
// the log achieved.
func BenchmarkInputLogAppend(b *testing.B) {
	b.Run("log", func(b *testing.B) { benchLog(b, storage.DefaultOptions()) })
	b.Run("log-nodelay", func(b *testing.B) {
		o := storage.DefaultOptions()
		o.GroupMaxDelay = 0 // natural group commit: appends arriving during an fsync share the next
		benchLog(b, o)
	})
	b.Run("file", benchFile)
}

func benchLog(b *testing.B, o storage.Options) {
	{
		db, err := storage.Open(filepath.Join(b.TempDir(), "edged.db"), o)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		var ctr atomic.Int64
		b.SetBytes(64)
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			rec := [][]byte{nil}
			for pb.Next() {
				rec[0] = sensorRecord(int(ctr.Add(1)))
				if _, _, err := db.AppendLog(context.Background(), "in", rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
		st, _ := db.Stats()
		b.ReportMetric(float64(st.RecordsAppended)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(st.BytesWritten)/float64(st.RecordsAppended), "bytes-written/record")
		if st.Commits > 0 {
			groupSize = max(1, int(st.RecordsAppended/st.Commits))
			b.ReportMetric(float64(groupSize), "records/commit")
		}
	}
}

func benchFile(b *testing.B) {
	{
		f, err := os.Create(filepath.Join(b.TempDir(), "plain.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 0, 64*groupSize)
		written := 0
		b.SetBytes(64)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf = append(buf, sensorRecord(i)...)
			if len(buf) == cap(buf) {
				n, err := f.Write(buf)
				if err != nil {
					b.Fatal(err)
				}
				written += n
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(written)/float64(b.N), "bytes-written/record")
		b.ReportMetric(float64(groupSize), "records/commit")
	}
}

// BenchmarkEpochCommit commits epochs of 10,000 dirty keys (8-byte keys,
// 16-byte values, a rolling key space of 100,000) with fsync.
func BenchmarkEpochCommit(b *testing.B) {
	db, err := storage.Open(filepath.Join(b.TempDir(), "edged.db"), storage.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const dirty = 10000
	c := &engine.Commit{Pipeline: "p", Input: map[string]uint64{"in": 0}}
	arena := make([]byte, dirty*24)
	c.State = make([]engine.StateOp, dirty)
	ctx := context.Background()
	b.ReportAllocs()
	for e := 0; b.Loop(); e++ {
		c.Epoch = uint64(e + 1)
		c.Input["in"] += dirty
		for i := range c.State {
			k := arena[i*24 : i*24+8]
			v := arena[i*24+8 : i*24+24]
			copy(k, fmt.Appendf(k[:0], "%08d", (e*dirty+i*7)%100000))
			copy(v, fmt.Appendf(v[:0], "%016d", e))
			c.State[i] = engine.StateOp{Namespace: "win", Key: k, Val: v}
		}
		if err := db.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
}
