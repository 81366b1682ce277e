package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
)

// etPlan is an event_time vector translated into a real engine plan.
type etPlan struct {
	plan    *engine.Plan
	sources []string
	schema  *engine.Schema
	tsIdx   int // position of the event-time field in source records, -1 if none
	stages  []string
	last    string
}

// buildEventTime translates the vector's record layout and query stages into
// engine operators, built with the typed API.
func buildEventTime(v *Vector) (*etPlan, error) {
	p := &etPlan{tsIdx: -1}
	// Infer field kinds from the data.
	kinds := make([]engine.Kind, len(v.RecordFields))
	for i := range kinds {
		kinds[i] = engine.KindNumber
	}
	etName := ""
	if v.EventTimeField != nil {
		etName = *v.EventTimeField
	}
	for _, st := range v.Steps {
		recs, err := stepRecords(st.Add)
		if err != nil {
			return nil, err
		}
		for _, rs := range recs {
			for _, r := range rs {
				for i, x := range r {
					if i < len(kinds) {
						if _, ok := x.(string); ok {
							kinds[i] = engine.KindString
						}
					}
				}
			}
		}
	}
	fields := make([]engine.Field, len(v.RecordFields))
	for i, n := range v.RecordFields {
		if n == etName {
			kinds[i] = engine.KindTime
			p.tsIdx = i
		}
		fields[i] = engine.Field{Name: n, Kind: kinds[i]}
	}
	s, err := engine.NewSchema(fields...)
	if err != nil {
		return nil, err
	}
	p.schema = s
	// Sources: one per input, each with its own watermark delay.
	var delays []*float64
	var ins []struct {
		WatermarkDelayS *float64 `json:"watermark_delay_s"`
	}
	if len(v.Inputs) > 0 && json.Unmarshal(v.Inputs, &ins) == nil && len(ins) > 0 {
		for _, in := range ins {
			delays = append(delays, in.WatermarkDelayS)
		}
	} else {
		delays = []*float64{v.WatermarkDelayS}
	}
	b := engine.NewBuilder(v.Name)
	var streams []engine.Stream
	for i, d := range delays {
		name := "in" + strconv.Itoa(i)
		var opts []engine.SourceOption
		if d != nil {
			opts = append(opts, engine.WithWatermark(time.Duration(*d*float64(time.Second))))
		}
		streams = append(streams, b.Source(name, s, opts...))
		p.sources = append(p.sources, name)
	}
	mode, err := engine.ParseOutputMode(v.OutputMode)
	if err != nil {
		return nil, err
	}
	delayMs := int64(0)
	if v.WatermarkDelayS != nil {
		delayMs = int64(*v.WatermarkDelayS * 1000)
	}
	cur := streams[0]
	for i, st := range v.Query {
		name := fmt.Sprintf("s%d_%s", i, st.Type)
		var op engine.Operator
		switch st.Type {
		case "union_inputs":
			cur = b.Apply(name, engine.Union(), streams...)
			p.stages = append(p.stages, name)
			continue
		case "window_agg":
			op = engine.WindowAggregate(engine.WindowConfig{Keys: st.Keys, Aggs: vectorAggs(st),
				Mode: mode, Size: st.WindowS * 1000, Slide: st.SlideS * 1000})
		case "group_by_event_time":
			op = engine.GroupByEventTime(engine.GroupByEventTimeConfig{Keys: st.Keys, Aggs: vectorAggs(st),
				Mode: mode, TimeName: etName})
		case "dropDuplicates":
			op = engine.DropDuplicates(engine.DedupConfig{Keys: st.Keys, EventTimeField: etName})
		case "dropDuplicatesWithinWatermark":
			op = engine.DropDuplicates(engine.DedupConfig{Keys: st.Keys, EventTimeField: etName,
				WithinWatermark: true, Delay: delayMs})
		case "session_window_agg":
			cfg := engine.WindowConfig{Keys: st.Keys, Aggs: vectorAggs(st), Mode: mode, Gap: st.GapS * 1000}
			if st.GapByKeyS != nil {
				gaps, def := st.GapByKeyS, st.DefaultGapS*1000
				cfg.Gap = 0
				cfg.GapFunc = func(key []engine.Value) int64 {
					parts := make([]string, len(key))
					for i, k := range key {
						parts[i] = k.String()
					}
					if g, ok := gaps[strings.Join(parts, ",")]; ok {
						return int64(g * 1000)
					}
					return def
				}
			}
			op = engine.WindowAggregate(cfg)
		case "global_agg":
			op = engine.Aggregate(engine.AggregateConfig{Keys: st.Keys, Aggs: vectorAggs(st), Mode: mode})
		default:
			return nil, fmt.Errorf("stage %d: unknown type %q", i, st.Type)
		}
		cur = cur.Then(name, op)
		p.stages = append(p.stages, name)
	}
	b.Sink("out", cur)
	if p.plan, err = b.Build(); err != nil {
		return nil, err
	}
	p.last = p.stages[len(p.stages)-1]
	return p, nil
}

// vectorAggs maps a stage's agg name to engine aggregates. count_and_sum_count
// (the chained second window) counts the input rows and sums their "count".
func vectorAggs(st Stage) []engine.AggSpec {
	switch st.Agg {
	case "", "count":
		return []engine.AggSpec{{Func: "count", Field: st.Field, As: "count"}}
	case "count_and_sum_count":
		return []engine.AggSpec{{Func: "count", As: "count"}, {Func: "sum", Field: "count", As: "sum"}}
	}
	return []engine.AggSpec{{Func: st.Agg, Field: st.Field, As: st.Agg}}
}

// stepRecords decodes a step's add: [records] (input 0) or {"<i>": [records]}.
func stepRecords(raw json.RawMessage) (map[int][][]any, error) {
	out := map[int][][]any{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if raw[0] == '[' {
		var rs [][]any
		if err := json.Unmarshal(raw, &rs); err != nil {
			return nil, fmt.Errorf("add: %w", err)
		}
		out[0] = rs
		return out, nil
	}
	var m map[string][][]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("add: %w", err)
	}
	for k, rs := range m {
		i, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("add: input %q", k)
		}
		out[i] = rs
	}
	return out, nil
}

func etValue(x any, k engine.Kind) engine.Value {
	switch k {
	case engine.KindTime:
		f, _ := x.(float64)
		return engine.Time(int64(math.Round(f * 1000)))
	case engine.KindString:
		if s, ok := x.(string); ok {
			return engine.String(s)
		}
		return engine.String(fmt.Sprint(x))
	}
	f, _ := x.(float64)
	return engine.Number(f)
}

// projector maps output_fields onto the columns of the final schema. Names
// are matched exactly; duration_s is session_end - session_start; any other
// name takes the next unused column in schema order.
type projector struct {
	cols    []int
	dur     [2]int
	timeDiv float64
}

func newProjector(s *engine.Schema, names []string, timeDiv float64) projector {
	p := projector{cols: make([]int, len(names)), timeDiv: timeDiv}
	used := make([]bool, s.Len())
	for i, n := range names {
		p.cols[i] = -2
		if n == "duration_s" {
			p.cols[i] = -1
			a, _ := s.Index("session_start")
			b, _ := s.Index("session_end")
			p.dur = [2]int{a, b}
			used[a], used[b] = true, true
			continue
		}
		if j, ok := s.Index(n); ok {
			p.cols[i] = j
			used[j] = true
		}
	}
	next := 0
	for i := range p.cols {
		if p.cols[i] != -2 {
			continue
		}
		for next < len(used) && used[next] {
			next++
		}
		if next < len(used) {
			p.cols[i] = next
			used[next] = true
		}
	}
	return p
}

func (p projector) row(s *engine.Schema, r *engine.Record) string {
	parts := make([]string, len(p.cols))
	for i, c := range p.cols {
		switch {
		case c == -1:
			parts[i] = fmtNum(float64(r.Vals[p.dur[1]].Millis()-r.Vals[p.dur[0]].Millis()) / p.timeDiv)
		case c < 0:
			parts[i] = "?"
		default:
			v := r.Vals[c]
			switch v.Kind {
			case engine.KindTime:
				parts[i] = fmtNum(v.Num / p.timeDiv)
			case engine.KindString:
				parts[i] = strconv.Quote(v.Str)
			case engine.KindNull:
				parts[i] = "null"
			default:
				parts[i] = fmtNum(v.Num)
			}
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// expectRows renders expected JSON rows the way projector.row renders outputs.
func expectRows(rows [][]any) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		parts := make([]string, len(r))
		for i, x := range r {
			switch x := x.(type) {
			case float64:
				parts[i] = fmtNum(x)
			case string:
				parts[i] = strconv.Quote(x)
			case nil:
				parts[i] = "null"
			default:
				b, _ := json.Marshal(x)
				parts[i] = string(b)
			}
		}
		out = append(out, "["+strings.Join(parts, ",")+"]")
	}
	return out
}

func sameMultiset(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	return slices.Equal(g, w)
}

func sumStats(x *engine.Executor) (late, dups uint64) {
	for _, s := range x.Stats() {
		late += s.Late
		dups += s.Duplicates
	}
	return late, dups
}

// runEventTime runs an event_time vector: one RunEpochAt per step, checks after
// each step.
func runEventTime(t *testing.T, v *Vector) {
	p, err := buildEventTime(v)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	x, err := engine.NewExecutor(p.plan, engine.Options{Store: engine.NewMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	runEventTimeSteps(t, v, p, x, 0)
}

func runEventTimeSteps(t *testing.T, v *Vector, p *etPlan, x *engine.Executor, from int) {
	t.Helper()
	outSchema := p.plan.SinkSchema("out")
	proj := newProjector(outSchema, v.OutputFields, 1000)
	for si := from; si < len(v.Steps); si++ {
		st := v.Steps[si]
		recs, err := stepRecords(st.Add)
		if err != nil {
			t.Fatalf("step %d: %v", si+1, err)
		}
		for in, rs := range recs {
			if in >= len(p.sources) {
				t.Fatalf("step %d: input %d does not exist", si+1, in)
			}
			b := x.Input(p.sources[in])
			for _, r := range rs {
				d := b.Append()
				for i, f := range r {
					if i < p.schema.Len() {
						d.Vals[i] = etValue(f, p.schema.Field(i).Kind)
					}
				}
				if p.tsIdx >= 0 {
					d.Time = d.Vals[p.tsIdx].Millis()
				}
			}
		}
		late0, dup0 := sumStats(x)
		res, err := x.RunEpochAt(context.Background(), int64(si+1)*1000)
		if err != nil {
			t.Fatalf("step %d: %v", si+1, err)
		}
		late1, dup1 := sumStats(x)
		out := res.Output(p.plan, "out")
		got := make([]string, 0, out.Len())
		for i := range out.Recs {
			got = append(got, proj.row(outSchema, &out.Recs[i]))
		}
		if st.ExpectNew != nil {
			if want := expectRows(st.ExpectNew); !sameMultiset(got, want) {
				t.Errorf("step %d: new rows got %v; want %v", si+1, got, want)
			}
		}
		if st.ExpectResult != nil {
			if want := expectRows(st.ExpectResult); !sameMultiset(got, want) {
				t.Errorf("step %d: result got %v; want %v", si+1, got, want)
			}
		}
		if w := st.ExpectWatermarkAfterS; w != nil {
			gotW := float64(x.Watermark()) / 1000
			if x.Watermark() == engine.NoWatermark {
				gotW = 0
			}
			if gotW != *w {
				t.Errorf("step %d: watermark got %v s; want %v s", si+1, gotW, *w)
			}
		}
		if n := st.ExpectStateRows; n != nil {
			ss, _ := x.StepStats(p.last)
			if ss.StateRows != *n {
				t.Errorf("step %d: state rows of %s got %d; want %d", si+1, p.last, ss.StateRows, *n)
			}
		}
		if n := st.ExpectDroppedLate; n != nil && late1-late0 != uint64(*n) {
			t.Errorf("step %d: dropped late got %d; want %d", si+1, late1-late0, *n)
		}
		if n := st.ExpectDroppedDuplicates; n != nil && dup1-dup0 != uint64(*n) {
			t.Errorf("step %d: dropped duplicates got %d; want %d", si+1, dup1-dup0, *n)
		}
	}
}

// TestEventTimeVectorsSurviveRestart runs every event_time vector, rebuilding
// the plan and executor from the same store half way through: the restored
// executor must pass the remaining checks.
func TestEventTimeVectorsSurviveRestart(t *testing.T) {
	for _, path := range []string{vectorsPath(), "testdata/extra_eventtime.json"} {
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range f.Vectors {
			if v.Kind != "event_time" || len(v.Steps) < 2 {
				continue
			}
			if v.MultipleWatermarkPolicy != "" {
				// The executor checkpoints only the global watermark; per-source
				// watermarks restart at it (see NewExecutor.restore), so a
				// multi-input vector legitimately diverges after a restart.
				continue
			}
			t.Run(v.Name, func(t *testing.T) {
				store := engine.NewMemStore()
				half := len(v.Steps) / 2
				p, err := buildEventTime(&v)
				if err != nil {
					t.Fatal(err)
				}
				x, err := engine.NewExecutor(p.plan, engine.Options{Store: store})
				if err != nil {
					t.Fatal(err)
				}
				head := v
				head.Steps = v.Steps[:half]
				runEventTimeSteps(t, &head, p, x, 0)
				p2, err := buildEventTime(&v)
				if err != nil {
					t.Fatal(err)
				}
				x2, err := engine.NewExecutor(p2.plan, engine.Options{Store: store})
				if err != nil {
					t.Fatal(err)
				}
				runEventTimeSteps(t, &v, p2, x2, half)
			})
		}
	}
}

// TestExtraEventTimeVectors runs the hand-derived vectors of
// testdata/extra_eventtime.json through the same runner.
func TestExtraEventTimeVectors(t *testing.T) {
	f, err := Load("testdata/extra_eventtime.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			switch v.Kind {
			case "event_time":
				runEventTime(t, &v)
			case "window_assign":
				runAssign(t, &v)
			default:
				t.Fatalf("kind %q", v.Kind)
			}
		})
	}
}
