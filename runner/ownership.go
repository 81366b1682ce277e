package runner

// Claim is one partition of a pipeline that this node holds.
type Claim struct {
	Partition int
	// Term is the ownership term: it grows with every change of the
	// partition's owner and is carried by every output id, so that after a
	// network partition the result of the highest term wins.
	Term uint64
	// Emit is set for the owner; a standby (Emit false) processes the same
	// input and keeps its state current but its outputs are dropped.
	Emit bool
}

// Ownership says which partitions of a pipeline this node holds. Claims is
// called by the runner at the start of every epoch, from the runner's
// goroutine; implementations must be safe for concurrent use by several
// runners and must not block for long (answer from memory). The returned
// slice is not retained past the next call; partitions outside [0, n) are
// ignored.
type Ownership interface {
	Claims(pipeline string, n int) []Claim
}

// OwnershipFunc adapts a function to Ownership.
type OwnershipFunc func(pipeline string, n int) []Claim

// Claims calls f.
func (f OwnershipFunc) Claims(pipeline string, n int) []Claim { return f(pipeline, n) }

// SingleNode is the Ownership of a gateway on its own: every partition,
// term 1, emitting.
type SingleNode struct{}

// Claims returns every partition of the pipeline.
func (SingleNode) Claims(_ string, n int) []Claim {
	cs := make([]Claim, n)
	for i := range cs {
		cs[i] = Claim{Partition: i, Term: 1, Emit: true}
	}
	return cs
}

// Mark says how far one emitting partition's outputs are committed: its
// term and its event-time watermark after the committed epoch, or, while
// closed windows wait for the next epochs (Config.MaxOutputs), the lower
// watermark through which its outputs are complete (engine.Result.Through).
type Mark struct {
	Partition int
	Term      uint64
	Watermark int64
}

// Marker is an optional interface of an Ownership that lets a new owner
// of a partition continue exactly where the previous one stopped, with no
// window lost or emitted twice. The owner's runner calls Committed after
// every epoch it committed, before the epoch's sinks are woken, with the
// watermark of each emitting partition (an implementation tells the
// partition's other holders before it returns). When a partition turns
// from standby to owner, the runner asks EmittedThrough how far the
// previous owner's committed outputs went: it drops the outputs it computed
// (held as a standby, or in its first epochs as owner while it catches up)
// of epochs whose watermark did not pass that mark, and emits the rest.
// An output of an epoch that straddles the mark is emitted (a possible
// duplicate rather than a loss). Append-mode windows close when the
// watermark passes their end, so this is exact for them.
type Marker interface {
	Committed(pipeline string, marks []Mark)
	EmittedThrough(pipeline string, partition int) (watermark int64, ok bool)
}
