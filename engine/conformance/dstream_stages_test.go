package conformance

import (
	"fmt"
	"strconv"
	"time"

	"github.com/edgedio/edged/engine"
)

// chain translates dstream stages into engine steps, tracking the schema.
type chain struct {
	b         *engine.Builder
	n         int
	stateStep string
}

func sec(s int64) time.Duration { return time.Duration(s) * time.Second }

func field(name string, k engine.Kind) engine.Field { return engine.Field{Name: name, Kind: k} }

func (c *chain) apply(cur engine.Stream, sch *engine.Schema, op engine.Operator) (engine.Stream, *engine.Schema, error) {
	c.n++
	name := "s" + strconv.Itoa(c.n)
	out, err := op.Open([]*engine.Schema{sch})
	if err != nil {
		return cur, nil, fmt.Errorf("stage %d: %w", c.n, err)
	}
	return cur.Then(name, op), out, nil
}

func (c *chain) stages(cur engine.Stream, sch *engine.Schema, st []Stage) (engine.Stream, *engine.Schema, error) {
	for _, s := range st {
		if sch == nil {
			return cur, nil, fmt.Errorf("stage %q: input schema unknown", s.Op)
		}
		op, err := c.stage(s, sch)
		if err != nil {
			return cur, nil, fmt.Errorf("stage %q: %w", s.Op, err)
		}
		if cur, sch, err = c.apply(cur, sch, op); err != nil {
			return cur, nil, err
		}
		if s.Op == "mapWithState" || s.Op == "updateStateByKey" {
			c.stateStep = "s" + strconv.Itoa(c.n)
		}
	}
	return cur, sch, nil
}

func isPair(s *engine.Schema) bool {
	_, k := s.Index("key")
	_, v := s.Index("value")
	return s.Len() == 2 && k && v
}

func reduceFn(name string) (engine.ReduceFunc, error) {
	f, ok := engine.ReduceByName(name)
	if !ok {
		return nil, fmt.Errorf("unknown reduce function %q", name)
	}
	return f, nil
}

func (c *chain) stage(s Stage, sch *engine.Schema) (engine.Operator, error) {
	w, sl := sec(s.WindowS), sec(s.SlideS)
	switch s.Op {
	case "map":
		return mapFn(s, sch, false)
	case "mapValues":
		if !isPair(sch) {
			return nil, fmt.Errorf("mapValues needs a key/value stream, have %s", sch)
		}
		return mapFn(s, sch, true)
	case "flatMap":
		return flatMapFn(s, sch, false)
	case "flatMapValues":
		if !isPair(sch) {
			return nil, fmt.Errorf("flatMapValues needs a key/value stream, have %s", sch)
		}
		return flatMapFn(s, sch, true)
	case "filter":
		return filterFn(s.Fn)
	case "reduceByKey":
		f, err := reduceFn(s.Fn)
		if err != nil {
			return nil, err
		}
		return engine.ReduceByKey("key", "value", f), nil
	case "groupByKey":
		return engine.GroupByKey("key", "value"), nil
	case "reduce":
		f, err := reduceFn(s.Fn)
		if err != nil {
			return nil, err
		}
		return engine.Reduce(lastField(sch), f), nil
	case "count":
		return engine.Count(), nil
	case "countByValue":
		return engine.CountByValue(lastField(sch)), nil
	case "join_static":
		rows := make([][]engine.Value, len(s.Static))
		kk, vk := engine.KindNumber, engine.KindNumber
		for i, r := range s.Static {
			if len(r) != 2 {
				return nil, fmt.Errorf("static row %d: want [k, v]", i)
			}
			rows[i] = []engine.Value{toValue(r[0]), toValue(r[1])}
			kk, vk = jsonKind(r[0]), jsonKind(r[1])
		}
		ts := engine.MustSchema(field("key", kk), field("value", vk))
		return engine.StaticJoin(lastField(sch), ts, rows, "key"), nil
	case "window":
		return engine.Window(w, sl), nil
	case "reduceByKeyAndWindow":
		f, err := reduceFn(s.Fn)
		if err != nil {
			return nil, err
		}
		if s.InverseFn == "" {
			return engine.ReduceByKeyAndWindow("key", "value", f, w, sl), nil
		}
		inv, err := reduceFn(s.InverseFn)
		if err != nil {
			return nil, err
		}
		var filter func(k, v engine.Value) bool
		switch s.FilterFn {
		case "":
		case "value_nonzero":
			filter = func(_, v engine.Value) bool { return !(v.Kind == engine.KindNumber && v.Num == 0) }
		default:
			return nil, fmt.Errorf("unknown filter function %q", s.FilterFn)
		}
		return engine.ReduceByKeyAndWindowInv("key", "value", f, inv, filter, w, sl), nil
	case "reduceByWindow":
		f, err := reduceFn(s.Fn)
		if err != nil {
			return nil, err
		}
		var inv engine.ReduceFunc
		if s.InverseFn != "" {
			if inv, err = reduceFn(s.InverseFn); err != nil {
				return nil, err
			}
		}
		return engine.ReduceByWindow(lastField(sch), f, inv, w, sl), nil
	case "groupByKeyAndWindow":
		return engine.GroupByKeyAndWindow("key", "value", w, sl), nil
	case "countByWindow":
		return engine.CountByWindow(w, sl), nil
	case "countByValueAndWindow":
		return engine.CountByValueAndWindow(lastField(sch), w, sl), nil
	case "updateStateByKey":
		return updateStateOp(s, sch)
	case "mapWithState":
		return mapWithStateOp(s, sch)
	}
	return nil, fmt.Errorf("unknown op %q", s.Op)
}

// lastField is the element field: "value" for scalar and pair streams.
func lastField(s *engine.Schema) string { return s.Field(s.Len() - 1).Name }

// scalarFn is an element function x -> y with its output kind.
func scalarFn(name string, arg *float64, in engine.Kind) (func(engine.Value) engine.Value, engine.Kind, error) {
	switch name {
	case "to_string":
		return func(v engine.Value) engine.Value { return engine.String(v.String()) }, engine.KindString, nil
	case "add":
		if arg == nil {
			return nil, 0, fmt.Errorf("add needs arg")
		}
		a := *arg
		return func(v engine.Value) engine.Value { return engine.Number(v.Num + a) }, engine.KindNumber, nil
	}
	return nil, 0, fmt.Errorf("unknown map function %q", name)
}

func mapFn(s Stage, sch *engine.Schema, values bool) (engine.Operator, error) {
	vi := sch.Len() - 1
	in := sch.Field(vi).Kind
	if values {
		f, k, err := scalarFn(s.Fn, s.Arg, in)
		if err != nil {
			return nil, err
		}
		out := engine.MustSchema(sch.Field(0), field("value", k))
		return engine.Map(out, func(src, dst *engine.Record) {
			dst.Vals[0], dst.Vals[1] = src.Vals[0], f(src.Vals[1])
		}), nil
	}
	pair := func(k engine.Kind, f func(engine.Value) engine.Value) engine.Operator {
		out := engine.MustSchema(field("key", in), field("value", k))
		return engine.Map(out, func(src, dst *engine.Record) {
			dst.Vals[0], dst.Vals[1] = src.Vals[vi], f(src.Vals[vi])
		})
	}
	switch s.Fn {
	case "pair_with_1":
		return pair(engine.KindNumber, func(engine.Value) engine.Value { return engine.Number(1) }), nil
	case "pair_with_x":
		return pair(engine.KindString, func(engine.Value) engine.Value { return engine.String("x") }), nil
	case "x_and_2x":
		return pair(engine.KindNumber, func(v engine.Value) engine.Value { return engine.Number(2 * v.Num) }), nil
	}
	f, k, err := scalarFn(s.Fn, s.Arg, in)
	if err != nil {
		return nil, err
	}
	out := engine.MustSchema(field("value", k))
	return engine.Map(out, func(src, dst *engine.Record) { dst.Vals[0] = f(src.Vals[vi]) }), nil
}

func flatMapFn(s Stage, sch *engine.Schema, values bool) (engine.Operator, error) {
	var f func(engine.Value) (engine.Value, engine.Value)
	switch s.Fn {
	case "x_and_2x":
		f = func(v engine.Value) (engine.Value, engine.Value) { return v, engine.Number(2 * v.Num) }
	case "v_and_v_plus_10":
		f = func(v engine.Value) (engine.Value, engine.Value) { return v, engine.Number(v.Num + 10) }
	default:
		return nil, fmt.Errorf("unknown flatMap function %q", s.Fn)
	}
	if values {
		out := engine.MustSchema(sch.Field(0), field("value", engine.KindNumber))
		return engine.FlatMap(out, func(src *engine.Record, b *engine.Batch) {
			a, c := f(src.Vals[1])
			b.AppendValues(src.Time, src.Vals[0], a)
			b.AppendValues(src.Time, src.Vals[0], c)
		}), nil
	}
	vi := sch.Len() - 1
	out := engine.MustSchema(field("value", engine.KindNumber))
	return engine.FlatMap(out, func(src *engine.Record, b *engine.Batch) {
		a, c := f(src.Vals[vi])
		b.AppendValues(src.Time, a)
		b.AppendValues(src.Time, c)
	}), nil
}

func filterFn(name string) (engine.Operator, error) {
	switch name {
	case "is_even":
		return engine.Filter(func(r *engine.Record) bool {
			v := r.Vals[len(r.Vals)-1]
			return v.Kind == engine.KindNumber && int64(v.Num)%2 == 0
		}), nil
	case "value_nonzero":
		return engine.Filter(func(r *engine.Record) bool {
			v := r.Vals[len(r.Vals)-1]
			return !(v.Kind == engine.KindNumber && v.Num == 0)
		}), nil
	}
	return nil, fmt.Errorf("unknown filter function %q", name)
}

func initialState(s Stage) ([][2]engine.Value, error) {
	var out [][2]engine.Value
	for i, kv := range s.InitialState {
		if len(kv) != 2 {
			return nil, fmt.Errorf("initial_state %d: want [key, state]", i)
		}
		out = append(out, [2]engine.Value{toValue(kv[0]), toValue(kv[1])})
	}
	return out, nil
}

func updateStateOp(s Stage, sch *engine.Schema) (engine.Operator, error) {
	if !isPair(sch) {
		return nil, fmt.Errorf("updateStateByKey needs a key/value stream, have %s", sch)
	}
	init, err := initialState(s)
	if err != nil {
		return nil, err
	}
	cfg := engine.UpdateStateConfig{Key: "key", Value: "value", Initial: init}
	switch s.Fn {
	case "accumulate_batch_time_ms":
		cfg.Update = func(_ engine.Value, vals []engine.Value, st engine.Value, has bool, t int64) (engine.Value, bool) {
			s := 0.0
			if has {
				s = st.Num
			}
			if len(vals) > 0 {
				s += float64(t)
			}
			return engine.Number(s), true
		}
	case "count_expire_after_2_idle":
		cfg.Update, cfg.Output = engine.ExpireAfterIdle(2)
	default:
		f, ok := engine.UpdateByName(s.Fn)
		if !ok {
			return nil, fmt.Errorf("unknown updateStateByKey function %q", s.Fn)
		}
		cfg.Update = f
	}
	return engine.UpdateStateByKey(cfg), nil
}

func mapWithStateOp(s Stage, sch *engine.Schema) (engine.Operator, error) {
	if !isPair(sch) {
		return nil, fmt.Errorf("mapWithState needs a key/value stream, have %s", sch)
	}
	init, err := initialState(s)
	if err != nil {
		return nil, err
	}
	kk := sch.Field(0).Kind
	cfg := engine.MapWithStateConfig{Key: "key", Value: "value", Initial: init, Timeout: sec(s.TimeoutS)}
	runningSum := func(st *engine.KeyState, v engine.Value) engine.Value {
		old, _ := st.Get()
		n := engine.Number(v.Num + old.Num)
		st.Set(n)
		return n
	}
	switch s.Fn {
	case "running_sum_emit_sum":
		cfg.Output = engine.MustSchema(field("value", engine.KindNumber))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			out[0] = runningSum(st, v)
			return true
		}
	case "running_sum_emit_key_twice":
		cfg.Output = engine.MustSchema(field("value", engine.KindString))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			runningSum(st, v)
			out[0] = engine.String(k.String() + k.String())
			return true
		}
	case "running_sum_emit_pair":
		cfg.Output = engine.MustSchema(field("key", kk), field("value", engine.KindNumber))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			out[0], out[1] = k, runningSum(st, v)
			return true
		}
	case "running_sum_emit_nothing":
		cfg.Output = engine.MustSchema(field("value", engine.KindNumber))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			runningSum(st, v)
			return false
		}
	case "toggle_remove_emit_key":
		cfg.Output = engine.MustSchema(field("value", kk))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			if _, ok := st.Get(); ok {
				st.Remove()
				out[0] = k
				return true
			}
			st.Set(v)
			return false
		}
	case "set_1_emit_key_on_timeout":
		cfg.Output = engine.MustSchema(field("value", kk))
		cfg.Fn = func(st *engine.KeyState, k, v engine.Value, has bool, out []engine.Value) bool {
			if st.IsTimingOut() {
				out[0] = k
				return true
			}
			st.Set(engine.Number(1))
			return false
		}
	default:
		return nil, fmt.Errorf("unknown mapWithState function %q", s.Fn)
	}
	return engine.MapWithState(cfg), nil
}
