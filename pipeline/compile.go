package pipeline

import (
	"errors"
	"fmt"
	"github.com/edgedio/edged/internal/topic"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

// Compiled is a spec turned into an engine plan, with what is needed to feed
// its sources.
type Compiled struct {
	Spec *Spec
	Plan *engine.Plan
	// Decoders holds the decoder configuration of each source, by name:
	// format, CSV columns and topic templates included, ready for decode.New.
	Decoders map[string]decode.Config
	// Interval is the epoch interval.
	Interval time.Duration
}

// idleTimeout returns the idle timeout of a source: its own, the
// pipeline's, or DefaultIdleTimeout.
func (s *Spec) idleTimeout(src *Source) time.Duration {
	switch {
	case src.IdleTimeout != nil:
		return *src.IdleTimeout
	case s.Spec.IdleTimeout != nil:
		return *s.Spec.IdleTimeout
	}
	return DefaultIdleTimeout
}

// Compile builds the plan of a validated spec with the engine's typed API.
// Errors from operators (unknown fields, bad expressions, type mismatches) are
// located at the step's line, and all of them are reported at once.
func Compile(s *Spec) (*Compiled, error) {
	c := &Compiled{Spec: s, Decoders: map[string]decode.Config{}, Interval: s.Spec.Interval}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	b := engine.NewBuilder(s.Metadata.Name)
	streams := map[string]engine.Stream{}
	var errs []error
	var last engine.Stream
	for i, src := range s.Spec.Sources {
		p := fmt.Sprintf("spec.sources[%d]", i)
		decl := src.fields()
		fields := make([]engine.Field, len(decl))
		var ints []string // fields declared int/integer: numbers that must be integral
		for j, f := range decl {
			k, _ := engine.ParseKind(f.Type)
			fields[j] = engine.Field{Name: f.Name, Kind: k}
			if t := strings.ToLower(f.Type); t == "int" || t == "integer" {
				ints = append(ints, f.Name)
			}
		}
		schema, err := engine.NewSchema(fields...)
		if err == nil {
			schema, err = schema.WithIntegers(ints...)
		}
		if err != nil {
			errs = append(errs, s.errAt(p+".fields", "%v", err))
			continue
		}
		cfg := decode.DefaultConfig(schema)
		cfg.TimeField, cfg.KeyFields, cfg.Strict = src.EventTime, src.Key, src.Strict
		if src.TimeFormat != "" {
			cfg.TimeFormat = src.TimeFormat
		}
		cfg.Format = decode.FormatJSON
		if src.Format != "" {
			cfg.Format = src.Format
		}
		if cfg.Format == decode.FormatCSV && !src.CSV.HasHeader() {
			cfg.CSVColumns = src.CSV.Columns
			if len(cfg.CSVColumns) == 0 {
				for _, f := range src.Fields {
					cfg.CSVColumns = append(cfg.CSVColumns, f.Name)
				}
			}
		}
		if src.MQTT != nil {
			for j, t := range src.MQTT.Topics {
				tt, err := topic.ParseTemplate(t)
				if err != nil {
					errs = append(errs, s.errAt(fmt.Sprintf("%s.mqtt.topics[%d]", p, j), "%v", err))
					continue
				}
				cfg.Topics = append(cfg.Topics, tt)
			}
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, s.errAt(p, "%v", err))
			continue
		}
		c.Decoders[src.Name] = cfg
		var opts []engine.SourceOption
		if src.Watermark != nil {
			opts = append(opts, engine.WithWatermark(*src.Watermark), engine.WithIdleTimeout(s.idleTimeout(&src)))
		}
		st := b.Source(src.Name, schema, opts...)
		streams[src.Name] = st
		if i == 0 {
			last = st
		}
	}
	stepLine := map[string]string{} // step name -> key path, to locate plan errors
	// failed holds steps that could not be built; steps and sinks reading them
	// are skipped so one mistake is reported once, not once per consumer.
	failed := map[string]bool{}
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		p := fmt.Sprintf("spec.steps[%d]", i)
		stepLine[st.Name] = p
		var ins []engine.Stream
		names := st.inputs()
		if len(names) == 0 && last != (engine.Stream{}) {
			ins = []engine.Stream{last}
		}
		skip := len(names) == 0 && last == (engine.Stream{})
		for _, n := range names {
			if in, ok := streams[n]; ok {
				ins = append(ins, in)
			} else {
				skip = true
			}
		}
		op, err := s.operator(p, st)
		if err != nil {
			errs = append(errs, err)
		}
		if err != nil || skip {
			failed[st.Name] = true
			last = engine.Stream{}
			continue
		}
		out := b.Apply(st.Name, op, ins...)
		streams[st.Name] = out
		last = out
	}
	for i, sk := range s.Spec.Sinks {
		in := last
		if sk.Input != "" {
			in = streams[sk.Input]
		}
		if in == (engine.Stream{}) {
			continue // its input failed and was reported
		}
		stepLine[sk.Name] = fmt.Sprintf("spec.sinks[%d]", i)
		b.Sink(sk.Name, in)
	}
	plan, err := b.Build()
	if err != nil {
		errs = append(errs, s.locate(err, stepLine, len(errs) > 0))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.Plan = plan
	return c, nil
}

// locate rewrites the engine's PlanErrors as errors at the step's line.
// With quiet set (earlier errors were reported), plan-wide errors such as "no
// sink", which follow from skipped steps, are left out.
func (s *Spec) locate(err error, stepPath map[string]string, quiet bool) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var pe *engine.PlanError
		if errors.As(e, &pe) {
			if pe.Step == "" {
				if !quiet {
					out = append(out, &Error{File: s.file, Msg: pe.Err.Error(), Err: e})
				}
				continue
			}
			p := stepPath[pe.Step]
			out = append(out, &Error{File: s.file, Line: s.line(p), Path: p,
				Msg: fmt.Sprintf("step %q: %v", pe.Step, pe.Err), Err: e})
			continue
		}
		out = append(out, &Error{File: s.file, Msg: e.Error(), Err: e})
	}
	return errors.Join(out...)
}

// operator builds the engine operator of one step.
func (s *Spec) operator(p string, st *Step) (engine.Operator, error) {
	rule := func(r string) string {
		if r == "" {
			return st.Name
		}
		return r
	}
	switch op := st.ops()[0]; op {
	case "union":
		return engine.Union(), nil
	case "filter":
		return engine.FilterExpr(st.Filter), nil
	case "project":
		return engine.Project(namedExprs(st.Project)), nil
	case "extend":
		return engine.Extend(namedExprs(st.Extend)), nil
	case "flatMap":
		rows := make([][]engine.NamedExpr, len(st.FlatMap))
		for i, r := range st.FlatMap {
			rows[i] = namedExprs(r)
		}
		return engine.FlatMapExprs(rows), nil
	case "keyBy":
		return engine.KeyBy(st.KeyBy...), nil
	case "require":
		return engine.Require(st.Require...), nil
	case "enrich":
		return s.enrich(p, st.Enrich)
	case "window":
		return s.window(p+".window", st.Window)
	case "aggregate":
		a := st.Aggregate
		aggs, err := s.aggs(p+".aggregate.aggregates", a.Aggregates)
		if err != nil {
			return nil, err
		}
		mode, err := engine.ParseOutputMode(defaultStr(a.Output, "update"))
		if err != nil {
			return nil, s.errAt(p+".aggregate.output", "%v", err)
		}
		return engine.Aggregate(engine.AggregateConfig{Keys: a.Keys, Aggs: aggs, Mode: mode}), nil
	case "dedup":
		d := st.Dedup
		cfg := engine.DedupConfig{Keys: d.Keys, WithinWatermark: d.WithinWatermark}
		if src := s.eventTimeSource(); src != nil {
			cfg.EventTimeField = src.EventTime
			if src.Watermark != nil {
				cfg.Delay = src.Watermark.Milliseconds()
			}
		} else if d.WithinWatermark {
			return nil, s.errAt(p+".dedup.withinWatermark", "needs a source with eventTime and a watermark")
		}
		return engine.DropDuplicates(cfg), nil
	case "reduceByKey":
		r := st.Reduce
		fn, ok := engine.ReduceByName(defaultStr(r.Func, "sum"))
		if !ok {
			return nil, s.errAt(p+".reduceByKey.func", "unknown reduce function %q (want sum, min or max)", r.Func)
		}
		return engine.ReduceByKey(r.Key, r.Value, fn), nil
	case "countByValue":
		return engine.CountByValue(st.CountByValue.Field), nil
	case "dstreamWindow":
		return s.dstreamWindow(p+".dstreamWindow", st.DStream)
	case "updateStateByKey":
		u := st.UpdateState
		cfg := engine.UpdateStateConfig{Key: u.Key, Value: u.Value}
		switch {
		case u.ExpireAfter > 0:
			if u.Func != "" && u.Func != "sum" {
				return nil, s.errAt(p+".updateStateByKey.expireAfter", "expiry works with func sum only")
			}
			cfg.Update, cfg.Output = engine.ExpireAfterIdle(u.ExpireAfter)
		default:
			fn, ok := engine.UpdateByName(defaultStr(u.Func, "sum"))
			if !ok {
				return nil, s.errAt(p+".updateStateByKey.func", "unknown update function %q (want sum or count)", u.Func)
			}
			cfg.Update = fn
		}
		return engine.UpdateStateByKey(cfg), nil
	case "threshold":
		t := st.Threshold
		cfg := engine.ThresholdConfig{Rule: rule(t.Rule), Keys: t.Keys, Value: t.Value,
			Above: t.Above, Below: t.Below, Clear: t.Clear, For: t.For}
		if err := cfg.Validate(); err != nil {
			return nil, s.errAt(p+".threshold", "%v", err)
		}
		return engine.Threshold(cfg), nil
	case "rateOfChange":
		r := st.RateOfChange
		dir, ok := engine.ParseRateDirection(r.Direction)
		if !ok {
			return nil, s.errAt(p+".rateOfChange.direction", "unknown direction %q (want rising, falling or both)", r.Direction)
		}
		cfg := engine.RateOfChangeConfig{Rule: rule(r.Rule), Keys: r.Keys, Value: r.Value,
			MaxRate: r.MaxRate, Per: r.Per, Direction: dir, Window: r.Window}
		if err := cfg.Validate(); err != nil {
			return nil, s.errAt(p+".rateOfChange", "%v", err)
		}
		return engine.RateOfChange(cfg), nil
	case "nOfM":
		n := st.NOfM
		cfg := engine.NOfMConfig{Rule: rule(n.Rule), Keys: n.Keys, Value: n.Value, N: n.N, M: n.M,
			Above: n.Above, Below: n.Below}
		if n.When == "" {
			if err := cfg.Validate(); err != nil {
				return nil, s.errAt(p+".nOfM", "%v", err)
			}
			return engine.NOfM(cfg), nil
		}
		// The condition compiles against the step's input schema, known at Open.
		return engine.Lazy(func(in []*engine.Schema) (engine.Operator, error) {
			if len(in) != 1 {
				return nil, fmt.Errorf("nOfM needs one input")
			}
			e, err := engine.CompileExpr(n.When, in[0])
			if err != nil {
				return nil, fmt.Errorf("when: %w", err)
			}
			if e.Kind() != engine.KindBool {
				return nil, fmt.Errorf("when: expression %q is a %s, want bool", n.When, e.Kind())
			}
			cfg.Match = e.EvalBool
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			return engine.NOfM(cfg), nil
		}), nil
	case "history":
		h := st.History
		return engine.WriteHistory(engine.HistoryWriteConfig{Table: h.Table, Keys: h.Keys, Time: h.Time,
			Keep: h.Keep.D(), MaxRows: h.MaxRows, Writer: s.Metadata.Name + "/" + st.Name}), nil
	case "historyJoin":
		j := st.HistoryJoin
		fields, err := s.tableFields(p+".historyJoin.fields", j.Fields)
		if err != nil {
			return nil, err
		}
		return engine.JoinHistory(engine.HistoryJoinConfig{Lookup: j.lookup(), Fields: fields, Prefix: j.Prefix, Left: j.Left}), nil
	case "anomaly":
		a := st.Anomaly
		cfg := engine.AnomalyConfig{Rule: rule(a.Rule), Keys: a.Keys, Value: a.Value, Alpha: a.Alpha, K: a.K,
			Warmup: a.Warmup, MinStd: a.MinStd}
		if b := a.Baseline; b != nil {
			cfg.Baseline = &engine.AnomalyBaseline{Lookup: b.lookup(), Field: b.Field}
		}
		if err := cfg.Validate(); err != nil {
			return nil, s.errAt(p+".anomaly", "%v", err)
		}
		return engine.Anomaly(cfg), nil
	default:
		return nil, s.errAt(p, "operator %q is not available in this build", op)
	}
}

func defaultStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Spec) dstreamWindow(p string, d *DStreamWindow) (engine.Operator, error) {
	slide := d.Slide
	if slide == 0 {
		slide = s.Spec.Interval
		if slide == 0 {
			slide = time.Second
		}
	}
	reduce := func(key, name string) (engine.ReduceFunc, error) {
		if name == "" {
			return nil, nil
		}
		fn, ok := engine.ReduceByName(name)
		if !ok {
			return nil, s.errAt(p+"."+key, "unknown reduce function %q (want sum, subtract, min or max)", name)
		}
		return fn, nil
	}
	fn, err := reduce("func", defaultStr(d.Func, "sum"))
	if err != nil {
		return nil, err
	}
	inv, err := reduce("inverse", d.Inverse)
	if err != nil {
		return nil, err
	}
	switch d.Op {
	case "window":
		return engine.Window(d.Size, slide), nil
	case "countByWindow":
		return engine.CountByWindow(d.Size, slide), nil
	case "countByValueAndWindow":
		return engine.CountByValueAndWindow(d.Value, d.Size, slide), nil
	case "groupByKeyAndWindow":
		return engine.GroupByKeyAndWindow(d.Key, d.Value, d.Size, slide), nil
	case "reduceByWindow":
		return engine.ReduceByWindow(d.Value, fn, inv, d.Size, slide), nil
	case "reduceByKeyAndWindow":
		if inv == nil && d.Filter == "" {
			return engine.ReduceByKeyAndWindow(d.Key, d.Value, fn, d.Size, slide), nil
		}
		if inv == nil {
			return nil, s.errAt(p+".filter", "a filter needs an inverse function")
		}
		if d.Filter == "" {
			return engine.ReduceByKeyAndWindowInv(d.Key, d.Value, fn, inv, nil, d.Size, slide), nil
		}
		// The filter sees two fields, key and value, typed like the input's.
		return engine.Lazy(func(in []*engine.Schema) (engine.Operator, error) {
			if len(in) != 1 {
				return nil, fmt.Errorf("reduceByKeyAndWindow needs one input")
			}
			ki, err := in[0].Lookup(d.Key)
			if err != nil {
				return nil, fmt.Errorf("key: %w", err)
			}
			vi, err := in[0].Lookup(d.Value)
			if err != nil {
				return nil, fmt.Errorf("value: %w", err)
			}
			kv, err := engine.NewSchema(engine.Field{Name: "key", Kind: in[0].Field(ki).Kind},
				engine.Field{Name: "value", Kind: in[0].Field(vi).Kind})
			if err != nil {
				return nil, err
			}
			e, err := engine.CompileExpr(d.Filter, kv)
			if err != nil {
				return nil, fmt.Errorf("filter: %w", err)
			}
			rec := engine.Record{Vals: make([]engine.Value, 2)}
			filter := func(k, v engine.Value) bool {
				rec.Vals[0], rec.Vals[1] = k, v
				return e.EvalBool(&rec)
			}
			return engine.ReduceByKeyAndWindowInv(d.Key, d.Value, fn, inv, filter, d.Size, slide), nil
		}), nil
	}
	return nil, s.errAt(p+".op", "unknown op %q", d.Op)
}

// enrich builds the static-table join of an enrich step.
func (s *Spec) enrich(p string, e *EnrichSpec) (engine.Operator, error) {
	var table *engine.Batch
	if e.File != "" {
		if len(e.Fields) == 0 {
			return nil, s.errAt(p+".enrich.fields", "the table fields are required")
		}
	}
	fields := make([]engine.Field, len(e.Fields))
	for i, f := range e.Fields {
		k, ok := engine.ParseKind(f.Type)
		if !ok || k == engine.KindList {
			return nil, s.errAt(fmt.Sprintf("%s.enrich.fields[%d].type", p, i), "unknown type %q", f.Type)
		}
		fields[i] = engine.Field{Name: f.Name, Kind: k}
	}
	ts, err := engine.NewSchema(fields...)
	if err != nil {
		return nil, s.errAt(p+".enrich.fields", "%v", err)
	}
	table = engine.NewBatch(ts)
	if e.File != "" {
		path := e.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(s.file), path)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, s.errAt(p+".enrich.file", "%v", err)
		}
		defer f.Close()
		var bad []error
		err = decode.DecodeCSV(f, decode.DefaultConfig(ts), table, func(line int, _ []byte, err error) {
			bad = append(bad, fmt.Errorf("%s:%d: %w", path, line, err))
		})
		if err != nil || len(bad) > 0 {
			return nil, s.errAt(p+".enrich.file", "%v", errors.Join(append(bad, err)...))
		}
	}
	for i, row := range e.Rows {
		r := table.Append()
		for j, v := range row {
			val, err := yamlValue(v, fields[j].Kind)
			if err != nil {
				return nil, s.errAt(fmt.Sprintf("%s.enrich.rows[%d][%d]", p, i, j), "field %q: %v", fields[j].Name, err)
			}
			r.Vals[j] = val
		}
	}
	rows := make([][]engine.Value, table.Len())
	for i := range table.Recs {
		rows[i] = table.Recs[i].Vals
	}
	key := e.TableKey
	if key == "" {
		key = fields[0].Name
	}
	if e.Left {
		return engine.StaticLeftJoin(e.On, ts, rows, key), nil
	}
	return engine.StaticJoin(e.On, ts, rows, key), nil
}

// lookup converts a lookup spec into the engine's.
func (l *LookupSpec) lookup() engine.HistoryLookup {
	return engine.HistoryLookup{Table: l.Table, Keys: l.Keys, Time: l.Time, Align: l.Align.D(),
		Offset: l.Offset.D(), Periods: l.Periods}
}

// tableFields converts declared table columns.
func (s *Spec) tableFields(p string, fs []FieldSpec) ([]engine.Field, error) {
	out := make([]engine.Field, len(fs))
	for i, f := range fs {
		k, ok := engine.ParseKind(f.Type)
		if !ok || k == engine.KindList {
			return nil, s.errAt(fmt.Sprintf("%s[%d].type", p, i), "unknown type %q (want number, string, bool or time)", f.Type)
		}
		out[i] = engine.Field{Name: f.Name, Kind: k}
	}
	return out, nil
}

// yamlValue converts a decoded YAML scalar to a value of kind k.
func yamlValue(v any, k engine.Kind) (engine.Value, error) {
	if v == nil {
		return engine.Null, nil
	}
	switch k {
	case engine.KindNumber, engine.KindTime:
		var f float64
		switch n := v.(type) {
		case int:
			f = float64(n)
		case float64:
			f = n
		default:
			return engine.Null, fmt.Errorf("want a number, got %v", v)
		}
		if k == engine.KindTime {
			return engine.Time(int64(f)), nil
		}
		return engine.Number(f), nil
	case engine.KindBool:
		b, ok := v.(bool)
		if !ok {
			return engine.Null, fmt.Errorf("want true or false, got %v", v)
		}
		return engine.Bool(b), nil
	default:
		return engine.String(fmt.Sprint(v)), nil
	}
}

// namedExprs converts the spec's single-key maps into ordered named expressions.
func namedExprs(cols []NamedExpr) []engine.NamedExpr {
	out := make([]engine.NamedExpr, 0, len(cols))
	for _, c := range cols {
		for name, e := range c {
			out = append(out, engine.NamedExpr{Name: name, Expr: e})
		}
	}
	return out
}

// eventTimeSource returns the first source with an event-time field.
func (s *Spec) eventTimeSource() *Source {
	for i := range s.Spec.Sources {
		if s.Spec.Sources[i].EventTime != "" {
			return &s.Spec.Sources[i]
		}
	}
	return nil
}

// aggs parses `name: func(field)` aggregate columns.
func (s *Spec) aggs(p string, cols []NamedExpr) ([]engine.AggSpec, error) {
	var out []engine.AggSpec
	var errs []error
	for i, c := range cols {
		for name, src := range c {
			a, err := engine.ParseAgg(src)
			if err != nil {
				errs = append(errs, s.errAt(fmt.Sprintf("%s[%d]", p, i), "%s: %v", name, err))
				continue
			}
			a.As = name
			out = append(out, a)
		}
	}
	return out, errors.Join(errs...)
}

func (s *Spec) window(p string, w *WindowSpec) (engine.Operator, error) {
	aggs, err := s.aggs(p+".aggregates", w.Aggregates)
	if err != nil {
		return nil, err
	}
	mode, err := engine.ParseOutputMode(w.Output)
	if err != nil {
		return nil, s.errAt(p+".output", "%v", err)
	}
	cfg := engine.WindowConfig{Keys: w.Keys, Aggs: aggs, Mode: mode, AllowedLateness: w.Lateness.Milliseconds()}
	switch w.Type {
	case "tumbling":
		cfg.Size, cfg.Slide = w.Size.Milliseconds(), w.Size.Milliseconds()
	case "sliding":
		cfg.Size, cfg.Slide = w.Size.Milliseconds(), w.Slide.Milliseconds()
		if w.Slide > w.Size {
			return nil, s.errAt(p+".slide", "must not exceed size (%s)", w.Size)
		}
	case "session":
		cfg.Gap = w.Gap.Milliseconds()
	case "count":
		cfg.Count = int64(w.Count)
	}
	if s.eventTimeSource() == nil && w.Type != "count" {
		return nil, s.errAt(p+".type", "a %s window needs a source with eventTime", w.Type)
	}
	return engine.WindowAggregate(cfg), nil
}
