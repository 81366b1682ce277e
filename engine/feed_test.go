package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// recordingStore records every commit as text.
type recordingStore struct {
	*MemStore
	log []string
}

func (s *recordingStore) Commit(ctx context.Context, c *Commit) error {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d wm %d in %v\n", c.Epoch, c.Watermark, c.Input)
	for _, op := range c.State {
		fmt.Fprintf(&b, "  state %s %x del=%v %x\n", op.Namespace, op.Key, op.Delete, op.Val)
	}
	for _, o := range c.Outputs {
		fmt.Fprintf(&b, "  out %s %s %s\n", o.Sink, o.ID, o.Data)
	}
	s.log = append(s.log, b.String())
	return s.MemStore.Commit(ctx, c)
}

func encodeText(dst []byte, s *Schema, r *Record) []byte {
	return fmt.Appendf(dst, "%d %v", r.Time, r.Vals)
}

func feedPlan(t *testing.T, mode OutputMode) *Plan {
	t.Helper()
	b := NewBuilder("feed")
	src := b.Source("in", benchSchema, WithWatermark(500))
	hot := src.Then("hot", Filter(func(r *Record) bool { return r.Vals[1].Num >= 20 }))
	b.Sink("raw", hot)
	b.Sink("windows", hot.Then("win", WindowAggregate(WindowConfig{Keys: []string{"sensor"}, Aggs: benchAggs, Size: 1000, Mode: mode})))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFeedChunksGiveTheSameEpochs: an epoch whose input goes through Feed in
// chunks of random sizes commits the same state, outputs (with the same ids)
// and watermark as one RunEpochAt over the whole input.
func TestFeedChunksGiveTheSameEpochs(t *testing.T) {
	data := benchInput()[:20000]
	run := func(chunked bool) []string {
		st := &recordingStore{MemStore: NewMemStore()}
		x, err := NewExecutor(feedPlan(t, OutputAppend), Options{Store: st, Encode: encodeText})
		if err != nil {
			t.Fatal(err)
		}
		if !x.Chunked() {
			t.Fatal("filter + append window: Chunked() = false; want true")
		}
		rng := rand.New(rand.NewPCG(1, 2))
		in := x.Input("in")
		ctx := context.Background()
		for e, i := 0, 0; i < len(data); e++ {
			end := min(i+3000, len(data))
			// Shuffled within the epoch, so the latest event time may come in
			// any chunk.
			perm := rand.New(rand.NewPCG(uint64(e), 3)).Perm(end - i)
			for k := range perm {
				j := i + perm[k]
				r := in.Append()
				r.Time = data[j].ts + int64(j%7)*100
				r.Vals[0] = Value{Kind: KindString, Str: data[j].sensor[:8]}
				r.Vals[1] = Value{Kind: KindNumber, Num: data[j].temp}
				if chunked && rng.IntN(500) == 0 {
					if err := x.Feed(ctx, int64(e)*1000); err != nil {
						t.Fatal(err)
					}
				}
			}
			x.SetPosition("in", uint64(end+1))
			if _, err := x.RunEpochAt(ctx, int64(e)*1000); err != nil {
				t.Fatal(err)
			}
			i = end
		}
		return st.log
	}
	whole, chunked := run(false), run(true)
	if len(whole) != len(chunked) {
		t.Fatalf("commits: %d in one pass, %d fed in chunks", len(whole), len(chunked))
	}
	for i := range whole {
		if whole[i] != chunked[i] {
			t.Fatalf("commit %d differs:\none pass:\n%.2000s\nchunks:\n%.2000s", i, whole[i], chunked[i])
		}
	}
}

// TestFeedRefusedWhenNotChunkSafe: update mode emits per epoch, so a plan
// with it must not be fed in chunks.
func TestFeedRefusedWhenNotChunkSafe(t *testing.T) {
	x, err := NewExecutor(feedPlan(t, OutputUpdate), Options{Store: NewMemStore(), Encode: encodeText})
	if err != nil {
		t.Fatal(err)
	}
	if x.Chunked() {
		t.Fatal("update-mode window: Chunked() = true; want false")
	}
	x.Input("in").Append()
	if err := x.Feed(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "ChunkSafe") {
		t.Fatalf("Feed: got %v; want an error naming ChunkSafe", err)
	}
}
