package engine

import "math"

// NoWatermark is the watermark of a pipeline without event time: nothing is ever
// late and nothing is evicted by event time.
const NoWatermark = math.MinInt64

// Epoch is what an operator knows about the micro-batch it is processing. The
// executor fills it; operators read it and update Stats.
//
// An epoch runs one or two passes over the plan. The data pass processes the
// records that arrived. If the watermark advanced, a no-data pass follows at once
// with NoData set: it feeds no input, lets windows and state that fell behind the
// new watermark emit and be evicted, and its outputs belong to the same epoch.
type Epoch struct {
	// Seq is the epoch number, 1 for the first epoch of a pipeline partition.
	Seq uint64
	// Time is the processing time of the micro-batch, unix milliseconds. It is the
	// batch time of Spark Streaming's DStream model: processing-time windows cover
	// the batches whose Time is in (Time-window, Time].
	Time int64
	// Interval is the batch interval in milliseconds.
	Interval int64
	// Watermark is the event-time watermark for emission and eviction: a window
	// whose end is <= Watermark is final. NoWatermark when there is none.
	Watermark int64
	// LateBound is the bound for the late-row test: a row whose window end (or
	// event time, for operators keyed on it) is <= LateBound is late. In the data
	// pass it equals Watermark; in the no-data pass it is the previous watermark.
	LateBound int64
	// NoData is true in the no-data pass.
	NoData bool
	// Final is true in the last pass of the epoch (the data pass when no no-data
	// pass follows). Complete-mode operators emit their whole table only then.
	Final bool
	// Stats are the counters of the operator being run; the executor points it at
	// the node's counters before each call.
	Stats *NodeStats
	// DeadLetter receives records an operator cannot process. Never nil.
	DeadLetter func(rec *Record, s *Schema, reason error)
	// left, when not nil, is what is left of the epoch's output budget
	// (Options.MaxOutputs), shared by its passes: an operator that can defer
	// closed windows (deferrer) emits whole windows while it is positive and
	// takes what it emitted off it.
	left *int
}

// NodeStats are the per-operator counters of a pipeline. They are updated only by
// the goroutine running the executor; read them through Executor.Stats.
type NodeStats struct {
	In         uint64 // records received
	Out        uint64 // records emitted
	Late       uint64 // records (or window contributions) dropped as late
	Duplicates uint64 // records dropped as duplicates
	Invalid    uint64 // records sent to the dead-letter sink
	// Unmatched counts the records an inner join dropped because no row of
	// its table matched them.
	Unmatched uint64
}

// Operator is one step of a plan.
//
// Open is called once, at plan time, with the schemas of the step's inputs; it
// resolves field names to positions, checks types and returns the output schema.
// Errors name the field at fault; the planner adds the pipeline and step.
//
// Process is called for every pass of every epoch, with one batch per input (in
// the order the inputs were declared; empty batches in a no-data pass), and
// appends its results to out, which is empty and has the output schema. It must
// not retain the input batches or their records' Vals after returning: copy what
// it keeps. Process is never called concurrently for one operator.
type Operator interface {
	Open(in []*Schema) (*Schema, error)
	Process(ep *Epoch, in []*Batch, out *Batch) error
}

// Stateful is implemented by operators that keep state across epochs. The
// executor checkpoints it at the end of every epoch and restores it at start.
//
// SaveState writes the entries that changed since the previous SaveState (puts
// and deletes), so a commit costs O(changed keys), not O(state). LoadState is
// called once per stored entry, before the first epoch, with slices it must not
// retain. StateRows returns the number of live state entries (open windows,
// keys, sessions), for metrics and tests.
type Stateful interface {
	SaveState(w *StateWriter) error
	LoadState(key, val []byte) error
	StateRows() int
}

// Queryable is implemented by stateful operators whose live state can be read by
// ad-hoc queries. QueryState calls fn for each state row, formatted with the
// returned schema, until fn returns false. It is called between epochs only, so
// it always sees a consistent state.
type Queryable interface {
	QuerySchema() *Schema
	QueryState(fn func(r *Record) bool)
}

// Dispatch counters are shared by the stateless operators.
func (s *NodeStats) add(in, out int) {
	s.In += uint64(in)
	s.Out += uint64(out)
}
