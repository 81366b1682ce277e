package pipeline

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

// TestExamplePipelinesCompile loads, validates and compiles every pipeline in
// configs/pipelines, the files users copy.
func TestExamplePipelinesCompile(t *testing.T) {
	files, _ := filepath.Glob("../configs/pipelines/*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d example pipelines; want the four classic uses", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Compile(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBatchEqualsStream runs each example pipeline over its sample data twice:
// once in batch mode, once as a stream fed in micro-batches of random sizes in
// event-time order, and checks both produce the same results.
func TestBatchEqualsStream(t *testing.T) {
	cases := []struct{ spec, input string }{
		{"etl.yaml", "sensors.jsonl"},
		{"enrichment.yaml", "sensors.jsonl"},
		{"alerts.yaml", "sensors.jsonl"},
		{"sessions.yaml", "power.jsonl"},
	}
	for _, tc := range cases {
		t.Run(tc.spec, func(t *testing.T) {
			data, err := os.ReadFile("../configs/samples/" + tc.input)
			if err != nil {
				t.Fatal(err)
			}
			batch := runBatchLines(t, tc.spec, data)
			if len(batch) == 0 {
				t.Fatal("batch run produced no output")
			}
			seed := rand.Uint64()
			stream := runStreamLines(t, tc.spec, data, seed)
			slices.Sort(batch)
			slices.Sort(stream)
			if !slices.Equal(batch, stream) {
				t.Fatalf("seed %d: batch gave %d rows, stream %d rows; first difference:\n%s", seed, len(batch), len(stream), firstDiff(batch, stream))
			}
		})
	}
}

// compileExample compiles an example pipeline without the idle-source rule:
// the stream runs below jump processing time with event time, so a gap
// between two micro-batches would (rightly) count as a silence of the source.
func compileExample(t *testing.T, name string) *Compiled {
	t.Helper()
	s, err := Load("../configs/pipelines/" + name)
	if err != nil {
		t.Fatal(err)
	}
	off := time.Duration(0)
	s.Spec.IdleTimeout = &off
	c, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runBatchLines(t *testing.T, spec string, data []byte) []string {
	t.Helper()
	var out bytes.Buffer
	_, err := RunBatch(context.Background(), compileExample(t, spec), BatchOptions{Input: bytes.NewReader(data), Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(out.String()), "\n")
}

// runStreamLines feeds the records, sorted by event time, to an executor in
// micro-batches of random sizes (1 to 200 records) at increasing processing
// times, then drains it.
func runStreamLines(t *testing.T, spec string, data []byte, seed uint64) []string {
	t.Helper()
	c := compileExample(t, spec)
	src := c.Plan.Sources()[0]
	cfg := c.Decoders[src]
	all := engine.NewBatch(cfg.Schema)
	if err := decode.DecodeLines(bytes.NewReader(data), cfg, all, func(int, []byte, error) {}); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(all.Recs, func(a, b engine.Record) int { return int(a.Time - b.Time) })
	x, err := engine.NewExecutor(c.Plan, engine.Options{Interval: c.Interval})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	var lines []string
	sinks := c.Plan.Sinks()
	collect := func(res *engine.Result) {
		for i, b := range res.Outputs {
			for j := range b.Recs {
				line := string(decode.AppendJSON(nil, b.Schema, &b.Recs[j]))
				if len(sinks) > 1 {
					line = `{"_sink":"` + sinks[i] + `",` + line[1:]
					if strings.HasSuffix(line, ",}") {
						line = line[:len(line)-2] + "}"
					}
				}
				lines = append(lines, line)
			}
		}
	}
	in := x.Input(src)
	var now int64
	for i := 0; i < len(all.Recs); {
		n := 1 + rng.IntN(200)
		j := min(i+n, len(all.Recs))
		for k := i; k < j; k++ {
			in.AppendCopy(&all.Recs[k])
		}
		now = max(now+1, all.Recs[j-1].Time)
		res, err := x.RunEpochAt(context.Background(), now)
		if err != nil {
			t.Fatal(err)
		}
		collect(res)
		i = j
	}
	res, err := x.Drain(context.Background(), now+1)
	if err != nil {
		t.Fatal(err)
	}
	collect(res)
	return lines
}

func firstDiff(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return "batch:  " + a[i] + "\nstream: " + b[i]
		}
	}
	if len(a) > len(b) {
		return "batch has extra: " + a[len(b)]
	}
	if len(b) > len(a) {
		return "stream has extra: " + b[len(a)]
	}
	return ""
}

// FuzzParse feeds arbitrary documents to the spec parser: it must never panic,
// and a document it accepts must compile or fail with located errors.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../configs/pipelines/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, p := range append(files, bad...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kind: Pipeline\n"))
	f.Add([]byte("{{{"))
	f.Add([]byte("apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: x}\nspec: {sources: [{name: a, fields: [{name: v, type: number}]}], steps: [{name: s, filter: 'v >'}], sinks: [{name: o}]}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse("fuzz.yaml", doc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if _, err := Compile(s); err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Fatalf("compile error does not name the file: %v", err)
		}
	})
}

// TestChunkedPlans: which compiled pipelines the node may feed in chunks
// (engine.ChunkSafe): the crash harness's events pipeline (filter, append
// window) is, its DStream pipeline is not.
func TestChunkedPlans(t *testing.T) {
	for file, want := range map[string]bool{
		"../scripts/chaos/pipeline-events.yaml": true,
		"../scripts/chaos/pipeline.yaml":        false,
	} {
		s, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		x, err := engine.NewExecutor(c.Plan, engine.Options{Store: engine.NewMemStore()})
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Chunked(); got != want {
			t.Errorf("%s: Chunked() = %v; want %v", file, got, want)
		}
	}
}
