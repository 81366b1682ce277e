package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// updateGolden regenerates the *.golden files: go test ./engine -run TestGolden -update
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata (triggers and windows)")

// goldenSchema is the schema of the golden inputs: one JSON object per line,
// {"key": string, "ts": unix ms (the event time), "value": number or null}.
var goldenSchema = MustSchema(Field{"key", KindString}, Field{"value", KindNumber})

// goldenPlans maps an input file (testdata/<dir>/<name>.in.jsonl, named here
// "<dir>/<name>") to the steps applied to the source. Each plan's output goes
// to one sink whose rows are written as JSON lines, fields in schema order,
// followed by one line of the last step's counters.
var goldenPlans = map[string]func(src Stream) Stream{
	"triggers/threshold_hysteresis": func(src Stream) Stream {
		return src.Then("rule", Threshold(ThresholdConfig{Rule: "overheat", Keys: []string{"key"},
			Above: new(80.0), Clear: new(75.0)}))
	},
	"triggers/threshold_debounce": func(src Stream) Stream {
		return src.Then("rule", Threshold(ThresholdConfig{Rule: "battery_low", Keys: []string{"key"},
			Below: new(3.3), Clear: new(3.5), For: 30 * time.Second}))
	},
	"triggers/rate_window": func(src Stream) Stream {
		return src.Then("rule", RateOfChange(RateOfChangeConfig{Rule: "temp_jump", Keys: []string{"key"},
			MaxRate: 5, Per: time.Minute, Window: 2 * time.Minute}))
	},
	"triggers/n_of_m": func(src Stream) Stream {
		return src.Then("rule", NOfM(NOfMConfig{Rule: "vibration", Keys: []string{"key"},
			N: 3, M: 5, Above: new(0.5)}))
	},
}

type goldenIn struct {
	Key   string   `json:"key"`
	TS    int64    `json:"ts"`
	Value *float64 `json:"value"`
}

// TestGolden runs every testdata/*/*.in.jsonl through its plan and compares
// the output with the .golden file next to it. A blank input line ends an
// epoch. Each case also runs with one epoch per record and a restart from the
// checkpoint before every epoch, which must give the same output.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "triggers", "*.in.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden inputs found under testdata/*/")
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.ToSlash(strings.TrimSuffix(strings.TrimPrefix(f, "testdata"+string(filepath.Separator)), ".in.jsonl"))
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			plan, ok := goldenPlans[name]
			if !ok {
				t.Fatalf("no plan for %s in goldenPlans", f)
			}
			epochs := readGoldenInput(t, f)
			got := runGolden(t, plan, epochs, false)
			golden := strings.TrimSuffix(f, ".in.jsonl") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("output differs from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			var single [][]goldenIn
			for _, e := range epochs {
				for _, r := range e {
					single = append(single, []goldenIn{r})
				}
			}
			if restarted := runGolden(t, plan, single, true); !bytes.Equal(restarted, want) {
				t.Fatalf("output with a restart before every record differs from %s:\ngot:\n%s\nwant:\n%s", golden, restarted, want)
			}
		})
	}
	for name := range goldenPlans {
		if !seen[name] {
			t.Errorf("plan %s has no input file testdata/%s.in.jsonl", name, name)
		}
	}
}

func readGoldenInput(t *testing.T, path string) [][]goldenIn {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var epochs [][]goldenIn
	var cur []goldenIn
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			if len(cur) > 0 {
				epochs = append(epochs, cur)
				cur = nil
			}
			continue
		}
		var r goldenIn
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		cur = append(cur, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cur) > 0 {
		epochs = append(epochs, cur)
	}
	return epochs
}

// runGolden runs the epochs through a plan and returns the JSON lines. With
// restart, a new plan and executor are built on the same store for every
// epoch.
func runGolden(t *testing.T, plan func(Stream) Stream, epochs [][]goldenIn, restart bool) []byte {
	t.Helper()
	store := NewMemStore()
	build := func() (*Plan, *Executor) {
		b := NewBuilder("golden")
		b.Sink("out", plan(b.Source("in", goldenSchema)))
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		x, err := NewExecutor(p, Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return p, x
	}
	p, x := build()
	var out bytes.Buffer
	var total NodeStats
	addStats := func() {
		st := x.Stats()
		last := st[len(st)-2].NodeStats // the step before the sink
		total.In += last.In
		total.Out += last.Out
		total.Late += last.Late
		total.Duplicates += last.Duplicates
		total.Invalid += last.Invalid
	}
	for i, e := range epochs {
		if restart && i > 0 {
			addStats()
			p, x = build()
		}
		in := x.Input("in")
		for _, r := range e {
			v := Null
			if r.Value != nil {
				v = Number(*r.Value)
			}
			in.AppendValues(r.TS, String(r.Key), v)
		}
		res, err := x.RunEpochAt(context.Background(), int64(i+1)*1000)
		if err != nil {
			t.Fatal(err)
		}
		b := res.Output(p, "out")
		for j := range b.Recs {
			out.Write(goldenJSON(t, b.Schema, &b.Recs[j]))
			out.WriteByte('\n')
		}
	}
	addStats()
	fmt.Fprintf(&out, `{"stats":{"in":%d,"out":%d,"late":%d,"invalid":%d}}`+"\n",
		total.In, total.Out, total.Late, total.Invalid)
	return out.Bytes()
}

// goldenJSON formats a record as a JSON object with the fields in schema
// order; times are unix ms.
func goldenJSON(t *testing.T, s *Schema, r *Record) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range r.Vals {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(s.Field(i).Name)
		b.Write(name)
		b.WriteByte(':')
		var val any
		switch v.Kind {
		case KindNumber:
			val = v.Num
		case KindTime:
			val = v.Millis()
		case KindString:
			val = v.Str
		case KindBool:
			val = v.AsBool()
		case KindNull:
			val = nil
		default:
			val = v.String()
		}
		enc, err := json.Marshal(val)
		if err != nil {
			t.Fatalf("field %s: %v", s.Field(i).Name, err)
		}
		b.Write(enc)
	}
	b.WriteByte('}')
	return b.Bytes()
}
