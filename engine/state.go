package engine

import (
	"bytes"
	"context"
	"sort"
	"sync"
)

// StateOp is one state change of an epoch: a put, or a delete when Delete is set.
type StateOp struct {
	Namespace string // the operator's step name
	Key       []byte
	Val       []byte
	Delete    bool
}

// Output is one record produced by an epoch for a sink. ID is the text form
// of a deterministic OutputID, so a replayed epoch produces the same IDs and
// downstream writes are idempotent.
type Output struct {
	Sink string
	ID   string
	Data []byte // the record as a JSON object
}

// Commit is everything one epoch changes. A StateStore applies it atomically:
// after a crash either all of it is visible or none of it is.
type Commit struct {
	Pipeline  string
	Partition int
	Epoch     uint64
	// Watermark is the event-time watermark after the epoch.
	Watermark int64
	// Through is the watermark through which the partition's outputs, this
	// epoch's and the earlier ones', are complete (Result.Through): Watermark
	// unless closed windows wait for later epochs (Options.MaxOutputs). The
	// mesh's marks use it. Stores do not keep it.
	Through int64
	// Input is the input position consumed by the epoch: per source name, the
	// offset of the next record to read.
	Input map[string]uint64
	State []StateOp
	// Outputs are written to the output spool in the same transaction.
	Outputs []Output
	// DeadLetters are the records the epoch rejected (undecodable input,
	// records an operator refused), stored in the same transaction so that
	// a crash neither loses nor doubles them.
	DeadLetters []DeadLetter
	// Tables are the history-table rows the epoch wrote (WriteHistory),
	// stored in the same transaction.
	Tables []TableWrite
}

// DeadLetter is an input message or record that a pipeline rejected, with
// the reason. Input dead letters (Step empty) name the input log and offset
// they came from: the store keeps one dead letter per logged message and
// lists every pipeline that rejected it.
type DeadLetter struct {
	Pipeline string
	Source   string // the pipeline's source, for input dead letters
	Step     string // the step that rejected a record; empty for input
	Log      string // input log of the message ("" for operator dead letters)
	Offset   uint64 // its offset in Log
	Topic    string // the MQTT topic the message came on, if any
	Payload  []byte // the bytes received (input) or the record as JSON (step)
	Reason   string
	Time     int64 // unix ms, when it was rejected
}

// Checkpoint is the last committed epoch of a pipeline partition.
type Checkpoint struct {
	Epoch     uint64
	Watermark int64
	Input     map[string]uint64
}

// StateStore persists operator state, input positions and outputs, one epoch
// at a time. Implementations must be safe for concurrent use: queries read state
// while the executor commits.
//
// Commit applies c atomically and durably (when it returns nil, a crash must not
// lose it). It may not retain c's slices after returning. LastCheckpoint returns
// the last committed checkpoint, or a zero Checkpoint (Epoch 0) if none. Scan
// calls fn for every state entry of one namespace in key order; fn must not
// retain the slices.
type StateStore interface {
	Commit(ctx context.Context, c *Commit) error
	LastCheckpoint(pipeline string, partition int) (Checkpoint, error)
	Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error
}

// StateWriter collects the state changes of one operator for a commit. Put and
// Delete copy their arguments into an arena reused from commit to commit, so
// the caller may reuse its buffers at once and a steady-state commit does not
// allocate per key.
type StateWriter struct {
	ns    string
	ops   *[]StateOp
	arena *[]byte
}

func (w *StateWriter) copyBytes(b []byte) []byte {
	a := *w.arena
	if len(a)+len(b) > cap(a) {
		// A fresh block: slices already handed out keep the old one alive.
		a = make([]byte, 0, max(2*cap(a), len(b), 4096))
	}
	start := len(a)
	a = append(a, b...)
	*w.arena = a
	return a[start:len(a):len(a)]
}

// Put records key=val.
func (w *StateWriter) Put(key, val []byte) {
	*w.ops = append(*w.ops, StateOp{Namespace: w.ns, Key: w.copyBytes(key), Val: w.copyBytes(val)})
}

// Delete records the removal of key.
func (w *StateWriter) Delete(key []byte) {
	*w.ops = append(*w.ops, StateOp{Namespace: w.ns, Key: w.copyBytes(key), Delete: true})
}

// MemStore is an in-memory StateStore: the engine's default for tests, batch
// mode and nodes without durable storage. Commits are atomic (one lock) but not
// durable. It also keeps the outputs of every commit, in order, for inspection.
type MemStore struct {
	mu      sync.Mutex
	parts   map[memKey]*memPart
	outputs []Output
	tables  map[string]*memTable
	// KeepOutputs, when set, makes Commit retain the outputs (see Outputs).
	KeepOutputs bool
}

type memKey struct {
	pipeline  string
	partition int
}

type memPart struct {
	cp    Checkpoint
	state map[string]map[string]*[]byte // namespace -> key -> value (updated in place)
	// free holds the value buffers of deleted entries (at most memFreeMax),
	// reused by new ones: state that moves on (a window's entries deleted as
	// the next window's are written) then allocates no value buffers.
	free []*[]byte
}

// memFreeMax bounds memPart.free.
const memFreeMax = 1 << 14

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{parts: map[memKey]*memPart{}} }

// Commit implements StateStore.
func (m *MemStore) Commit(_ context.Context, c *Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{c.Pipeline, c.Partition}
	p := m.parts[k]
	if p == nil {
		p = &memPart{state: map[string]map[string]*[]byte{}}
		m.parts[k] = p
	}
	for _, op := range c.State {
		ns := p.state[op.Namespace]
		if ns == nil {
			ns = map[string]*[]byte{}
			p.state[op.Namespace] = ns
		}
		switch v, ok := ns[string(op.Key)]; {
		case op.Delete:
			if ok {
				delete(ns, string(op.Key))
				if len(p.free) < memFreeMax {
					*v = (*v)[:0]
					p.free = append(p.free, v)
				}
			}
		case ok:
			*v = append((*v)[:0], op.Val...)
		case len(p.free) > 0:
			b := p.free[len(p.free)-1]
			p.free[len(p.free)-1] = nil
			p.free = p.free[:len(p.free)-1]
			*b = append(*b, op.Val...)
			ns[string(op.Key)] = b
		default:
			b := bytes.Clone(op.Val)
			ns[string(op.Key)] = &b
		}
	}
	in := make(map[string]uint64, len(c.Input))
	for s, o := range c.Input {
		in[s] = o
	}
	p.cp = Checkpoint{Epoch: c.Epoch, Watermark: c.Watermark, Input: in}
	m.writeTables(c.Tables)
	if m.KeepOutputs {
		for _, o := range c.Outputs {
			o.Data = bytes.Clone(o.Data) // the executor reuses the buffer
			m.outputs = append(m.outputs, o)
		}
	}
	return nil
}

// LastCheckpoint implements StateStore.
func (m *MemStore) LastCheckpoint(pipeline string, partition int) (Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.parts[memKey{pipeline, partition}]; p != nil {
		return p.cp, nil
	}
	return Checkpoint{}, nil
}

// Scan implements StateStore.
func (m *MemStore) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	m.mu.Lock()
	p := m.parts[memKey{pipeline, partition}]
	var keys []string
	var ns map[string]*[]byte
	if p != nil {
		ns = p.state[namespace]
		for k := range ns {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(*ns[k])
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Outputs returns the outputs committed so far (only with KeepOutputs).
func (m *MemStore) Outputs() []Output {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Output(nil), m.outputs...)
}
