package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var trigSchema = MustSchema(Field{"sensor", KindString}, Field{"value", KindNumber})

// rd is one reading: sensor, event time (ms), value.
type rd struct {
	k string
	t int64
	v float64
}

func newTrigExec(t testing.TB, op Operator, store StateStore) (*Plan, *Executor) {
	t.Helper()
	b := NewBuilder("trig")
	src := b.Source("in", trigSchema)
	b.Sink("out", src.Then("rule", op))
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

// fmtRec formats a record as its values separated by spaces.
func fmtRec(r *Record) string {
	var b []byte
	for i, v := range r.Vals {
		if i > 0 {
			b = append(b, ' ')
		}
		b = v.AppendText(b)
	}
	return string(b)
}

// runEpoch feeds rs into x as one epoch and returns the formatted outputs.
func runEpoch(t testing.TB, p *Plan, x *Executor, rs []rd) []string {
	t.Helper()
	in := x.Input("in")
	for _, r := range rs {
		if math.IsNaN(r.v) {
			in.AppendValues(r.t, String(r.k), Null)
			continue
		}
		in.AppendValues(r.t, String(r.k), Number(r.v))
	}
	res, err := x.RunEpochAt(context.Background(), int64(x.Epoch()+1)*1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range res.Output(p, "out").Recs {
		out = append(out, fmtRec(&res.Output(p, "out").Recs[i]))
	}
	return out
}

// runAll runs rs through op in one epoch and returns the events.
func runAll(t *testing.T, op Operator, rs []rd) ([]string, StepStats) {
	t.Helper()
	p, x := newTrigExec(t, op, nil)
	got := runEpoch(t, p, x, rs)
	st, _ := x.StepStats("rule")
	return got, st
}

func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const sec = int64(1000)

func TestThresholdRules(t *testing.T) {
	tests := []struct {
		name string
		cfg  ThresholdConfig
		in   []rd
		want []string
	}{
		{
			name: "hysteresis does not chatter around the limit",
			cfg:  ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), Clear: new(75.0)},
			in: []rd{{"a", 1000, 79}, {"a", 2000, 81}, {"a", 3000, 79}, {"a", 4000, 81}, {"a", 5000, 76},
				{"a", 6000, 75}, {"a", 7000, 76}, {"a", 8000, 79.5}, {"a", 9000, 80.5}},
			want: []string{"a hot raise 81 2000 80 2000", "a hot clear 75 6000 75 2000", "a hot raise 80.5 9000 80 9000"},
		},
		{
			name: "value equal to the limit neither raises nor clears",
			cfg:  ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0)},
			in:   []rd{{"a", 1, 80}, {"a", 2, 80.1}, {"a", 3, 80.2}, {"a", 4, 80}, {"a", 5, 80}, {"a", 6, 81}},
			want: []string{"a hot raise 80.1 2 80 2", "a hot clear 80 4 80 2", "a hot raise 81 6 80 6"},
		},
		{
			name: "low alarm with hysteresis",
			cfg:  ThresholdConfig{Rule: "cold", Keys: []string{"sensor"}, Below: new(0.0), Clear: new(2.0)},
			in:   []rd{{"a", 1, 1}, {"a", 2, -0.5}, {"a", 3, 1}, {"a", 4, -3}, {"a", 5, 1.9}, {"a", 6, 2}, {"a", 7, 1}},
			want: []string{"a cold raise -0.5 2 0 2", "a cold clear 2 6 2 2"},
		},
		{
			name: "for: raises once the condition held long enough",
			cfg:  ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), For: 10 * time.Second},
			in: []rd{{"a", 0, 81}, {"a", 5 * sec, 82}, {"a", 9999, 90}, {"a", 10 * sec, 83}, {"a", 11 * sec, 84},
				{"a", 12 * sec, 70}},
			want: []string{"a hot raise 83 10000 80 0", "a hot clear 70 12000 80 10000"},
		},
		{
			name: "for: a dip below the limit restarts the debounce",
			cfg:  ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), For: 10 * time.Second},
			in: []rd{{"a", 0, 81}, {"a", 5 * sec, 79}, {"a", 10 * sec, 81}, {"a", 15 * sec, 81},
				{"a", 19 * sec, 81}, {"a", 20 * sec, 81}},
			want: []string{"a hot raise 81 20000 80 10000"},
		},
		{
			name: "keys are independent",
			cfg:  ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), Clear: new(70.0)},
			in:   []rd{{"a", 1, 90}, {"b", 2, 60}, {"b", 3, 85}, {"a", 4, 65}, {"b", 5, 75}, {"a", 6, 75}},
			want: []string{"a hot raise 90 1 80 1", "b hot raise 85 3 80 3", "a hot clear 65 4 70 1"},
		},
		{
			name: "no keys is one global alarm",
			cfg:  ThresholdConfig{Rule: "hot", Above: new(80.0)},
			in:   []rd{{"a", 1, 90}, {"b", 2, 95}, {"b", 3, 50}},
			want: []string{"hot raise 90 1 80 1", "hot clear 50 3 80 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := runAll(t, Threshold(tt.cfg), tt.in)
			sameLines(t, got, tt.want)
		})
	}
}

func TestThresholdDeadLettersBadValues(t *testing.T) {
	got, st := runAll(t, Threshold(ThresholdConfig{Rule: "hot", Above: new(1.0)}),
		[]rd{{"a", 1, math.NaN()}, {"a", 2, 5}})
	sameLines(t, got, []string{"hot raise 5 2 1 2"})
	if st.Invalid != 1 || st.In != 2 {
		t.Fatalf("got invalid=%d in=%d; want 1 and 2", st.Invalid, st.In)
	}
}

func TestRateOfChangeRules(t *testing.T) {
	min := int64(60 * sec)
	tests := []struct {
		name     string
		cfg      RateOfChangeConfig
		in       []rd
		want     []string
		wantLate uint64
	}{
		{
			name: "compares with the previous reading, both directions",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute},
			in:   []rd{{"a", 0, 20}, {"a", min, 25}, {"a", 2 * min, 40}, {"a", 2*min + 30*sec, 30}},
			want: []string{"a jump rate 40 120000 15", "a jump rate 30 150000 -20"},
		},
		{
			name: "rising only",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute, Direction: RateRising},
			in:   []rd{{"a", 0, 20}, {"a", min, 40}, {"a", 2 * min, 0}},
			want: []string{"a jump rate 40 60000 20"},
		},
		{
			name: "falling only, per second by default",
			cfg:  RateOfChangeConfig{Rule: "drop", Keys: []string{"sensor"}, MaxRate: 1, Direction: RateFalling},
			in:   []rd{{"a", 0, 20}, {"a", sec, 40}, {"a", 2 * sec, 38.5}},
			want: []string{"a drop rate 38.5 2000 -1.5"},
		},
		{
			name: "out-of-order readings are late and ignored",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute},
			in: []rd{{"a", 0, 20}, {"a", min, 25}, {"a", 30 * sec, 100}, {"a", min, 100},
				{"a", 2 * min, 31}, {"a", 3 * min, 50}},
			want:     []string{"a jump rate 50 180000 19"},
			wantLate: 2,
		},
		{
			name: "window compares with the oldest reading in the window",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute, Window: 2 * time.Minute},
			// previous-reading rates would be 11, 1, 18; window rates are 11, 6, 9.5
			in:   []rd{{"a", 0, 0}, {"a", min, 11}, {"a", 2 * min, 12}, {"a", 3 * min, 30}},
			want: []string{"a jump rate 11 60000 11"},
		},
		{
			name: "window with no earlier reading inside it does not compare",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 1, Per: time.Minute, Window: time.Minute},
			in:   []rd{{"a", 0, 0}, {"a", 2 * min, 100}, {"a", 2*min + 30*sec, 110}},
			want: []string{"a jump rate 110 150000 20"},
		},
		{
			name: "window points bound keeps the newest readings",
			cfg: RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute,
				Window: time.Hour, WindowPoints: 2},
			// with 2 points, the reading at 3min compares with the one at 1min: (30-11)/2 = 9.5
			in:   []rd{{"a", 0, 0}, {"a", min, 11}, {"a", 2 * min, 12}, {"a", 3 * min, 30}},
			want: []string{"a jump rate 11 60000 11"},
		},
		{
			name: "keys are independent",
			cfg:  RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 10, Per: time.Minute},
			in:   []rd{{"a", 0, 0}, {"b", 0, 100}, {"a", min, 5}, {"b", min, 50}, {"a", 2 * min, 100}},
			want: []string{"b jump rate 50 60000 -50", "a jump rate 100 120000 95"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := runAll(t, RateOfChange(tt.cfg), tt.in)
			sameLines(t, got, tt.want)
			if st.Late != tt.wantLate {
				t.Fatalf("got late=%d; want %d", st.Late, tt.wantLate)
			}
		})
	}
}

func TestNOfMRules(t *testing.T) {
	tests := []struct {
		name string
		cfg  NOfMConfig
		in   []float64
		want []string // events as "index count"
	}{
		{
			name: "fires once at N and re-arms only below N",
			cfg:  NOfMConfig{N: 2, M: 3, Above: new(80.0)},
			//     0   1   2   3   4   5   6   7   8
			in:   []float64{81, 79, 81, 81, 81, 79, 79, 81, 81},
			want: []string{"2 2", "8 2"},
		},
		{
			name: "can fire before M readings arrived",
			cfg:  NOfMConfig{N: 2, M: 5, Below: new(0.0)},
			in:   []float64{-1, -2, 5},
			want: []string{"1 2"},
		},
		{
			name: "predicate condition, 1 of 1 fires on every new match",
			cfg:  NOfMConfig{N: 1, M: 1, Match: func(r *Record) bool { return int(r.Vals[1].Num)%2 == 0 }},
			in:   []float64{2, 4, 5, 6, 7, 7, 8},
			want: []string{"0 1", "3 1", "6 1"},
		},
		{
			name: "m of 64 uses the whole bitset",
			cfg:  NOfMConfig{N: 64, M: 64, Above: new(0.0)},
			in:   append(append(ones(63), 0), ones(64)...),
			want: []string{"127 64"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Rule, tt.cfg.Keys = "r", []string{"sensor"}
			var in []rd
			for i, v := range tt.in {
				in = append(in, rd{"a", int64(i), v})
			}
			got, _ := runAll(t, NOfM(tt.cfg), in)
			var short []string
			for _, g := range got {
				f := strings.Fields(g) // sensor rule event value time count of
				if f[6] != fmt.Sprint(tt.cfg.M) {
					t.Fatalf("event %q: got of=%s; want %d", g, f[6], tt.cfg.M)
				}
				short = append(short, f[4]+" "+f[5])
			}
			sameLines(t, short, tt.want)
		})
	}
}

func ones(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func TestNOfMKeysAreIndependent(t *testing.T) {
	got, _ := runAll(t, NOfM(NOfMConfig{Rule: "r", Keys: []string{"sensor"}, N: 2, M: 2, Above: new(0.0)}),
		[]rd{{"a", 1, 1}, {"b", 2, 1}, {"a", 3, 0}, {"b", 4, 1}, {"a", 5, 1}, {"a", 6, 1}})
	sameLines(t, got, []string{"b r n_of_m 1 4 2 2", "a r n_of_m 1 6 2 2"})
}

func TestTriggerConfigErrorsNameTheParameter(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"threshold clear above a high limit",
			ThresholdConfig{Rule: "r", Above: new(80.0), Clear: new(85.0)}.Validate(),
			[]string{"clear: must be <= above (80) for a high alarm"}},
		{"threshold clear below a low limit",
			ThresholdConfig{Rule: "r", Below: new(5.0), Clear: new(4.5)}.Validate(),
			[]string{"clear: must be >= below (5) for a low alarm"}},
		{"threshold lists every problem",
			ThresholdConfig{Keys: []string{"a", "a"}, For: -time.Second}.Validate(),
			[]string{"rule: must not be empty", `keys[1]: field "a" listed twice`, "above: one of above or below", "for: must be >= 0"}},
		{"threshold both limits",
			ThresholdConfig{Rule: "r", Above: new(1.0), Below: new(0.0)}.Validate(),
			[]string{"below: only one of above or below"}},
		{"rate",
			RateOfChangeConfig{Rule: "r", MaxRate: -1, Per: time.Microsecond, Direction: 7, Window: -1, WindowPoints: 5000}.Validate(),
			[]string{"max_rate:", "per:", "direction:", "window:", "window_points:"}},
		{"n of m with m above 64",
			NOfMConfig{Rule: "r", N: 3, M: 65, Above: new(1.0)}.Validate(),
			[]string{"m: must be <= 64, have 65"}},
		{"n of m",
			NOfMConfig{Rule: "r", N: 0, M: 3}.Validate(),
			[]string{"n: must be >= 1", "match: one of match, above or below"}},
		{"n above m",
			NOfMConfig{Rule: "r", N: 4, M: 3, Match: func(*Record) bool { return true }, Below: new(1.0)}.Validate(),
			[]string{"n: must be <= m (3), have 4", "match: only one of"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatalf("got nil error; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(tt.err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", tt.err, w)
				}
			}
		})
	}
	if err := (ThresholdConfig{Rule: "r", Above: new(80.0), Clear: new(80.0)}).Validate(); err != nil {
		t.Errorf("got %v for clear == above; want nil", err)
	}
}

func TestTriggerOpenErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name string
		op   Operator
		want []string
	}{
		{"unknown key and value fields",
			Threshold(ThresholdConfig{Rule: "r", Keys: []string{"site"}, Value: "temp", Above: new(1.0)}),
			[]string{`keys: unknown field: "site"`, `value: unknown field: "temp"`}},
		{"value field not a number",
			RateOfChange(RateOfChangeConfig{Rule: "r", Value: "sensor"}),
			[]string{`value: field "sensor" is string, want number`}},
		{"key field clashes with an output field",
			NOfM(NOfMConfig{Rule: "r", Keys: []string{"value"}, N: 1, M: 1, Above: new(1.0)}),
			[]string{`keys: output fields: field "value" declared twice`}},
		{"invalid config",
			NOfM(NOfMConfig{Rule: "r", N: 1, M: 100, Above: new(1.0)}),
			[]string{`step "rule": m: must be <= 64`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBuilder("trig")
			b.Sink("out", b.Source("in", trigSchema).Then("rule", tt.op))
			_, err := b.Build()
			if err == nil {
				t.Fatalf("Build succeeded; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// restartCases are the rules the restart test runs, over readings that make
// each of them fire several times.
var restartCases = []struct {
	name string
	op   func() Operator
}{
	{"threshold with for", func() Operator {
		return Threshold(ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(60.0), Clear: new(40.0), For: 3 * time.Second})
	}},
	{"rate with window", func() Operator {
		return RateOfChange(RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 15, Per: time.Second,
			Window: 4 * time.Second, WindowPoints: 3})
	}},
	{"rate with previous", func() Operator {
		return RateOfChange(RateOfChangeConfig{Rule: "jump", Keys: []string{"sensor"}, MaxRate: 30, Direction: RateRising})
	}},
	{"n of m", func() Operator {
		return NOfM(NOfMConfig{Rule: "nm", Keys: []string{"sensor"}, N: 3, M: 5, Above: new(55.0)})
	}},
}

func restartInput() []rd {
	rng := rand.New(rand.NewPCG(7, 11))
	var in []rd
	t := map[string]int64{}
	for i := 0; i < 400; i++ {
		k := []string{"a", "b", "c"}[rng.IntN(3)]
		t[k] += 1000
		tt := t[k]
		if rng.IntN(20) == 0 {
			tt -= 3000 // an out-of-order reading now and then
		}
		in = append(in, rd{k, tt, float64(rng.IntN(100))})
	}
	return in
}

// TestTriggersRestoreFromCheckpoint runs each rule uninterrupted with one
// epoch split, then with another split and a fresh plan and executor on the
// same store after every epoch, and expects the same events and state.
func TestTriggersRestoreFromCheckpoint(t *testing.T) {
	in := restartInput()
	for _, tc := range restartCases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			p, x := newTrigExec(t, tc.op(), NewMemStore())
			for i := 0; i < len(in); i += 50 {
				want = append(want, runEpoch(t, p, x, in[i:min(i+50, len(in))])...)
			}
			wantState := queryLines(t, x)
			if len(want) < 5 {
				t.Fatalf("only %d events; the input should make the rule fire more often", len(want))
			}

			store := NewMemStore()
			var got []string
			for i, n := 0, 7; i < len(in); i, n = i+n, n+6 {
				p, x := newTrigExec(t, tc.op(), store)
				got = append(got, runEpoch(t, p, x, in[i:min(i+n, len(in))])...)
			}
			sameLines(t, got, want)
			_, x = newTrigExec(t, tc.op(), store)
			if gotState := queryLines(t, x); strings.Join(gotState, "\n") != strings.Join(wantState, "\n") {
				t.Fatalf("restored query state:\n%s\nwant:\n%s", strings.Join(gotState, "\n"), strings.Join(wantState, "\n"))
			}
		})
	}
}

func queryLines(t *testing.T, x *Executor) []string {
	t.Helper()
	var rows []string
	err := x.Query("rule", func(_ *Schema, r *Record) bool {
		rows = append(rows, fmtRec(r))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	sortStrings(rows)
	return rows
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestTriggerSaveStateWritesChangedKeysOnly(t *testing.T) {
	store := NewMemStore()
	p, x := newTrigExec(t, Threshold(ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0)}), store)
	op := p.nodes[1].op.(*thresholdOp)
	runEpoch(t, p, x, []rd{{"a", 1, 10}, {"b", 1, 10}, {"c", 1, 10}})
	if n := len(x.commit.State); n != 3 {
		t.Fatalf("first epoch wrote %d state entries; want 3 (new keys)", n)
	}
	runEpoch(t, p, x, []rd{{"a", 2, 11}, {"b", 2, 90}, {"c", 2, 12}})
	if n := len(x.commit.State); n != 1 {
		t.Fatalf("second epoch wrote %d state entries; want 1 (only b changed)", n)
	}
	if op.StateRows() != 3 {
		t.Fatalf("got %d state rows; want 3", op.StateRows())
	}
}

func TestThresholdQueryState(t *testing.T) {
	p, x := newTrigExec(t, Threshold(ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), For: time.Second}), nil)
	runEpoch(t, p, x, []rd{{"a", 1000, 90}, {"b", 1000, 90}, {"b", 2000, 91}, {"c", 1000, 1}})
	sameLines(t, queryLines(t, x), []string{"a hot pending 1000", "b hot raised 2000", "c hot ok null"})
}

func TestTriggerCorruptStateIsAnError(t *testing.T) {
	for _, tc := range restartCases {
		op := tc.op()
		if _, err := op.Open([]*Schema{trigSchema}); err != nil {
			t.Fatal(err)
		}
		for _, val := range [][]byte{nil, {9}, {triggerStateVersion}, {triggerStateVersion, byte(KindString), 1, 'a'}} {
			if err := op.(Stateful).LoadState([]byte("k"), val); !errors.Is(err, ErrCorruptState) {
				t.Errorf("%s: LoadState(%v): got %v; want ErrCorruptState", tc.name, val, err)
			}
		}
	}
}

// BenchmarkThreshold measures Threshold over 10,000 sensors, 10,000 readings
// per epoch (one per sensor), with values that move by 13 every epoch so that
// about a quarter of the keys change state each epoch. "process" is the
// operator alone; "epoch" runs the executor with a MemStore commit.
func BenchmarkThreshold(b *testing.B) {
	const keys = 10000
	names := make([]Value, keys)
	for i := range names {
		names[i] = String(fmt.Sprintf("sensor-%05d", i))
	}
	b.Run("process", func(b *testing.B) {
		op := Threshold(ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), Clear: new(75.0), For: 2 * time.Second})
		outS, err := op.Open([]*Schema{trigSchema})
		if err != nil {
			b.Fatal(err)
		}
		in, out := NewBatch(trigSchema), NewBatch(outS)
		ins := []*Batch{in}
		var stats NodeStats
		var ops []StateOp
		ep := &Epoch{Stats: &stats, DeadLetter: func(*Record, *Schema, error) {}}
		t, e := int64(0), 0
		fill := func() {
			in.Reset(trigSchema)
			e++
			for i := 0; i < keys; i++ {
				t += 10
				in.AppendValues(t, names[i], Number(float64((e*13+i*7)%100)))
			}
		}
		for range 3 { // warm up: every key known, buffers grown
			fill()
			out.Reset(outS)
			op.Process(ep, ins, out)
			ops = ops[:0]
			var arena []byte
			op.(Stateful).SaveState(&StateWriter{ns: "rule", ops: &ops, arena: &arena})
		}
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for b.Loop() {
			b.StopTimer()
			fill()
			out.Reset(outS)
			b.StartTimer()
			if err := op.Process(ep, ins, out); err != nil {
				b.Fatal(err)
			}
			n += keys
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("epoch", func(b *testing.B) {
		p, x := newTrigExec(b, Threshold(ThresholdConfig{Rule: "hot", Keys: []string{"sensor"}, Above: new(80.0), Clear: new(75.0)}), NewMemStore())
		t, e := int64(0), 0
		run := func() {
			in := x.Input("in")
			e++
			for i := 0; i < keys; i++ {
				t += 10
				in.AppendValues(t, names[i], Number(float64((e*13+i*7)%100)))
			}
			if _, err := x.RunEpochAt(context.Background(), t); err != nil {
				b.Fatal(err)
			}
		}
		run()
		_ = p
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for b.Loop() {
			run()
			n += keys
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
}

// TestTriggersDoNotAllocateInSteadyState protects the hot path: once every key
// is known and the buffers have grown, Process allocates nothing.
func TestTriggersDoNotAllocateInSteadyState(t *testing.T) {
	names := make([]Value, 100)
	for i := range names {
		names[i] = String(fmt.Sprintf("s%d", i))
	}
	for _, tc := range restartCases {
		t.Run(tc.name, func(t *testing.T) {
			op := tc.op()
			outS, err := op.Open([]*Schema{trigSchema})
			if err != nil {
				t.Fatal(err)
			}
			in, out := NewBatch(trigSchema), NewBatch(outS)
			ins := []*Batch{in}
			ep := &Epoch{Stats: &NodeStats{}, DeadLetter: func(*Record, *Schema, error) {}}
			ts, e := int64(0), 0
			epoch := func() {
				in.Reset(trigSchema)
				out.Reset(outS)
				e++
				for i := range names {
					ts += 100
					in.AppendValues(ts, names[i], Number(float64((e*37+i*11)%100)))
				}
				if err := op.Process(ep, ins, out); err != nil {
					t.Fatal(err)
				}
			}
			for range 50 {
				epoch()
			}
			if a := testing.AllocsPerRun(20, epoch); a != 0 {
				t.Fatalf("got %v allocations per epoch of %d records; want 0", a, len(names))
			}
		})
	}
}
