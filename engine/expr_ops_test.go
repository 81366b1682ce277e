package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
)

var readingSchema = MustSchema(
	Field{"sensor", KindString},
	Field{"temp", KindNumber},
	Field{"hum", KindNumber},
)

type deadLetter struct {
	step   string
	reason string
	rec    []Value
}

// runOne builds src -> op -> sink "out", feeds recs in one epoch and returns
// the output batch, the dead letters and the step's stats.
func runOne(t *testing.T, op Operator, s *Schema, recs []Record) (*Batch, []deadLetter, StepStats) {
	t.Helper()
	b := NewBuilder("p")
	b.Sink("out", b.Source("in", s).Then("step", op))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var dls []deadLetter
	x, err := NewExecutor(p, Options{DeadLetter: func(step string, r *Record, s *Schema, reason error) {
		dls = append(dls, deadLetter{step, reason.Error(), append([]Value(nil), r.Vals...)})
	}})
	if err != nil {
		t.Fatal(err)
	}
	in := x.Input("in")
	for i := range recs {
		in.AppendCopy(&recs[i])
	}
	res, err := x.RunEpochAt(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := x.StepStats("step")
	return res.Output(p, "out"), dls, st
}

func reading(t int64, key, sensor string, temp, hum Value) Record {
	return Record{Time: t, Key: key, Vals: []Value{String(sensor), temp, hum}}
}

func rowsText(b *Batch) []string {
	var out []string
	for _, r := range b.Recs {
		var sb strings.Builder
		sb.WriteString(r.Key)
		sb.WriteString("@")
		sb.Write(Int(r.Time).AppendText(nil))
		for _, v := range r.Vals {
			sb.WriteString(" ")
			sb.WriteString(v.String())
		}
		out = append(out, sb.String())
	}
	return out
}

func wantRows(t *testing.T, b *Batch, want ...string) {
	t.Helper()
	got := rowsText(b)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sampleReadings() []Record {
	return []Record{
		reading(1, "a", "t1", Number(35), Number(50)),
		reading(2, "b", "t2", Number(25), Number(50)),
		reading(3, "c", "t3", Null, Number(50)),
		reading(4, "d", "t4", Number(40), Number(90)),
		reading(5, "e", "t5", Number(31), Null),
	}
}

func TestFilterExprKeepsTrueDropsFalseAndNull(t *testing.T) {
	out, _, st := runOne(t, FilterExpr("temp > 30 and hum < 80"), readingSchema, sampleReadings())
	wantRows(t, out, "a@1 t1 35 50")
	if st.In != 5 || st.Out != 1 {
		t.Fatalf("stats in=%d out=%d; want 5 and 1", st.In, st.Out)
	}
	if !SameFields(out.Schema, readingSchema) {
		t.Fatalf("schema got %s; want input schema", out.Schema)
	}
}

func TestFilterExprOpenErrorsNamePipelineStepAndColumn(t *testing.T) {
	tests := []struct {
		op   Operator
		want string
	}{
		{FilterExpr("temp > 'x'"), `pipeline "p": step "step": expression "temp > 'x'": column 6: cannot compare number with string (field "temp")`},
		{FilterExpr("tmp > 1"), `step "step": expression "tmp > 1": column 1: unknown field "tmp" (have sensor, temp, hum)`},
		{FilterExpr("temp + 1"), `filter condition must be bool, have number`},
		{Project([]NamedExpr{{"f", "temp * 1.8 +"}}), `step "step": field "f": expression "temp * 1.8 +"`},
		{Project([]NamedExpr{{"f", "1"}, {"f", "2"}}), `field "f": declared twice`},
		{Project([]NamedExpr{{"", "1"}}), `field 1 ("1"): empty name`},
		{FlatMapExprs(nil), `flatMap: no rows`},
		{FlatMapExprs([][]NamedExpr{{{"a", "1"}}, {{"b", "1"}}}), `row 2: column 1 is "b", row 1 has "a"`},
		{FlatMapExprs([][]NamedExpr{{{"a", "1"}}, {{"a", "'x'"}}}), `row 2: column "a" is string, an earlier row has number`},
		{FlatMapExprs([][]NamedExpr{{{"a", "1"}}, {{"a", "1"}, {"b", "2"}}}), `row 2 has 2 columns, row 1 has 1`},
		{KeyBy("nope"), `key field: unknown field: "nope" (have sensor, temp, hum)`},
		{KeyBy(), `keyBy: no key fields`},
		{Require("nope"), `required field: unknown field: "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b := NewBuilder("p")
			b.Sink("out", b.Source("in", readingSchema).Then("step", tt.op))
			_, err := b.Build()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidPlan) {
				t.Fatalf("error %v does not match ErrInvalidPlan", err)
			}
		})
	}
}

func TestFilterExprRoutesToSeveralSinks(t *testing.T) {
	b := NewBuilder("p")
	src := b.Source("in", readingSchema)
	b.Sink("hot", src.Then("is-hot", FilterExpr("temp > 30")))
	b.Sink("rest", src.Then("is-rest", FilterExpr("temp <= 30 or temp == null")))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	x, _ := NewExecutor(p, Options{})
	in := x.Input("in")
	recs := sampleReadings()
	for i := range recs {
		in.AppendCopy(&recs[i])
	}
	res, err := x.RunEpochAt(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	wantRows(t, res.Output(p, "hot"), "a@1 t1 35 50", "d@4 t4 40 90", "e@5 t5 31 null")
	wantRows(t, res.Output(p, "rest"), "b@2 t2 25 50", "c@3 t3 null 50")
}

func TestProjectComputesColumnsWithStaticKinds(t *testing.T) {
	out, _, _ := runOne(t, Project([]NamedExpr{
		{"id", "upper(sensor)"},
		{"tf", "round(temp * 1.8 + 32, 1)"},
		{"wet", "hum > 80"},
		{"at", "_time"},
	}), readingSchema, sampleReadings()[:4])
	want := "id:string, tf:number, wet:bool, at:time"
	if got := out.Schema.String(); got != want {
		t.Fatalf("schema got %s; want %s", got, want)
	}
	wantRows(t, out, "a@1 T1 95 false 1", "b@2 T2 77 false 2", "c@3 T3 null false 3", "d@4 T4 104 true 4")
}

func TestExtendReplacesInPlaceAndAppends(t *testing.T) {
	out, _, _ := runOne(t, Extend([]NamedExpr{
		{"temp", "str(temp * 2)"}, // replaces with another kind
		{"orig", "temp"},          // reads the input, not the replaced value
	}), readingSchema, sampleReadings()[:2])
	want := "sensor:string, temp:string, hum:number, orig:number"
	if got := out.Schema.String(); got != want {
		t.Fatalf("schema got %s; want %s", got, want)
	}
	wantRows(t, out, "a@1 t1 70 50 35", "b@2 t2 50 50 25")
}

func TestFlatMapExprsOneReadingToMetricRows(t *testing.T) {
	out, _, st := runOne(t, FlatMapExprs([][]NamedExpr{
		{{"sensor", "sensor"}, {"metric", "'temp'"}, {"value", "temp"}},
		{{"sensor", "sensor"}, {"metric", "'hum'"}, {"value", "if(hum == null, null, hum)"}},
		{{"sensor", "sensor"}, {"metric", "'none'"}, {"value", "null"}},
	}), readingSchema, sampleReadings()[3:])
	if got, want := out.Schema.String(), "sensor:string, metric:string, value:number"; got != want {
		t.Fatalf("schema got %s; want %s", got, want)
	}
	wantRows(t, out,
		"d@4 t4 temp 40", "d@4 t4 hum 90", "d@4 t4 none null",
		"e@5 t5 temp 31", "e@5 t5 hum null", "e@5 t5 none null")
	if st.In != 2 || st.Out != 6 {
		t.Fatalf("stats in=%d out=%d; want 2 and 6", st.In, st.Out)
	}
}

func TestKeyBySetsKeyFromFields(t *testing.T) {
	tests := []struct {
		fields []string
		want   []string
	}{
		{[]string{"sensor"}, []string{"t1", "t2", "t3"}},
		{[]string{"sensor", "temp"}, []string{"t1/35", "t2/25", "t3/"}},
		{[]string{"hum"}, []string{"50", "50", "50"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.fields, ","), func(t *testing.T) {
			out, _, _ := runOne(t, KeyBy(tt.fields...), readingSchema, sampleReadings()[:3])
			var got []string
			for _, r := range out.Recs {
				got = append(got, r.Key)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got keys %v; want %v", got, tt.want)
			}
			if out.Recs[0].Vals[0].Str != "t1" || out.Recs[0].Time != 1 {
				t.Fatalf("fields or time not kept: %v", rowsText(out))
			}
		})
	}
}

func TestRequireSendsMissingFieldsToDeadLetter(t *testing.T) {
	out, dls, st := runOne(t, Require("temp", "hum"), readingSchema, sampleReadings())
	wantRows(t, out, "a@1 t1 35 50", "b@2 t2 25 50", "d@4 t4 40 90")
	if len(dls) != 2 {
		t.Fatalf("got %d dead letters; want 2", len(dls))
	}
	for i, want := range []string{`missing field "temp"`, `missing field "hum"`} {
		if dls[i].reason != want || dls[i].step != "step" {
			t.Errorf("dead letter %d: got step %q reason %q; want step \"step\" reason %q", i, dls[i].step, dls[i].reason, want)
		}
	}
	if dls[0].rec[0].Str != "t3" {
		t.Errorf("dead letter 0 holds %v; want the t3 record", dls[0].rec)
	}
	if st.Invalid != 2 || st.In != 5 || st.Out != 3 {
		t.Fatalf("stats invalid=%d in=%d out=%d; want 2, 5, 3", st.Invalid, st.In, st.Out)
	}
}

func TestRequireReasonMatchesErrMissingField(t *testing.T) {
	op := Require("temp").(*requireOp)
	if _, err := op.Open([]*Schema{readingSchema}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(op.reasons[0], ErrMissingField) {
		t.Fatalf("reason %v does not match ErrMissingField", op.reasons[0])
	}
}

// TestExprOperatorsZeroAllocsSteadyState protects the per-record cost of the
// stateless expression operators once their output batches have grown.
func TestExprOperatorsZeroAllocsSteadyState(t *testing.T) {
	ops := map[string]Operator{
		"filter":  FilterExpr("temp > 30 and hum < 80"),
		"project": Project([]NamedExpr{{"s", "sensor"}, {"tf", "temp * 1.8 + 32"}, {"wet", "hum > 80"}}),
		"extend":  Extend([]NamedExpr{{"tf", "temp * 1.8 + 32"}}),
		"flatmap": FlatMapExprs([][]NamedExpr{{{"m", "'temp'"}, {"v", "temp"}}, {{"m", "'hum'"}, {"v", "hum"}}}),
		"keyby":   KeyBy("sensor", "hum"),
		"require": Require("temp"),
	}
	in := NewBatch(readingSchema)
	for _, r := range sampleReadings() {
		if r.Vals[1].IsNull() {
			continue // Require would dead-letter it; the fake epoch has no sink
		}
		in.AppendCopy(&r)
	}
	for name, op := range ops {
		s, err := op.Open([]*Schema{readingSchema})
		if err != nil {
			t.Fatal(err)
		}
		out := NewBatch(s)
		ep := &Epoch{Stats: &NodeStats{}, DeadLetter: func(*Record, *Schema, error) {}}
		ins := []*Batch{in}
		run := func() {
			out.Reset(s)
			if err := op.Process(ep, ins, out); err != nil {
				t.Fatal(err)
			}
		}
		run()
		if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
			t.Errorf("%s: got %v allocs per batch; want 0", name, allocs)
		}
	}
}
