package runner_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
)

// timedLog is an input log whose entries carry append times.
type timedLog struct {
	mu   sync.Mutex
	recs [][]byte
	at   []int64
}

func (l *timedLog) add(at int64, rec string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, []byte(rec))
	l.at = append(l.at, at)
}

func (l *timedLog) ReadLogEntries(_ string, from uint64, max int, fn func(off uint64, at int64, rec []byte) error) error {
	l.mu.Lock()
	recs, at := l.recs, l.at
	l.mu.Unlock()
	n := 0
	for i := int(from) - 1; i >= 0 && i < len(recs) && (max <= 0 || n < max); i++ {
		if err := fn(uint64(i+1), at[i], recs[i]); err != nil {
			return err
		}
		n++
	}
	return nil
}

func (l *timedLog) LogNext(string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.recs)) + 1
}

// dstream's results depend on where epochs are cut: its windows are
// intervals of processing time.
const dstream = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: d}
spec:
  interval: 1s
  sources:
    - name: in
      fields:
        - {name: sensor, type: string}
        - {name: v, type: number}
      key: [sensor]
  steps:
    - name: win
      dstreamWindow: {op: reduceByKeyAndWindow, size: 3s, slide: 1s, key: sensor, value: v, func: sum}
  sinks:
    - {name: out, input: win, type: stdout}
`

// renamed compiles y under another pipeline name, as the node names a
// backfill.
func renamed(t *testing.T, y, name string) *pipeline.Compiled {
	t.Helper()
	s, err := pipeline.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	s.Metadata.Name = name
	c, err := pipeline.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBackfillReproducesArrivalCutLiveRun: a live runner that cuts epochs by
// arrival time, reading a log in which entries appended after an epoch's
// boundary are already visible when it runs (the live race), gives the same
// outputs, ids and all but the pipeline name, as a backfill over the log.
// Without the cut the live run puts those entries in the earlier epoch, and
// the processing-time windows differ.
func TestBackfillReproducesArrivalCutLiveRun(t *testing.T) {
	for _, cut := range []bool{true, false} {
		t.Run(fmt.Sprintf("cut=%v", cut), func(t *testing.T) {
			lg := &timedLog{}
			c := compile(t, dstream)
			live := newMemStore()
			src := jsonSource(t, c, "in")
			src.Log = "in"
			r, err := runner.New(runner.Config{Compiled: c, Sources: []runner.Source{src}, Log: lg, Store: live,
				Encode: decode.AppendJSON, Partitions: 4, ArrivalCut: cut})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// Ten intervals; each epoch at boundary t runs when the entries
			// of the next 300 ms are already in the log.
			at := int64(10_000)
			for sec := int64(10); sec < 20; sec++ {
				for ; at < (sec+1)*1000+300; at += 70 {
					lg.add(at, fmt.Sprintf(`{"sensor":"s%d","v":%d}`, at%7, at%13))
				}
				if _, err := r.RunEpoch(ctx, (sec+1)*1000); err != nil {
					t.Fatal(err)
				}
			}
			liveOut := outputsText(live.outputs, "d")

			bfStore := newMemStore()
			bc := renamed(t, dstream, "d@backfill-1")
			bsrc := jsonSource(t, bc, "in")
			bsrc.Log = "in"
			b, err := runner.NewBackfill(runner.Config{Compiled: bc, Sources: []runner.Source{bsrc}, Log: lg, Store: bfStore,
				Encode: decode.AppendJSON, Partitions: 4}, 10_000, 20_000, map[string]uint64{"in": 1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Run(ctx); err != nil {
				t.Fatal(err)
			}
			bfOut := outputsText(bfStore.outputs, "d@backfill-1")
			if len(liveOut) == 0 {
				t.Fatal("the live run emitted nothing")
			}
			same := strings.Join(liveOut, "\n") == strings.Join(bfOut, "\n")
			if cut && !same {
				t.Fatalf("backfill differs from the live run:\nlive:\n%s\nbackfill:\n%s", strings.Join(liveOut, "\n"), strings.Join(bfOut, "\n"))
			}
			if !cut && same {
				t.Fatal("without the arrival cut the live run should differ from the backfill (the test no longer exercises the cut)")
			}
		})
	}
}

// outputsText renders outputs as "id data" lines with the pipeline name
// dropped from the id, sorted by id (partitions commit in any order).
func outputsText(outs []engine.Output, pipeline string) []string {
	var s []string
	for _, o := range outs {
		id, err := engine.ParseOutputID(o.ID)
		if err != nil || id.Pipeline != pipeline {
			s = append(s, "BAD ID "+o.ID)
			continue
		}
		id.Pipeline = ""
		s = append(s, fmt.Sprintf("%s %s", id, o.Data))
	}
	sort.Strings(s)
	return s
}
