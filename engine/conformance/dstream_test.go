package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// runDStream translates a dstream vector into engine operators, runs batch k
// at time k*1000 ms and checks the sink output at every batch.
func runDStream(t *testing.T, v *Vector) {
	t.Helper()
	r, err := newDStreamRun(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, snaps, err := r.run(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDStream(v, r.sinkSchema, outs, snaps, r.stateStep != ""); err != nil {
		t.Fatal(err)
	}
}

// dstreamRun holds a vector's inputs and builds its plan.
type dstreamRun struct {
	v          *Vector
	streams    [][][]any // [stream][batch][element]
	schemas    []*engine.Schema
	sinkSchema *engine.Schema
	stateStep  string
	store      *engine.MemStore
}

func newDStreamRun(v *Vector, store *engine.MemStore) (*dstreamRun, error) {
	r := &dstreamRun{v: v, store: store}
	if r.store == nil {
		r.store = engine.NewMemStore()
	}
	if err := json.Unmarshal(v.Inputs, &r.streams); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	for i, s := range r.streams {
		sch, err := inferSchema(s)
		if err != nil {
			return nil, fmt.Errorf("input %d: %w", i, err)
		}
		r.schemas = append(r.schemas, sch)
	}
	return r, nil
}

// inferSchema: scalars give one field "value"; pairs [k, v] give "key","value".
func inferSchema(batches [][]any) (*engine.Schema, error) {
	for _, b := range batches {
		for _, e := range b {
			if p, ok := e.([]any); ok {
				if len(p) != 2 {
					return nil, fmt.Errorf("element %v: want a scalar or a pair", e)
				}
				return engine.NewSchema(engine.Field{Name: "key", Kind: jsonKind(p[0])}, engine.Field{Name: "value", Kind: jsonKind(p[1])})
			}
			return engine.NewSchema(engine.Field{Name: "value", Kind: jsonKind(e)})
		}
	}
	return engine.NewSchema(engine.Field{Name: "value", Kind: engine.KindNumber})
}

func jsonKind(x any) engine.Kind {
	switch x.(type) {
	case string:
		return engine.KindString
	case []any:
		return engine.KindList
	case nil:
		return engine.KindNull
	}
	return engine.KindNumber
}

func toValue(x any) engine.Value {
	switch y := x.(type) {
	case float64:
		return engine.Number(y)
	case string:
		return engine.String(y)
	case bool:
		return engine.Bool(y)
	case []any:
		l := make([]engine.Value, len(y))
		for i, e := range y {
			l[i] = toValue(e)
		}
		return engine.List(l...)
	}
	return engine.Null
}

func fromValue(v engine.Value) any {
	switch v.Kind {
	case engine.KindNumber, engine.KindTime:
		return v.Num
	case engine.KindString:
		return v.Str
	case engine.KindBool:
		return v.AsBool()
	case engine.KindList:
		l := make([]any, len(v.Items()))
		for i, e := range v.Items() {
			l[i] = fromValue(e)
		}
		return l
	}
	return nil
}

// build compiles the vector into a plan.
func (r *dstreamRun) build() (*engine.Plan, error) {
	v := r.v
	b := engine.NewBuilder("v_" + v.Name)
	srcs := make([]engine.Stream, len(r.schemas))
	for i, s := range r.schemas {
		srcs[i] = b.Source(fmt.Sprintf("in%d", i), s)
	}
	c := &chain{b: b}
	var cur engine.Stream
	var sch *engine.Schema
	if len(v.Branches) == 0 {
		if len(srcs) == 0 {
			return nil, fmt.Errorf("no inputs")
		}
		cur, sch = srcs[0], r.schemas[0]
	} else {
		var outs []engine.Stream
		var schs []*engine.Schema
		for _, br := range v.Branches {
			if br.Input < 0 || br.Input >= len(srcs) {
				return nil, fmt.Errorf("branch input %d out of range", br.Input)
			}
			s, sc, err := c.stages(srcs[br.Input], r.schemas[br.Input], br.Pipeline)
			if err != nil {
				return nil, err
			}
			outs, schs = append(outs, s), append(schs, sc)
		}
		if v.Combine == nil {
			return nil, fmt.Errorf("branches without combine")
		}
		var op engine.Operator
		switch v.Combine.Op {
		case "union":
			op = engine.Union()
		case "join":
			op = engine.Join(engine.InnerJoin, "key", "value")
		case "leftOuterJoin":
			op = engine.Join(engine.LeftOuterJoin, "key", "value")
		case "rightOuterJoin":
			op = engine.Join(engine.RightOuterJoin, "key", "value")
		case "fullOuterJoin":
			op = engine.Join(engine.FullOuterJoin, "key", "value")
		case "cogroup":
			op = engine.Cogroup("key", "value")
		default:
			return nil, fmt.Errorf("unknown combine %q", v.Combine.Op)
		}
		cur = b.Apply("combine", op, outs...)
		sch = openSchema(op, schs)
	}
	cur, sch, err := c.stages(cur, sch, v.Pipeline)
	if err != nil {
		return nil, err
	}
	_ = sch
	b.Sink("out", cur)
	p, err := b.Build()
	if err != nil {
		return nil, err
	}
	r.sinkSchema = p.SinkSchema("out")
	r.stateStep = c.stateStep
	return p, nil
}

// openSchema opens a throwaway copy of an operator kind to learn the output
// schema while the plan is being declared (Build opens the real one).
func openSchema(op engine.Operator, in []*engine.Schema) *engine.Schema {
	s, err := op.Open(in)
	if err != nil {
		return nil
	}
	return s
}

// run executes the vector. restartEvery > 0 rebuilds the plan and executor on
// the same store after every restartEvery batches. It returns the sink output
// per batch (converted to JSON-like values) and the state snapshots.
func (r *dstreamRun) run(restartEvery int) ([][]any, [][]any, error) {
	ctx := context.Background()
	p, err := r.build()
	if err != nil {
		return nil, nil, err
	}
	x, err := engine.NewExecutor(p, engine.Options{Store: r.store})
	if err != nil {
		return nil, nil, err
	}
	var outs, snaps [][]any
	for k := 1; k <= r.v.NumBatches; k++ {
		if restartEvery > 0 && k > 1 && (k-1)%restartEvery == 0 {
			if p, err = r.build(); err != nil {
				return nil, nil, err
			}
			if x, err = engine.NewExecutor(p, engine.Options{Store: r.store}); err != nil {
				return nil, nil, err
			}
		}
		for i, s := range r.streams {
			in := x.Input(fmt.Sprintf("in%d", i))
			if k-1 < len(s) {
				for _, e := range s[k-1] {
					rec := in.Append()
					if pair, ok := e.([]any); ok && in.Schema.Len() == 2 {
						rec.Vals[0], rec.Vals[1] = toValue(pair[0]), toValue(pair[1])
					} else {
						rec.Vals[0] = toValue(e)
					}
				}
			}
		}
		res, err := x.RunEpochAt(ctx, int64(k)*1000)
		if err != nil {
			return nil, nil, fmt.Errorf("batch %d: %w", k, err)
		}
		out := res.Output(p, "out")
		batch := []any{}
		for i := range out.Recs {
			batch = append(batch, recordJSON(out.Schema, &out.Recs[i]))
		}
		outs = append(outs, batch)
		if r.stateStep != "" {
			snap := []any{}
			err := x.Query(r.stateStep, func(s *engine.Schema, rec *engine.Record) bool {
				snap = append(snap, []any{fromValue(rec.Vals[0]), fromValue(rec.Vals[1])})
				return true
			})
			if err != nil {
				return nil, nil, err
			}
			snaps = append(snaps, snap)
		}
	}
	return outs, snaps, nil
}

// recordJSON converts a sink record back to the vector's encoding, by shape:
// one field is a scalar; (key, left, right) is [k, [l, r]]; other widths are
// tuples (pairs, static-join rows).
func recordJSON(s *engine.Schema, r *engine.Record) any {
	switch {
	case s.Len() == 1:
		return fromValue(r.Vals[0])
	case s.Len() == 3 && s.Field(1).Name == "left" && s.Field(2).Name == "right":
		return []any{fromValue(r.Vals[0]), []any{fromValue(r.Vals[1]), fromValue(r.Vals[2])}}
	}
	row := make([]any, len(r.Vals))
	for i, v := range r.Vals {
		row[i] = fromValue(v)
	}
	return row
}

// canon returns a canonical text of one output element; grouped values (lists
// produced by groupByKey, cogroup, ...) are compared as multisets.
func canon(s *engine.Schema, e any) string {
	e = normalizeGroups(s, e)
	b, _ := json.Marshal(e)
	return string(b)
}

func sortedList(x any) any {
	l, ok := x.([]any)
	if !ok {
		return x
	}
	c := slices.Clone(l)
	slices.SortFunc(c, func(a, b any) int {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return strings.Compare(string(ja), string(jb))
	})
	return c
}

func normalizeGroups(s *engine.Schema, e any) any {
	if s == nil {
		return e
	}
	row, ok := e.([]any)
	if !ok || len(row) != 2 {
		return e
	}
	switch {
	case s.Len() == 2 && s.Field(1).Kind == engine.KindList:
		return []any{row[0], sortedList(row[1])}
	case s.Len() == 3 && s.Field(1).Kind == engine.KindList:
		lr, ok := row[1].([]any)
		if !ok || len(lr) != 2 {
			return e
		}
		return []any{row[0], []any{sortedList(lr[0]), sortedList(lr[1])}}
	}
	return e
}

func canonBatch(s *engine.Schema, b []any, sorted bool) []string {
	out := make([]string, len(b))
	for i, e := range b {
		out[i] = canon(s, e)
	}
	if sorted {
		slices.Sort(out)
	}
	return out
}

// checkDStream compares the outputs with the vector's expectations.
func checkDStream(v *Vector, s *engine.Schema, outs, snaps [][]any, hasState bool) error {
	if v.Compare == "relaxed" {
		return checkRelaxed(v, s, outs, snaps, hasState)
	}
	if v.RelaxedChecks != nil {
		return fmt.Errorf("relaxed_checks is only for compare \"relaxed\", not %q", v.Compare)
	}
	var expected [][]any
	if err := json.Unmarshal(v.Expected, &expected); err != nil {
		return fmt.Errorf("expected: %w", err)
	}
	if len(expected) != len(v.ExpectedTimesS) {
		return fmt.Errorf("vector has %d expected batches for %d times", len(expected), len(v.ExpectedTimesS))
	}
	want := map[int64][]any{}
	for i, ts := range v.ExpectedTimesS {
		want[ts] = expected[i]
	}
	sorted := v.Compare != "ordered"
	for k := 1; k <= len(outs); k++ {
		got := outs[k-1]
		exp, isOut := want[int64(k)]
		if !isOut {
			if len(got) != 0 {
				return fmt.Errorf("time %ds is not an output time: got %v; want no records", k, got)
			}
			continue
		}
		g, w := canonBatch(s, got, sorted), canonBatch(s, exp, sorted)
		if !slices.Equal(g, w) {
			return fmt.Errorf("time %ds: got %v; want %v", k, g, w)
		}
	}
	for ts := range want {
		if ts < 1 || ts > int64(len(outs)) {
			return fmt.Errorf("expected time %ds outside the %d batches run", ts, len(outs))
		}
	}
	if len(v.ExpectedStateSnapshots) > 0 {
		if !hasState {
			return fmt.Errorf("vector has state snapshots but the plan has no queryable state step")
		}
		for i, exp := range v.ExpectedStateSnapshots {
			if i >= len(snaps) {
				return fmt.Errorf("snapshot %d: not taken (%d batches)", i, len(snaps))
			}
			g, w := canonBatch(nil, snaps[i], true), canonBatch(nil, exp, true)
			if !slices.Equal(g, w) {
				return fmt.Errorf("state after batch %d: got %v; want %v", i+1, g, w)
			}
		}
	}
	return nil
}

// checkRelaxed implements compare "relaxed" (see VECTORS.md, compare): the
// vector's relaxed_checks replace expected and expected_state_snapshots.
// Outputs still appear only at expected_times_s; every check present must
// hold, and every failing one is reported.
func checkRelaxed(v *Vector, s *engine.Schema, outs, snaps [][]any, hasState bool) error {
	rc := v.RelaxedChecks
	switch {
	case rc == nil:
		return errors.New(`compare "relaxed" needs a relaxed_checks object`)
	case len(v.Expected) > 0 || len(v.ExpectedStateSnapshots) > 0:
		return errors.New(`a "relaxed" vector has relaxed_checks instead of expected and expected_state_snapshots`)
	case rc.AllOutputsFlattenedSorted == nil && rc.SomeStateSnapshotEquals == nil && rc.LastStateSnapshotEquals == nil:
		return errors.New("relaxed_checks asserts nothing: want all_outputs_flattened_sorted, some_state_snapshot_equals or last_state_snapshot_equals")
	}
	var errs []error
	times := map[int64]bool{}
	for _, ts := range v.ExpectedTimesS {
		if ts < 1 || ts > int64(len(outs)) {
			errs = append(errs, fmt.Errorf("expected time %ds outside the %d batches run", ts, len(outs)))
		}
		times[ts] = true
	}
	for k, b := range outs {
		if len(b) > 0 && !times[int64(k+1)] {
			errs = append(errs, fmt.Errorf("time %ds is not an output time: got %v; want no records", k+1, b))
		}
	}
	if want := rc.AllOutputsFlattenedSorted; want != nil {
		var g []string
		for _, b := range outs {
			g = append(g, canonBatch(s, b, false)...)
		}
		slices.Sort(g)
		if w := canonBatch(s, *want, true); !slices.Equal(g, w) {
			errs = append(errs, fmt.Errorf("all outputs flattened and sorted: got %v; want %v", g, w))
		}
	}
	if (rc.SomeStateSnapshotEquals != nil || rc.LastStateSnapshotEquals != nil) && (!hasState || len(snaps) == 0) {
		return errors.Join(append(errs, errors.New("relaxed_checks asserts state but the plan has no queryable state step"))...)
	}
	if want := rc.SomeStateSnapshotEquals; want != nil {
		w := canonBatch(nil, *want, true)
		found := false
		for _, sn := range snaps {
			if slices.Equal(canonBatch(nil, sn, true), w) {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("no state snapshot equals %v; got %v", w, snaps))
		}
	}
	if want := rc.LastStateSnapshotEquals; want != nil {
		g, w := canonBatch(nil, snaps[len(snaps)-1], true), canonBatch(nil, *want, true)
		if !slices.Equal(g, w) {
			errs = append(errs, fmt.Errorf("state after the last batch: got %v; want %v", g, w))
		}
	}
	return errors.Join(errs...)
}
