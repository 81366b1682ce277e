package engine

import (
	"errors"
	"fmt"
	"time"
)

// Builder assembles a plan through the typed Go API. The YAML pipeline spec
// compiles to the same calls, so both produce the same plan. A Builder collects
// every error and Build reports them all at once.
type Builder struct {
	name  string
	nodes []*node
	names map[string]bool
	errs  []error
}

// Stream is a handle on the output of a source or a step, used to connect the
// next steps. The zero Stream is invalid.
type Stream struct {
	b *Builder
	n *node
}

type node struct {
	name    string
	op      Operator // nil for sources and sinks
	inputs  []*node
	schema  *Schema
	source  *sourceSpec
	sink    bool
	out     *Batch
	ins     []*Batch
	stats   NodeStats
	stateOK bool // op implements Stateful
	// consumers counts the steps and sinks reading this node.
	consumers int
}

type sourceSpec struct {
	index    int
	delay    int64 // watermark delay ms; <0 = no watermark
	maxTime  int64
	wm       int64
	savedWM  int64 // wm as last committed (wmNamespace)
	seen     bool
	position uint64

	// The idle rule (WithIdleTimeout); see Executor.advanceWatermark.
	idle    int64 // idle timeout ms; 0 = off
	base    int64 // the source's watermark after its last input
	last    int64 // processing time of its last input, unix ms
	hasLast bool  // base and last are set (the source has had input)
	fed     bool  // the source has records in the current epoch
}

// SourceOption configures a source.
type SourceOption func(*sourceSpec)

// WithWatermark gives the source an event-time watermark that trails the
// largest event time seen by delay. Records carry their event time in
// Record.Time (unix ms).
func WithWatermark(delay time.Duration) SourceOption {
	return func(s *sourceSpec) { s.delay = delay.Milliseconds() }
}

// WithIdleTimeout makes an event-time source that received nothing for d of
// processing time stop holding the watermark back: from then on its
// watermark advances with processing time, as if its event clock kept
// running (the watermark after its last input plus the processing time
// elapsed since that input), so the windows it holds open close. A source
// that never had input is left out of the pipeline's watermark (the minimum
// over sources) once d has passed since the pipeline's first epoch. The
// rule is a function of committed state (committed with every epoch) and of
// the epoch's processing time, so a restarted executor makes the same
// decisions; the time a node was down counts as idle time. Zero (the
// default) turns the rule off. Only for sources WithWatermark.
func WithIdleTimeout(d time.Duration) SourceOption {
	return func(s *sourceSpec) { s.idle = d.Milliseconds() }
}

// NewBuilder starts a plan for the named pipeline.
func NewBuilder(pipeline string) *Builder {
	return &Builder{name: pipeline, names: map[string]bool{}}
}

// Errorf records a plan error against a step. Spec compilers use it to report
// problems found before operators are built, so that Build lists them all.
func (b *Builder) Errorf(step, format string, args ...any) {
	b.errs = append(b.errs, &PlanError{Pipeline: b.name, Step: step, Err: fmt.Errorf(format, args...)})
}

func (b *Builder) add(n *node) Stream {
	if n.name == "" {
		b.errs = append(b.errs, &PlanError{Pipeline: b.name, Err: errors.New("step without a name")})
	} else if b.names[n.name] {
		b.errs = append(b.errs, &PlanError{Pipeline: b.name, Step: n.name, Err: errors.New("step name used twice")})
	}
	b.names[n.name] = true
	b.nodes = append(b.nodes, n)
	return Stream{b: b, n: n}
}

// Source declares an input of the pipeline with the schema its decoder produces.
func (b *Builder) Source(name string, s *Schema, opts ...SourceOption) Stream {
	spec := &sourceSpec{delay: -1}
	for _, o := range opts {
		o(spec)
	}
	return b.add(&node{name: name, schema: s, source: spec})
}

// Apply adds a step running op over the given inputs.
func (b *Builder) Apply(step string, op Operator, inputs ...Stream) Stream {
	n := &node{name: step, op: op}
	for i, in := range inputs {
		if in.n == nil || in.b != b {
			b.errs = append(b.errs, &PlanError{Pipeline: b.name, Step: step, Err: fmt.Errorf("input %d is not a stream of this pipeline", i)})
			continue
		}
		n.inputs = append(n.inputs, in.n)
	}
	if len(inputs) == 0 {
		b.errs = append(b.errs, &PlanError{Pipeline: b.name, Step: step, Err: errors.New("step has no input")})
	}
	return b.add(n)
}

// Then adds a step running op over s.
func (s Stream) Then(step string, op Operator) Stream { return s.b.Apply(step, op, s) }

// Sink declares a named output of the pipeline fed by s.
func (b *Builder) Sink(name string, s Stream) {
	n := &node{name: name, sink: true}
	if s.n == nil || s.b != b {
		b.errs = append(b.errs, &PlanError{Pipeline: b.name, Step: name, Err: errors.New("sink input is not a stream of this pipeline")})
	} else {
		n.inputs = []*node{s.n}
	}
	b.add(n)
}

// PlanError is an error in one step of a pipeline.
type PlanError struct {
	Pipeline string
	Step     string
	Err      error
}

func (e *PlanError) Error() string {
	if e.Step == "" {
		return fmt.Sprintf("pipeline %q: %v", e.Pipeline, e.Err)
	}
	return fmt.Sprintf("pipeline %q: step %q: %v", e.Pipeline, e.Step, e.Err)
}

// Unwrap returns the underlying error.
func (e *PlanError) Unwrap() error { return e.Err }

// Is makes every PlanError match ErrInvalidPlan.
func (e *PlanError) Is(target error) bool { return target == ErrInvalidPlan }

// Plan is a compiled pipeline: steps in topological order with resolved schemas.
// A Plan holds operator state and belongs to one Executor.
type Plan struct {
	name    string
	nodes   []*node
	sources []*node
	sinks   []*node
}

// Build opens every operator in order and returns the plan, or every problem
// found, joined.
func (b *Builder) Build() (*Plan, error) {
	p := &Plan{name: b.name}
	errs := append([]error(nil), b.errs...)
	for _, n := range b.nodes {
		switch {
		case n.source != nil:
			if n.schema == nil {
				errs = append(errs, &PlanError{b.name, n.name, errors.New("source without schema")})
				continue
			}
			n.source.index = len(p.sources)
			p.sources = append(p.sources, n)
		case n.sink:
			if len(n.inputs) == 1 {
				n.schema = n.inputs[0].schema
			}
			p.sinks = append(p.sinks, n)
		default:
			in := make([]*Schema, len(n.inputs))
			ok := true
			for i, src := range n.inputs {
				if src.schema == nil {
					ok = false // the input failed; its error is already reported
				}
				in[i] = src.schema
			}
			if !ok || n.op == nil {
				if n.op == nil {
					errs = append(errs, &PlanError{b.name, n.name, errors.New("step without operator")})
				}
				continue
			}
			s, err := n.op.Open(in)
			if err != nil {
				errs = append(errs, &PlanError{b.name, n.name, err})
				continue
			}
			n.schema = s
			if l, ok := n.op.(*lazyOp); ok {
				n.op = l.inner
			}
			_, n.stateOK = n.op.(Stateful)
		}
		n.out = NewBatch(n.schema)
		n.ins = make([]*Batch, len(n.inputs))
		p.nodes = append(p.nodes, n)
	}
	for _, n := range p.nodes {
		for _, in := range n.inputs {
			in.consumers++
		}
	}
	if len(p.sources) == 0 {
		errs = append(errs, &PlanError{Pipeline: b.name, Err: errors.New("no source")})
	}
	if len(p.sinks) == 0 {
		errs = append(errs, &PlanError{Pipeline: b.name, Err: errors.New("no sink")})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the pipeline name.
func (p *Plan) Name() string { return p.name }

// Sinks returns the names of the plan's sinks in declaration order.
func (p *Plan) Sinks() []string {
	s := make([]string, len(p.sinks))
	for i, n := range p.sinks {
		s[i] = n.name
	}
	return s
}

// Sources returns the names of the plan's sources in declaration order.
func (p *Plan) Sources() []string {
	s := make([]string, len(p.sources))
	for i, n := range p.sources {
		s[i] = n.name
	}
	return s
}

// SinkSchema returns the schema of the records a sink receives.
func (p *Plan) SinkSchema(name string) *Schema {
	for _, n := range p.sinks {
		if n.name == name {
			return n.schema
		}
	}
	return nil
}

// SourceSchema returns the schema of a source.
func (p *Plan) SourceSchema(name string) *Schema {
	for _, n := range p.sources {
		if n.name == name {
			return n.schema
		}
	}
	return nil
}

// Lazy returns an operator built at plan time from its input schemas: build is
// called by Open, and the plan then runs the operator it returned (including
// its Stateful and Queryable behaviour). Spec compilers use it for operators
// whose parameters (compiled expressions) depend on the input schema.
func Lazy(build func(in []*Schema) (Operator, error)) Operator { return &lazyOp{build: build} }

type lazyOp struct {
	build func(in []*Schema) (Operator, error)
	inner Operator
}

func (l *lazyOp) Open(in []*Schema) (*Schema, error) {
	op, err := l.build(in)
	if err != nil {
		return nil, err
	}
	l.inner = op
	return op.Open(in)
}

func (l *lazyOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	return l.inner.Process(ep, in, out)
}

// ChunkSafe implements ChunkSafe for the built operator.
func (l *lazyOp) ChunkSafe() bool {
	c, ok := l.inner.(ChunkSafe)
	return ok && c.ChunkSafe()
}
