package engine

import (
	"fmt"
	"slices"
	"strings"
)

// session is one open session window of a key with its partial aggregates.
type session struct {
	start, end int64
	st         accStore // one slot
	changed    bool
}

type sessKey struct {
	sess  []*session // sorted by start, disjoint and not touching
	dirty bool
}

// sessionOp implements session windows (WindowConfig.Gap / GapFunc): an event
// at ts opens [ts, ts+gap); sessions of a key that overlap or touch
// (next.start <= cur.end) merge. A row is late when ts+gap <= LateBound.
type sessionOp struct {
	grouping
	cfg     WindowConfig
	keys    []*sessKey // by key id; nil when the key has no session
	live    []int32    // key ids with sessions (unordered)
	liveAt  []int32    // key id -> position in live + 1
	rows    int
	deletes []string
	dirty   []int32
	changed []int32
	kbuf    []byte
	vbuf    []byte
	rec     Record
}

func (o *sessionOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	c := &o.cfg
	if c.Gap < 0 {
		return nil, fmt.Errorf("session gap %d: must be > 0", c.Gap)
	}
	if c.AllowedLateness < 0 {
		return nil, fmt.Errorf("allowed lateness %d: must be >= 0", c.AllowedLateness)
	}
	start, end := c.boundFields("session_start", "session_end")
	if err := o.openGrouping(in[0], c.Keys, c.Aggs, start, end); err != nil {
		return nil, err
	}
	return o.out, nil
}

func (o *sessionOp) keyState(id int32) *sessKey {
	for int(id) >= len(o.keys) {
		o.keys = append(o.keys, nil)
		o.liveAt = append(o.liveAt, 0)
	}
	k := o.keys[id]
	if k == nil {
		k = &sessKey{}
		o.keys[id] = k
		o.dict.ref(id)
		o.live = append(o.live, id)
		o.liveAt[id] = int32(len(o.live))
	}
	return k
}

func (o *sessionOp) markDirty(id int32, k *sessKey) {
	if !k.dirty {
		k.dirty = true
		o.dirty = append(o.dirty, id)
	}
}

func (o *sessionOp) newSession(start, end int64) *session {
	s := &session{start: start, end: end}
	s.st.w = o.plan.ncol()
	s.st.newSlot(o.plan)
	return s
}

func (o *sessionOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	late, final := lateBounds(ep, o.cfg.AllowedLateness)
	complete := o.cfg.Mode == OutputComplete
	for i := range b.Recs {
		r := &b.Recs[i]
		if err := o.plan.check(in[0].Schema, r); err != nil {
			ep.DeadLetter(r, in[0].Schema, err)
			continue
		}
		id := o.dict.lookup(r, o.keyIdx)
		gap := o.cfg.Gap
		if o.cfg.GapFunc != nil {
			gap = o.cfg.GapFunc(o.dict.vals[id])
		}
		if gap <= 0 {
			continue
		}
		ts, end := r.Time, r.Time+gap
		if !complete && late != NoWatermark && end <= late {
			ep.Stats.Late++
			continue
		}
		k := o.keyState(id)
		// find the sessions that overlap or touch [ts, end)
		lo := 0
		for lo < len(k.sess) && k.sess[lo].end < ts {
			lo++
		}
		hi := lo
		for hi < len(k.sess) && k.sess[hi].start <= end {
			hi++
		}
		var t *session
		if lo == hi {
			t = o.newSession(ts, end)
			k.sess = slices.Insert(k.sess, lo, t)
			o.rows++
		} else {
			t = k.sess[lo]
			for j := lo + 1; j < hi; j++ {
				s := k.sess[j]
				o.plan.merge(&t.st, 0, &s.st, 0)
				t.end = max(t.end, s.end)
			}
			o.rows -= hi - lo - 1
			k.sess = slices.Delete(k.sess, lo+1, hi)
			t.start, t.end = min(t.start, ts), max(t.end, end)
		}
		o.plan.add(&t.st, 0, r)
		o.markDirty(id, k)
		if o.cfg.Mode == OutputUpdate && !t.changed {
			t.changed = true
			o.changed = append(o.changed, id)
		}
	}
	n := 0
	switch o.cfg.Mode {
	case OutputUpdate:
		slices.SortFunc(o.changed, o.cmpKey)
		o.changed = slices.Compact(o.changed)
		for _, id := range o.changed {
			k := o.keys[id]
			if k == nil {
				continue
			}
			for _, s := range k.sess {
				if s.changed {
					s.changed = false
					o.emit(out, id, s)
					n++
				}
			}
		}
		o.changed = o.changed[:0]
	case OutputComplete:
		if ep.Final {
			ids := slices.Clone(o.live)
			slices.SortFunc(ids, o.cmpKey)
			for _, id := range ids {
				for _, s := range o.keys[id].sess {
					o.emit(out, id, s)
					n++
				}
			}
		}
	}
	if !complete && final != NoWatermark {
		n += o.evict(out, final, o.cfg.Mode == OutputAppend)
	}
	ep.Stats.add(len(b.Recs), n)
	return nil
}

func (o *sessionOp) cmpKey(a, b int32) int { return strings.Compare(o.dict.enc[a], o.dict.enc[b]) }

func (o *sessionOp) emit(out *Batch, id int32, s *session) {
	d := out.Append()
	j := copy(d.Vals, o.dict.vals[id])
	d.Vals[j], d.Vals[j+1] = Time(s.start), Time(s.end)
	j += 2
	for i := range o.plan.fn {
		d.Vals[j+i] = o.plan.result(i, &s.st, 0)
	}
	if o.cfg.OutputTime == OutputTimeStart {
		d.Time = s.start
	} else {
		d.Time = s.end - 1
	}
}

// evict removes sessions with end <= final, emitting them first when emit is set.
func (o *sessionOp) evict(out *Batch, final int64, emit bool) int {
	var ids []int32
	for _, id := range o.live {
		k := o.keys[id]
		if len(k.sess) > 0 && k.sess[0].end <= final {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	slices.SortFunc(ids, o.cmpKey)
	n := 0
	for _, id := range ids {
		k := o.keys[id]
		j := 0
		for _, s := range k.sess {
			if s.end <= final {
				if emit {
					o.emit(out, id, s)
					n++
				}
				o.rows--
				continue
			}
			k.sess[j] = s
			j++
		}
		clear(k.sess[j:])
		k.sess = k.sess[:j]
		o.markDirty(id, k)
	}
	return n
}

func (o *sessionOp) dropKey(id int32) {
	o.keys[id] = nil
	p := o.liveAt[id] - 1
	last := o.live[len(o.live)-1]
	o.live[p] = last
	o.liveAt[last] = p + 1
	o.live = o.live[:len(o.live)-1]
	o.liveAt[id] = 0
	o.dict.release(id)
}

// SaveState implements Stateful: one entry per key changed since the last
// call, holding all its sessions; keys whose sessions all closed are deleted.
func (o *sessionOp) SaveState(w *StateWriter) error {
	for _, id := range o.dirty {
		k := o.keys[id]
		if k == nil {
			continue
		}
		k.dirty = false
		o.kbuf = append(o.kbuf[:0], 's')
		o.kbuf = append(o.kbuf, o.dict.enc[id]...)
		if len(k.sess) == 0 {
			w.Delete(o.kbuf)
			o.dropKey(id)
			continue
		}
		v := AppendVarint(o.vbuf[:0], int64(len(k.sess)))
		for _, s := range k.sess {
			v = AppendVarint(v, s.start)
			v = AppendVarint(v, s.end)
			v = o.plan.appendAccs(v, &s.st, 0)
		}
		o.vbuf = v
		w.Put(o.kbuf, v)
	}
	o.dirty = o.dirty[:0]
	o.dict.sweep()
	return nil
}

// LoadState implements Stateful.
func (o *sessionOp) LoadState(key, val []byte) error {
	if len(key) < 1 || key[0] != 's' {
		return ErrCorruptState
	}
	id, err := o.dict.insertEncoded(key[1:], len(o.keyIdx))
	if err != nil {
		return err
	}
	k := o.keyState(id)
	n, b, err := ReadVarint(val)
	if err != nil || n < 0 || n > int64(len(val)) {
		return ErrCorruptState
	}
	for i := int64(0); i < n; i++ {
		var st, en int64
		if st, b, err = ReadVarint(b); err != nil {
			return err
		}
		if en, b, err = ReadVarint(b); err != nil {
			return err
		}
		s := o.newSession(st, en)
		if b, err = o.plan.readAccs(b, &s.st, 0); err != nil {
			return err
		}
		k.sess = append(k.sess, s)
		o.rows++
	}
	return nil
}

// StateRows implements Stateful: the number of open sessions.
func (o *sessionOp) StateRows() int { return o.rows }

// QuerySchema implements Queryable.
func (o *sessionOp) QuerySchema() *Schema { return o.out }

// QueryState implements Queryable: every open session, keys in key order.
func (o *sessionOp) QueryState(fn func(r *Record) bool) {
	ids := slices.Clone(o.live)
	slices.SortFunc(ids, o.cmpKey)
	b := NewBatch(o.out)
	for _, id := range ids {
		for _, s := range o.keys[id].sess {
			b.Reset(o.out)
			o.emit(b, id, s)
			if !fn(&b.Recs[0]) {
				return
			}
		}
	}
}
