package engine

import (
	"slices"
	"strings"
)

// kstore is a keyed set of partial aggregates: one slot per key id.
type kstore struct {
	st   accStore
	idx  []int32 // key id -> slot+1
	keys []int32 // slot -> key id
}

func (k *kstore) reset(o *timeWinOp) {
	for _, id := range k.keys {
		k.idx[id] = 0
	}
	k.keys = k.keys[:0]
	k.st.w = o.plan.ncol()
	k.st.reset()
}

// slot returns the slot of key id, adding one when the key has none (the key
// is then appended to keys). A key already present costs no call to add.
func (k *kstore) slot(o *timeWinOp, id int32) int32 {
	if int(id) < len(k.idx) {
		if s := k.idx[id]; s != 0 {
			return s - 1
		}
	}
	return k.add(o, id)
}

// add gives key id, which has no slot, a new one.
func (k *kstore) add(o *timeWinOp, id int32) int32 {
	if int(id) >= len(k.idx) {
		k.idx = slices.Grow(k.idx, o.dict.size()-len(k.idx))[:o.dict.size()]
	}
	s := k.st.newSlot(o.plan)
	k.idx[id] = s + 1
	k.keys = append(k.keys, id)
	return s
}

// mergePane folds every key of wpane p (a later partial) into k.
func (k *kstore) mergePane(o *timeWinOp, p *wpane) {
	for s, id := range p.keys {
		o.plan.merge(&k.st, k.slot(o, id), &p.st, int32(s))
	}
}

// mergeStore folds src (a later partial) into k.
func (k *kstore) mergeStore(o *timeWinOp, src *kstore) {
	for s, id := range src.keys {
		o.plan.merge(&k.st, k.slot(o, id), &src.st, int32(s))
	}
}

// slider combines the panes of consecutive sliding windows without
// recombining every wpane of every window. Panes are grouped in blocks of one
// window length, aligned like the windows; a window [ws, ws+size) is the
// suffix of its block A (panes ws .. A+size) followed by a prefix of the next
// block (panes A+size .. ws+size). The suffixes of a block are computed once,
// right to left, when the block is first needed; the prefix grows left to
// right as windows advance. Emitting a window therefore costs O(keys), and
// each wpane is merged O(1) times per block, whatever size/slide is.
//
// Nothing is ever subtracted, and every partial is a function of the wpane
// contents only (fixed merge order), so results are bit-identical whether the
// structures were built incrementally or rebuilt after a restart or an
// invalidation (a record landing in a wpane they include).
type slider struct {
	valid    bool
	lo, hi   int64 // panes in [lo, hi) are cached in suf/pre
	sufBlock int64
	sufFrom  int      // suf[i] valid for i >= sufFrom
	suf      []kstore // suf[i]: the suffix partial from pane i*sufEvery of the block
	tmp      [2]kstore
	cur      kstore // the suffix partial of the current window, between kept ones
	preBlock int64
	preHi    int64
	pre      kstore
	out      kstore
	order    []int32
}

// sufEvery is how far apart the kept suffix partials of a block are (in
// panes). Keeping one per pane cost a partial per key per pane of the
// window (a 60 s window sliding by 1 s: 60 partials of every key); one in
// sufEvery costs an eighth, and a window folds at most sufEvery-1 panes
// into the next kept partial (the same right-to-left fold, so the same
// bits).
const sufEvery = 8

// foldSuffix sets dst to the suffix partial from pane j of block a: panes
// e-1 down to j folded right to left onto next (the partial from pane e;
// nil when e is the block's end), each pane first and then the partial after
// it, as a partial per pane would be. dst must not be next.
func (s *slider) foldSuffix(o *timeWinOp, a int64, j, e int, next, dst *kstore) {
	prev := next
	for jj := e - 1; jj >= j; jj-- {
		d := dst
		if jj > j {
			d = &s.tmp[jj&1]
		}
		d.reset(o)
		if p := o.panes[a+int64(jj)*o.width]; p != nil {
			d.mergePane(o, p)
		}
		if prev != nil {
			d.mergeStore(o, prev)
		}
		prev = d
	}
}

// moveTo prepares the window starting at ws (windows must be visited in
// ascending order for the caches to be reused; any order is correct).
func (s *slider) moveTo(o *timeWinOp, ws int64) {
	w, size := o.width, o.size
	nb := int(size / w)
	a := floorDiv(ws-o.offset, size)*size + o.offset
	j := int((ws - a) / w)
	nk := (nb + sufEvery - 1) / sufEvery
	if len(s.suf) != nk {
		s.suf = make([]kstore, nk)
	}
	ci := (j + sufEvery - 1) / sufEvery // the first kept partial at or after j
	if !s.valid || s.sufBlock != a || ci < s.sufFrom {
		s.sufBlock = a
		for i := nk - 1; i >= ci; i-- {
			var next *kstore
			if i+1 < nk {
				next = &s.suf[i+1]
			}
			s.foldSuffix(o, a, i*sufEvery, min((i+1)*sufEvery, nb), next, &s.suf[i])
		}
		s.sufFrom = ci
	}
	var suf *kstore
	switch {
	case ci < nk && ci*sufEvery == j:
		suf = &s.suf[ci]
	case ci < nk:
		s.foldSuffix(o, a, j, ci*sufEvery, &s.suf[ci], &s.cur)
		suf = &s.cur
	default:
		s.foldSuffix(o, a, j, nb, nil, &s.cur)
		suf = &s.cur
	}
	b, end := a+size, ws+size
	if !s.valid || s.preBlock != b || s.preHi > end {
		s.pre.reset(o)
		s.preBlock, s.preHi = b, b
	}
	for ; s.preHi < end; s.preHi += w {
		if p := o.panes[s.preHi]; p != nil {
			s.pre.mergePane(o, p)
		}
	}
	s.valid = true
	// Panes before the first kept partial are read afresh by every window;
	// the prefix is cached from b on.
	s.lo, s.hi = a+int64(min(s.sufFrom*sufEvery, nb))*w, max(s.preHi, b)
	s.out.reset(o)
	s.out.mergeStore(o, suf)
	s.out.mergeStore(o, &s.pre)
}

// emit appends one row per key of the window prepared by moveTo, in key order.
func (s *slider) emit(o *timeWinOp, out *Batch, ws int64) int {
	s.order = append(s.order[:0], s.out.keys...)
	slices.SortFunc(s.order, func(a, b int32) int { return strings.Compare(o.dict.enc[a], o.dict.enc[b]) })
	for _, id := range s.order {
		o.emitRow(out, ws, id, &s.out.st, s.out.idx[id]-1)
	}
	return len(s.order)
}
