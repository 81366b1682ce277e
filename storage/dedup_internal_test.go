package storage

import (
	"encoding/binary"
	"hash/maphash"
	"testing"
)

// The dedup window's table answers like a counted set of the ring's hashes,
// through evictions, equal records and long probe runs (hashes whose low
// bits collide).
func TestDedupWindowMatchesACountedSet(t *testing.T) {
	const horizon = 300
	w := newDedupWindow(horizon)
	ref := map[recHash]int{}
	var ring []recHash
	x := uint64(88172645463325252)
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	var pool []recHash
	for i := 0; i < 200; i++ {
		// Low bits from a set of 8 values: runs of dozens of slots.
		pool = append(pool, recHash{next()&^1023 | next()%8, next()})
	}
	for step := 0; step < 20000; step++ {
		var h recHash
		if step%3 == 0 {
			h = pool[next()%uint64(len(pool))] // a repeat
		} else {
			h = recHash{next()&^1023 | next()%8, next()}
		}
		if got, want := w.has(h), ref[h] > 0; got != want {
			t.Fatalf("step %d: has = %v, want %v", step, got, want)
		}
		w.add(h, horizon)
		ring = append(ring, h)
		ref[h]++
		if len(ring) > horizon {
			old := ring[0]
			ring = ring[1:]
			if ref[old]--; ref[old] == 0 {
				delete(ref, old)
			}
		}
		if step%97 == 0 {
			for k := range ref {
				if !w.has(k) {
					t.Fatalf("step %d: a hash in the window is not found", step)
				}
			}
			n := 0
			for _, s := range w.slots {
				if s.n > 0 {
					n++
				}
			}
			if n != len(ref) {
				t.Fatalf("step %d: %d slots used, want %d", step, n, len(ref))
			}
		}
	}
}

// BenchmarkDedupWindow is the ingest's per-record dedup work at the default
// horizon: a lookup and an add (with an eviction once full).
func BenchmarkDedupWindow(b *testing.B) {
	const horizon = 65536
	w := newDedupWindow(horizon)
	x := uint64(88172645463325252)
	b.ReportAllocs()
	for b.Loop() {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		h := recHash{x, x * 0x9E3779B97F4A7C15}
		if !w.has(h) {
			w.add(h, horizon)
		}
	}
}

// BenchmarkDedupBatch is the dedup work of one log append of 8192 new
// 100-byte records at the default horizon, as the committer does it:
// hashing, a lookup and an insert per record, then the commit's pushes
// (evicting as many).
func BenchmarkDedupBatch(b *testing.B) {
	const horizon, batch = 65536, 8192
	x := &DB{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	src := &logSource{dedup: newDedupWindow(horizon)}
	recs := make([][]byte, batch)
	for i := range recs {
		recs[i] = make([]byte, 100)
	}
	seq := uint64(0)
	fill := func() {
		for _, r := range recs {
			seq++
			binary.BigEndian.PutUint64(r, seq)
		}
	}
	round := func() {
		fill()
		src.txHashes = src.txHashes[:0]
		if keep := x.dedupPass(src, &request{recs: recs, dedup: true}); len(keep) != batch {
			b.Fatalf("dedupPass kept %d flags for %d records", len(keep), batch)
		}
		for _, h := range src.txHashes {
			src.dedup.push(h, horizon)
		}
	}
	for range horizon / batch {
		round()
	}
	b.ReportAllocs()
	for b.Loop() {
		round()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}
