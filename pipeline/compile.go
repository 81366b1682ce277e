package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

// Compiled is a spec turned into an engine plan, with what is needed to feed
// its sources.
type Compiled struct {
	Spec *Spec
	Plan *engine.Plan
	// Decoders holds the decoder configuration of each source, by name.
	Decoders map[string]decode.Config
	// Interval is the epoch interval.
	Interval time.Duration
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
		fields := make([]engine.Field, len(src.Fields))
		for j, f := range src.Fields {
			k, _ := engine.ParseKind(f.Type)
			fields[j] = engine.Field{Name: f.Name, Kind: k}
		}
		schema, err := engine.NewSchema(fields...)
		if err != nil {
			errs = append(errs, s.errAt(p+".fields", "%v", err))
			continue
		}
		cfg := decode.DefaultConfig(schema)
		cfg.TimeField, cfg.KeyFields, cfg.Strict = src.EventTime, src.Key, src.Strict
		if src.TimeFormat != "" {
			cfg.TimeFormat = src.TimeFormat
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, s.errAt(p, "%v", err))
			continue
		}
		c.Decoders[src.Name] = cfg
		var opts []engine.SourceOption
		if src.Watermark != nil {
			opts = append(opts, engine.WithWatermark(*src.Watermark))
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
		errs = append(errs, s.locate(err, stepLine))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.Plan = plan
	return c, nil
}

// locate rewrites the engine's PlanErrors as errors at the step's line.
func (s *Spec) locate(err error, stepPath map[string]string) error {
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
		if n.When != "" {
			m, err := s.predicate(p+".nOfM.when", n.When)
			if err != nil {
				return nil, err
			}
			cfg.Match = m
		}
		if err := cfg.Validate(); err != nil {
			return nil, s.errAt(p+".nOfM", "%v", err)
		}
		return engine.NOfM(cfg), nil
	default:
		return nil, s.errAt(p, "operator %q is not available in this build", op)
	}
}

// predicate is filled in by the expression compiler.
func (s *Spec) predicate(path, src string) (func(*engine.Record) bool, error) {
	return nil, s.errAt(path, "expressions are not available in this build")
}
