package engine

import (
	"slices"
	"strings"
)

// slider combines the panes of consecutive sliding windows incrementally: it
// keeps one running aggregate per key over the panes [lo, hi), adds the panes
// entering the next window and subtracts the panes leaving it. Count, sum, avg
// and stddev subtract exactly (stddev by reversing Welford's merge); min, max,
// first and percentile cannot be subtracted, so a key whose departing pane may
// have held its extreme (or first value, or sketch buckets) is marked stale and
// recombined from its panes. Emitting a window therefore costs O(keys + keys in
// the panes that moved), not O(keys × window/slide).
//
// Floating-point sums that are subtracted can drift by rounding error; the
// slider is rebuilt from the panes whenever windows are not consecutive.
type slider struct {
	valid  bool
	lo, hi int64 // panes with start in [lo, hi) are included
	st     accStore
	idx    []int32 // key id -> slot+1
	keys   []int32 // slot -> key id
	cnt    []int32 // slot -> number of included panes holding the key
	stale  []bool
	stales []int32
	live   int
	tmp    accStore
	order  []int32
}

func (s *slider) reset(o *timeWinOp) {
	for _, id := range s.keys {
		s.idx[id] = 0
	}
	s.keys, s.cnt, s.stale, s.stales = s.keys[:0], s.cnt[:0], s.stale[:0], s.stales[:0]
	s.st.w = len(o.plan.fn)
	s.tmp.w = s.st.w
	s.st.reset()
	s.live = 0
	s.valid = true
}

// addPane folds pane p into the running aggregates.
func (s *slider) addPane(o *timeWinOp, p *pane) {
	for ps, id := range p.keys {
		if int(id) >= len(s.idx) {
			s.idx = slices.Grow(s.idx, o.dict.size()-len(s.idx))[:o.dict.size()]
		}
		d := s.idx[id] - 1
		if d < 0 {
			d = s.st.newSlot(o.plan)
			s.idx[id] = d + 1
			s.keys = append(s.keys, id)
			s.cnt = append(s.cnt, 0)
			s.stale = append(s.stale, false)
		}
		if s.cnt[d] == 0 {
			s.live++
		}
		s.cnt[d]++
		if !s.stale[d] {
			o.plan.merge(&s.st, d, &p.st, int32(ps))
		}
	}
}

// subPane removes pane p (the oldest included) from the running aggregates.
func (s *slider) subPane(o *timeWinOp, p *pane) {
	for ps, id := range p.keys {
		if int(id) >= len(s.idx) || s.idx[id] == 0 {
			continue
		}
		d := s.idx[id] - 1
		s.cnt[d]--
		if s.cnt[d] == 0 {
			s.live--
			clearSlot(&s.st, d)
			if s.stale[d] {
				s.stale[d] = false
			}
			continue
		}
		if s.stale[d] {
			continue
		}
		if !o.plan.subtract(&s.st, d, &p.st, int32(ps)) {
			s.stale[d] = true
			s.stales = append(s.stales, d)
		}
	}
}

// refresh recombines the stale keys from the included panes.
func (s *slider) refresh(o *timeWinOp) {
	for _, d := range s.stales {
		if !s.stale[d] {
			continue
		}
		s.stale[d] = false
		clearSlot(&s.st, d)
		id := s.keys[d]
		for ps := s.lo; ps < s.hi; ps += o.width {
			p := o.panes[ps]
			if p == nil || int(id) >= len(p.idx) || p.idx[id] == 0 {
				continue
			}
			o.plan.merge(&s.st, d, &p.st, p.idx[id]-1)
		}
	}
	s.stales = s.stales[:0]
}

// moveTo makes the running aggregates cover the window starting at ws.
func (s *slider) moveTo(o *timeWinOp, ws int64) {
	we := ws + o.size
	if !s.valid || ws < s.lo || ws >= s.hi || len(s.keys) > 2*s.live+1024 {
		s.reset(o)
		s.lo, s.hi = ws, ws
	}
	for ; s.lo < ws; s.lo += o.width {
		if p := o.panes[s.lo]; p != nil {
			s.subPane(o, p)
		}
	}
	for ; s.hi < we; s.hi += o.width {
		if p := o.panes[s.hi]; p != nil {
			s.addPane(o, p)
		}
	}
	s.refresh(o)
}

// emit appends one row per live key of the current window, in key order.
func (s *slider) emit(o *timeWinOp, out *Batch, ws int64) int {
	s.order = s.order[:0]
	for d := range s.keys {
		if s.cnt[d] > 0 {
			s.order = append(s.order, int32(d))
		}
	}
	slices.SortFunc(s.order, func(a, b int32) int {
		return strings.Compare(o.dict.enc[s.keys[a]], o.dict.enc[s.keys[b]])
	})
	for _, d := range s.order {
		o.emitRow(out, ws, s.keys[d], &s.st, d)
	}
	return len(s.order)
}
