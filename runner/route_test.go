package runner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/runner"
)

// TestSourcesMatchEachTopicOnce: an epoch asks a source's Match about a
// topic once, not for every entry logged on it (the answer is kept per
// topic, up to a bound after which it starts over), and routes every entry
// as Match says, also across the bound.
func TestSourcesMatchEachTopicOnce(t *testing.T) {
	for _, topics := range []int{100, 5000} {
		t.Run(fmt.Sprint(topics, " topics"), func(t *testing.T) {
			c := compile(t, windowed)
			src := jsonSource(t, c, "in")
			calls := 0
			src.Match = func(topic string) bool { calls++; return strings.HasPrefix(topic, "a/") }
			got := map[string]int{}
			dec := src.Decoder
			src.Decoder = runner.DecoderFunc(func(b *engine.Batch, in runner.Input, reject func([]byte, error)) error {
				got[in.Topic]++
				return dec.Decode(b, in, reject)
			})
			const rounds = 6
			l := newMemLog()
			r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{src}, Log: l, Store: newMemStore(),
				Encode: func(dst []byte, _ *engine.Schema, _ *engine.Record) []byte { return dst }, MaxRecords: rounds * topics})
			if err != nil {
				t.Fatal(err)
			}
			// A new pipeline starts at the log's end: log after New.
			for i := range rounds {
				for s := range topics {
					prefix := "a/"
					if s%3 == 0 {
						prefix = "b/"
					}
					l.add("in", string(runner.AppendEntry(nil, fmt.Sprintf("%ss%04d", prefix, s), fmt.Appendf(nil, `{"sensor":"s%04d","ts":%d,"v":1}`, s, 1000+i))))
				}
			}
			if _, err := r.RunEpoch(context.Background(), 2000); err != nil {
				t.Fatal(err)
			}
			for s := range topics {
				a, b := fmt.Sprintf("a/s%04d", s), fmt.Sprintf("b/s%04d", s)
				if s%3 == 0 {
					if got[b] != 0 {
						t.Fatalf("topic %s was decoded %d times; Match refuses it", b, got[b])
					}
				} else if got[a] != rounds {
					t.Fatalf("topic %s was decoded %d times; want %d", a, got[a], rounds)
				}
			}
			if topics <= 4096 && calls != topics {
				t.Errorf("Match called %d times for %d entries on %d topics; want once per topic", calls, rounds*topics, topics)
			}
		})
	}
}

// TestEpochAllocatesNothingPerEntry: decoding and routing an entry costs no
// heap allocation of the runner's own (the decoder's reject callback was a
// closure allocated per entry).
func TestEpochAllocatesNothingPerEntry(t *testing.T) {
	c := compile(t, windowed)
	l := newMemLog()
	r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{jsonSource(t, c, "in")}, Log: l, Store: newMemStore(),
		Partitions: 1, Encode: func(dst []byte, _ *engine.Schema, _ *engine.Record) []byte { return dst }, MaxRecords: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	epoch := int64(2000)
	var entries [][]byte
	for i := range 3000 {
		entries = append(entries, runner.AppendEntry(nil, "a/s1", fmt.Appendf(nil, `{"sensor":"s%d","ts":1000,"v":1}`, i%10)))
	}
	l.logs["in"] = make([][]byte, 0, 100000)
	run := func(n int) float64 {
		return testing.AllocsPerRun(5, func() {
			l.logs["in"] = append(l.logs["in"], entries[:n]...)
			epoch += 1000
			if _, err := r.RunEpoch(context.Background(), epoch); err != nil {
				t.Fatal(err)
			}
		})
	}
	run(2000) // warm up: batches and maps at size
	// Compare two sizes: what an epoch allocates whatever its size cancels.
	small, large := run(1000), run(3000)
	perEntry := (large - small) / 2000
	if perEntry > 0.1 {
		t.Errorf("an epoch allocates %.2f times per entry beyond the test's own; want none", perEntry)
	}
}
