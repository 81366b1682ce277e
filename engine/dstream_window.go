package engine

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Window is Spark Streaming's processing-time window over batch times
// (Epoch.Time, ms). It emits only at batch times t with t % slide == 0: the
// concatenation, in batch order, of the batches whose time is in
// (t-window, t]. The first windows are partial; with slide > window the
// batches between windows are never seen; every output time produces an
// output, possibly empty. It keeps one pane (a copy of the batch) per batch
// and evicts panes older than the window.
func Window(window, slide time.Duration) Operator {
	w, s := windowMs(window, slide)
	return &windowOp{w: w, s: s}
}

type rawPane struct {
	t     int64
	b     *Batch
	saved bool
}

type windowOp struct {
	w, s    int64
	schema  *Schema
	panes   []*rawPane
	free    []*rawPane
	evicted []int64
	buf     []byte
}

func (o *windowOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if o.w <= 0 || o.s <= 0 {
		return nil, fmt.Errorf("window: window %dms and slide %dms must be positive", o.w, o.s)
	}
	o.schema = in[0]
	return in[0], nil
}

func (o *windowOp) newPane(t int64) *rawPane {
	if n := len(o.free); n > 0 {
		p := o.free[n-1]
		o.free = o.free[:n-1]
		p.t, p.saved = t, false
		p.b.Reset(o.schema)
		return p
	}
	return &rawPane{t: t, b: NewBatch(o.schema)}
}

func (o *windowOp) insert(p *rawPane) {
	i := len(o.panes)
	for i > 0 && o.panes[i-1].t > p.t {
		i--
	}
	o.panes = append(o.panes, nil)
	copy(o.panes[i+1:], o.panes[i:])
	o.panes[i] = p
}

func (o *windowOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.NoData {
		return nil
	}
	b, t := in[0], ep.Time
	next := ceilDiv(t, o.s) * o.s
	if b.Len() > 0 && t > next-o.w {
		p := o.newPane(t)
		for i := range b.Recs {
			p.b.AppendCopy(&b.Recs[i])
		}
		o.insert(p)
	}
	if t%o.s == 0 {
		for _, p := range o.panes {
			if p.t > t-o.w && p.t <= t {
				for i := range p.b.Recs {
					out.AppendCopy(&p.b.Recs[i])
				}
			}
		}
		n := 0
		for n < len(o.panes) && o.panes[n].t <= t-o.w {
			if o.panes[n].saved {
				o.evicted = append(o.evicted, o.panes[n].t)
			}
			o.free = append(o.free, o.panes[n])
			n++
		}
		m := copy(o.panes, o.panes[n:])
		clear(o.panes[m:])
		o.panes = o.panes[:m]
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}

// SaveState implements Stateful: one entry per pane (batch), written once.
func (o *windowOp) SaveState(w *StateWriter) error {
	for _, t := range o.evicted {
		o.buf = appendTimeKey(o.buf[:0], 'p', t)
		w.Delete(o.buf)
	}
	o.evicted = o.evicted[:0]
	for _, p := range o.panes {
		if p.saved {
			continue
		}
		p.saved = true
		o.buf = appendTimeKey(o.buf[:0], 'p', p.t)
		n := len(o.buf)
		o.buf = binary.AppendUvarint(o.buf, uint64(p.b.Len()))
		for i := range p.b.Recs {
			r := &p.b.Recs[i]
			o.buf = AppendVarint(o.buf, r.Time)
			for _, v := range r.Vals {
				o.buf = AppendValue(o.buf, v)
			}
		}
		w.Put(o.buf[:n], o.buf[n:])
	}
	return nil
}

// LoadState implements Stateful.
func (o *windowOp) LoadState(key, val []byte) error {
	t, ok := readTimeKey(key)
	if !ok {
		return ErrCorruptState
	}
	p := o.newPane(t)
	p.saved = true
	n, sz := binary.Uvarint(val)
	if sz <= 0 {
		return ErrCorruptState
	}
	rest := val[sz:]
	for i := uint64(0); i < n; i++ {
		r := p.b.Append()
		var err error
		if r.Time, rest, err = ReadVarint(rest); err != nil {
			return err
		}
		for j := range r.Vals {
			if r.Vals[j], rest, err = ReadValue(rest); err != nil {
				return err
			}
		}
	}
	o.insert(p)
	return nil
}

// StateRows implements Stateful: the number of retained panes.
func (o *windowOp) StateRows() int { return len(o.panes) }
