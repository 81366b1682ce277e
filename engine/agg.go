package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// AggFunc is an aggregate function. Aggregates are plain accumulator structs
// updated through a switch on AggFunc, never through an interface per record.
type AggFunc uint8

// The aggregate functions.
const (
	AggCount      AggFunc = iota + 1 // number of rows (or of non-null values of Field)
	AggSum                           // sum of Field
	AggMin                           // minimum of Field
	AggMax                           // maximum of Field
	AggAvg                           // mean of Field
	AggFirst                         // first value of Field in input order
	AggLast                          // last value of Field in input order
	AggStddev                        // sample standard deviation (Welford), null below 2 values
	AggStddevPop                     // population standard deviation (Welford)
	AggPercentile                    // approximate percentile Q of Field: within 2% relative error of the nearest-rank percentile while the values span < 4 decades (a log-bucket sketch of <= 256 buckets; beyond that the smallest-magnitude buckets merge)
)

var aggNames = map[string]AggFunc{
	"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax, "avg": AggAvg, "mean": AggAvg,
	"first": AggFirst, "last": AggLast, "stddev": AggStddev, "stddev_samp": AggStddev,
	"stddev_pop": AggStddevPop, "percentile": AggPercentile, "approx_percentile": AggPercentile,
}

// AggSpec is one aggregate of a spec: Func applied to Field, output as As.
// Field may be empty (or "*") for count, which then counts rows. Q is the
// quantile (0..1) of percentile.
type AggSpec struct {
	Func  string
	Field string
	As    string
	Q     float64
}

// ParseAgg parses "func(field)", "count()", "count(*)", "percentile(field, 0.95)",
// "p95(field)" and an optional " as name" suffix. The default output name is
// func_field (or "count" for count of rows).
func ParseAgg(s string) (AggSpec, error) {
	s = strings.TrimSpace(s)
	var as string
	if i := strings.LastIndex(strings.ToLower(s), " as "); i >= 0 {
		as = strings.TrimSpace(s[i+4:])
		s = strings.TrimSpace(s[:i])
	}
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return AggSpec{}, fmt.Errorf("aggregate %q: want func(field)", s)
	}
	name := strings.ToLower(strings.TrimSpace(s[:open]))
	args := strings.Split(s[open+1:len(s)-1], ",")
	spec := AggSpec{Func: name, Field: strings.TrimSpace(args[0])}
	if len(name) > 1 && name[0] == 'p' && name != "percentile" {
		if q, err := strconv.ParseFloat(name[1:], 64); err == nil && q > 0 && q < 100 {
			spec.Func, spec.Q = "percentile", q/100
		}
	}
	if len(args) == 2 {
		q, err := strconv.ParseFloat(strings.TrimSpace(args[1]), 64)
		if err != nil || q < 0 || q > 1 {
			return AggSpec{}, fmt.Errorf("aggregate %q: quantile %q not in [0,1]", s, args[1])
		}
		spec.Q = q
	} else if len(args) > 2 {
		return AggSpec{}, fmt.Errorf("aggregate %q: too many arguments", s)
	}
	if _, ok := aggNames[spec.Func]; !ok {
		return AggSpec{}, fmt.Errorf("aggregate %q: unknown function %q", s, name)
	}
	if spec.Field == "*" {
		spec.Field = ""
	}
	if spec.Field == "" && spec.Func != "count" {
		return AggSpec{}, fmt.Errorf("aggregate %q: %s needs a field", s, spec.Func)
	}
	spec.As = as
	if spec.As == "" {
		spec.As = spec.Func
		if spec.Field != "" {
			spec.As += "_" + spec.Field
		}
	}
	return spec, nil
}

// aggPlan is the resolved form of a list of AggSpecs against an input schema.
type aggPlan struct {
	fn    []AggFunc
	field []int // input position, -1 for count of rows
	q     []float64
	kinds []Kind // output kinds
	ints  []bool // output is integral (counts; min, max, sum, first, last of an integer field)
	names []string
	aux   bool  // some aggregate needs accAux (M2, first/last, sketch)
	nums  []int // input positions that numeric aggregates read
	// Aggregates whose accumulators are the same (sum and avg of a field,
	// stddev and stddev_pop, percentiles of a field, repeats) share one
	// column of the accumulator store: col maps an aggregate to its column,
	// and cfn, cfield give each column's accumulator function (sum for avg,
	// stddev for stddev_pop) and input field. A group of count(*), sum, min,
	// max and avg of one field is thus 4 columns, 64 bytes: one cache line.
	col    []int
	cfn    []AggFunc
	cfield []int
	// A slot's hot words (accStore.hot) are its counts, one per input field
	// counted (cntField; -1 counts rows), then one value per column that
	// keeps one (the sum, minimum, maximum or Welford mean). Columns over
	// the same field share its count: count(*), sum, min and max of a field
	// (and avg, which is its sum) take 5 words, 40 bytes, not 4 columns of
	// a count and a value, 64. cnt and val give each column's words (val -1
	// when it keeps none); hw is the number of words.
	cnt      []int
	val      []int
	cntField []int
	hw       int
	// init is a new slot's hot words: zero, but +Inf for a minimum and -Inf
	// for a maximum, so that foldFast needs no test of the count (a value is
	// only read when its count is not zero).
	init []float64
	// fast says that every column is a count, sum, minimum or maximum of the
	// rows or of one field, fastField (-1: rows only), so that foldFast can
	// fold a record without a switch; fRows, fCnt, fSum, fMin and fMax are
	// the words it updates (-1: none).
	fast                          bool
	fastField                     int
	fRows, fCnt, fSum, fMin, fMax int
	shape                         foldShape
	// hotAggs describes, for a plan without cold parts (not aux), each
	// aggregate by its words, for fill and appendAccs; nil otherwise.
	hotAggs []hotAgg
}

// hotAgg is one aggregate of a plan without cold parts: its function
// (count, sum, avg, min or max), output kind, and count and value words
// (val -1 for a count).
type hotAgg struct {
	fn       AggFunc
	kind     Kind
	cnt, val int32
}

// ncol returns the number of accumulator columns (accStore.w).
func (p *aggPlan) ncol() int { return len(p.cfn) }

// accFunc returns the accumulator function of aggregate function f: the
// function whose accumulator f's result is computed from.
func accFunc(f AggFunc) AggFunc {
	switch f {
	case AggAvg:
		return AggSum
	case AggStddevPop:
		return AggStddev
	}
	return f
}

// addColumn maps aggregate i (function f over input field idx) to a column,
// sharing one with an earlier aggregate that keeps the same accumulator.
func (p *aggPlan) addColumn(f AggFunc, idx int) {
	af := accFunc(f)
	for c := range p.cfn {
		if p.cfn[c] == af && p.cfield[c] == idx {
			p.col = append(p.col, c)
			return
		}
	}
	p.col = append(p.col, len(p.cfn))
	p.cfn = append(p.cfn, af)
	p.cfield = append(p.cfield, idx)
}

// layout places the hot words of the columns: the counts first, one per
// field (in order of first use), then the values (in column order); for a
// fast plan (counts, sums, minimums and maximums of at most one field) the
// count of rows, the field's count, then its sum, minimum and maximum. The
// layout is in memory only: appendAccs stores per aggregate, whatever it is.
// It also derives what the folds and fill read: init, the fast words and
// shape, and hotAggs.
func (p *aggPlan) layout() {
	p.fast, p.fastField = true, -1
	for c, fn := range p.cfn {
		if f := p.cfield[c]; f >= 0 {
			if p.fastField >= 0 && p.fastField != f {
				p.fast = false
			}
			p.fastField = f
		}
		switch fn {
		case AggCount, AggSum, AggMin, AggMax:
		default:
			p.fast = false
		}
	}
	// A fast plan's words are in a fixed order (those it has), so that the
	// common shapes have a fold of their own (foldShape).
	p.cnt, p.val, p.cntField = p.cnt[:0], p.val[:0], p.cntField[:0]
	if p.fast && slices.Contains(p.cfield, -1) {
		p.cntField = append(p.cntField, -1)
	}
	for _, f := range p.cfield {
		c := slices.Index(p.cntField, f)
		if c < 0 {
			c = len(p.cntField)
			p.cntField = append(p.cntField, f)
		}
		p.cnt = append(p.cnt, c)
	}
	p.hw = len(p.cntField)
	p.val = append(p.val, make([]int, len(p.cfn))...)
	cols := make([]int, 0, len(p.cfn))
	for c := range p.cfn {
		cols = append(cols, c)
	}
	if p.fast {
		slices.SortStableFunc(cols, func(a, b int) int { return int(p.cfn[a]) - int(p.cfn[b]) }) // count, sum, min, max
	}
	for _, c := range cols {
		switch p.cfn[c] {
		case AggSum, AggMin, AggMax, AggStddev:
			p.val[c] = p.hw
			p.hw++
		default:
			p.val[c] = -1
		}
	}
	p.hotAggs = nil
	if !p.aux {
		for i, f := range p.fn {
			c := p.col[i]
			a := hotAgg{fn: f, kind: p.kinds[i], cnt: int32(p.cnt[c]), val: -1}
			if f != AggCount {
				a.val = int32(p.val[c])
			}
			p.hotAggs = append(p.hotAggs, a)
		}
	}
	p.init = make([]float64, p.hw)
	p.fRows, p.fCnt, p.fSum, p.fMin, p.fMax = -1, -1, -1, -1, -1
	for c, fn := range p.cfn {
		f := p.cfield[c]
		switch fn {
		case AggCount:
			if f < 0 {
				p.fRows = p.cnt[c]
			} else {
				p.fCnt = p.cnt[c]
			}
		case AggSum:
			p.fCnt, p.fSum = p.cnt[c], p.val[c]
		case AggMin:
			p.fCnt, p.fMin = p.cnt[c], p.val[c]
			p.init[p.val[c]] = math.Inf(1)
		case AggMax:
			p.fCnt, p.fMax = p.cnt[c], p.val[c]
			p.init[p.val[c]] = math.Inf(-1)
		}
	}
	p.shape = shapeAny
	if p.fast && p.fRows == 0 && p.fCnt == 1 && p.fSum == 2 {
		switch {
		case p.fMin == 3 && p.fMax == 4:
			p.shape = shapeAll
		case p.fMin < 0 && p.fMax == 3 && p.hw == 4:
			p.shape = shapeNoMin
		}
	}
}

// foldShape names the fast plans that foldFast folds with a loop of their
// own: fixed words, no test per word.
type foldShape uint8

const (
	shapeAny   foldShape = iota
	shapeAll             // count of rows, count, sum, min and max of a field: words 0-4
	shapeNoMin           // count of rows, count, sum and max of a field (count, avg, max): words 0-3
)

// foldable reports whether foldFast may fold record r, and the value it
// folds: the plan is fast and r's field holds a number (KindNumber, so check
// has nothing to say) other than zero and NaN. For those two, min and max on
// a count of zero or an equal value would not give add's answer (the first
// of -0 and 0 seen; a first NaN kept), so add folds them.
func (p *aggPlan) foldable(r *Record) (float64, bool) {
	if !p.fast {
		return 0, false
	}
	if p.fastField < 0 {
		return 0, true
	}
	v := &r.Vals[p.fastField]
	x := v.Num
	return x, v.Kind == KindNumber && x == x && x != 0
}

// foldFast folds, for each f of folds in order, the value f.x into slot
// f.slot of st, or, when f.rec >= 0, record recs[f.rec] through add (a value
// foldable refused, or a plan that is not fast). The fast case is a loop
// with no switch and no test of the data, so the accumulator lines of many
// records are fetched at once.
func (p *aggPlan) foldFast(st *accStore, folds []recFold, recs []Record) {
	hot, hw := st.hot, p.hw
	switch p.shape {
	case shapeAll:
		for _, f := range folds {
			if f.rec >= 0 {
				p.add(st, f.slot, &recs[f.rec])
				continue
			}
			b := int(f.slot) * 5
			h, x := (*[5]float64)(hot[b:b+5]), f.x
			h[0]++
			h[1]++
			h[2] += x
			h[3] = min(h[3], x)
			h[4] = max(h[4], x)
		}
		return
	case shapeNoMin:
		for _, f := range folds {
			if f.rec >= 0 {
				p.add(st, f.slot, &recs[f.rec])
				continue
			}
			b := int(f.slot) * 4
			h, x := (*[4]float64)(hot[b:b+4]), f.x
			h[0]++
			h[1]++
			h[2] += x
			h[3] = max(h[3], x)
		}
		return
	}
	rows, cnt, sum, mn, mx := p.fRows, p.fCnt, p.fSum, p.fMin, p.fMax
	for _, f := range folds {
		if f.rec >= 0 {
			p.add(st, f.slot, &recs[f.rec])
			continue
		}
		h := hot[int(f.slot)*hw:][:hw]
		x := f.x
		if rows >= 0 {
			h[rows]++
		}
		if cnt >= 0 {
			h[cnt]++
		}
		if sum >= 0 {
			h[sum] += x
		}
		if mn >= 0 {
			h[mn] = min(h[mn], x)
		}
		if mx >= 0 {
			h[mx] = max(h[mx], x)
		}
	}
}

// recFold is one record to fold into a slot (see foldFast): its value x, or
// its index rec in the batch (-1 when x is given).
type recFold struct {
	x    float64
	slot int32
	rec  int32
}

// check reports a record whose numeric aggregate field holds a non-numeric
// value (nil if the record is fine). The record then goes to the dead-letter
// sink instead of corrupting the accumulators.
func (p *aggPlan) check(in *Schema, r *Record) error {
	for _, f := range p.nums {
		switch r.Vals[f].Kind {
		case KindNull, KindNumber, KindTime, KindBool:
		default:
			return fmt.Errorf("%w: field %q holds a %s, want number", ErrType, in.Field(f).Name, r.Vals[f].Kind)
		}
	}
	return nil
}

func resolveAggs(specs []AggSpec, in *Schema) (*aggPlan, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("no aggregates")
	}
	p := &aggPlan{}
	for i, s := range specs {
		f, ok := aggNames[strings.ToLower(s.Func)]
		if !ok {
			return nil, fmt.Errorf("aggregate %d: unknown function %q", i, s.Func)
		}
		idx := -1
		kind := KindNumber
		if s.Field != "" && s.Field != "*" {
			j, err := in.Lookup(s.Field)
			if err != nil {
				return nil, fmt.Errorf("aggregate %s(%s): %w", s.Func, s.Field, err)
			}
			idx = j
			fk := in.Field(j).Kind
			switch f {
			case AggFirst, AggLast:
				kind = fk
			case AggMin, AggMax:
				if fk == KindTime {
					kind = KindTime
				}
				fallthrough
			case AggSum, AggAvg, AggStddev, AggStddevPop, AggPercentile:
				if fk != KindNumber && fk != KindTime && fk != KindBool {
					return nil, fmt.Errorf("aggregate %s(%s): %w: field is %s, want number", s.Func, s.Field, ErrType, fk)
				}
			}
		} else if f != AggCount {
			return nil, fmt.Errorf("aggregate %s: needs a field", s.Func)
		}
		if f == AggPercentile && (s.Q < 0 || s.Q > 1) {
			return nil, fmt.Errorf("aggregate %s(%s): quantile %v not in [0,1]", s.Func, s.Field, s.Q)
		}
		as := s.As
		if as == "" {
			as = strings.ToLower(s.Func)
			if idx >= 0 {
				as += "_" + s.Field
			}
		}
		p.fn = append(p.fn, f)
		p.field = append(p.field, idx)
		p.addColumn(f, idx)
		p.q = append(p.q, s.Q)
		p.kinds = append(p.kinds, kind)
		// Counts are integers; so are min, max, sum, first and last of an
		// integer field.
		isInt := f == AggCount
		switch f {
		case AggMin, AggMax, AggSum, AggFirst, AggLast:
			isInt = idx >= 0 && in.Integer(idx)
		}
		p.ints = append(p.ints, isInt)
		p.names = append(p.names, as)
		switch f {
		case AggFirst, AggLast, AggPercentile, AggStddev, AggStddevPop:
			p.aux = true
		}
		if idx >= 0 && f != AggCount && f != AggFirst && f != AggLast && !slices.Contains(p.nums, idx) {
			p.nums = append(p.nums, idx)
		}
	}
	p.layout()
	return p, nil
}

// accAux is the cold part of an accumulator: Welford's M2 (b) and the index of
// the accumulator's first/last value or sketch in accStore.ext (-1 if none).
type accAux struct {
	b   float64
	ext int32
}

// accExt holds the parts of accumulators that do not fit in acc.
type accExt struct {
	v  Value
	sk *quantileSketch
}

// accStore holds the accumulators of many groups. The hot part of slot i is
// hot[i*hw:(i+1)*hw] (hw: the plan's words per slot; see aggPlan.hw): its
// counts (float64, exact to 2^53) and values, adjacent, so that folding a
// record touches one or two cache lines. Welford's M2 and the first/last
// values and sketches are cold: aux[i*w:(i+1)*w] (w: the plan's columns),
// allocated only when the plan has such aggregates.
type accStore struct {
	w   int
	hot []float64
	aux []accAux
	ext []accExt
}

func (s *accStore) reset() {
	s.hot = s.hot[:0]
	s.aux = s.aux[:0]
	clear(s.ext)
	s.ext = s.ext[:0]
}

// newSlot appends an empty group (the plan's init words) and returns its
// slot number.
func (s *accStore) newSlot(p *aggPlan) int32 {
	slot := int32(len(s.hot) / p.hw)
	s.hot = append(s.hot, p.init...)
	if !p.aux {
		return slot
	}
	for i := 0; i < s.w; i++ {
		x := accAux{ext: -1}
		switch p.cfn[i] {
		case AggFirst, AggLast:
			x.ext = int32(len(s.ext))
			s.ext = append(s.ext, accExt{})
		case AggPercentile:
			x.ext = int32(len(s.ext))
			s.ext = append(s.ext, accExt{sk: &quantileSketch{}})
		}
		s.aux = append(s.aux, x)
	}
	return slot
}

// clearSlot empties the accumulators of slot, keeping its extension storage.
func clearSlot(p *aggPlan, st *accStore, slot int32) {
	hb := int(slot) * p.hw
	copy(st.hot[hb:hb+p.hw], p.init)
	base := int(slot) * st.w
	if len(st.aux) == 0 {
		return
	}
	for i := base; i < base+st.w; i++ {
		x := &st.aux[i]
		x.b = 0
		if x.ext >= 0 {
			st.ext[x.ext].v = Null
			if sk := st.ext[x.ext].sk; sk != nil {
				sk.b = sk.b[:0]
			}
		}
	}
}

// add folds record r into the accumulators of slot: the values first, from
// the counts before r, then the counts.
func (p *aggPlan) add(st *accStore, slot int32, r *Record) {
	hb := int(slot) * p.hw
	h := st.hot[hb : hb+p.hw]
	for i, f := range p.cfield {
		if f < 0 {
			continue // count(*): a count only
		}
		v := &r.Vals[f]
		if v.Kind == KindNull {
			continue
		}
		x := v.Num
		switch p.cfn[i] {
		case AggSum:
			h[p.val[i]] += x
		case AggMin:
			if k := p.val[i]; h[p.cnt[i]] == 0 || x < h[k] {
				h[k] = x
			}
		case AggMax:
			if k := p.val[i]; h[p.cnt[i]] == 0 || x > h[k] {
				h[k] = x
			}
		case AggFirst:
			if h[p.cnt[i]] == 0 {
				st.ext[st.aux[int(slot)*st.w+i].ext].v = *v
			}
		case AggLast:
			st.ext[st.aux[int(slot)*st.w+i].ext].v = *v
		case AggStddev:
			k := p.val[i]
			d := x - h[k]
			h[k] += d / (h[p.cnt[i]] + 1)
			st.aux[int(slot)*st.w+i].b += d * (x - h[k])
		case AggPercentile:
			st.ext[st.aux[int(slot)*st.w+i].ext].sk.add(x)
		}
	}
	for c, f := range p.cntField {
		if f < 0 || r.Vals[f].Kind != KindNull {
			h[c]++
		}
	}
}

// merge folds the partial of src slot ss (a later one) into dst slot ds (an
// earlier one): the values first, from the counts before, then the counts.
func (p *aggPlan) merge(dst *accStore, ds int32, src *accStore, ss int32) {
	dh, sh := dst.hot[int(ds)*p.hw:][:p.hw], src.hot[int(ss)*p.hw:][:p.hw]
	db, sb := int(ds)*dst.w, int(ss)*src.w
	for i := 0; i < dst.w; i++ {
		c, k := p.cnt[i], p.val[i]
		sn := sh[c]
		if sn == 0 {
			continue
		}
		dn := dh[c]
		switch p.cfn[i] {
		case AggSum:
			dh[k] += sh[k]
		case AggMin:
			if dn == 0 || sh[k] < dh[k] {
				dh[k] = sh[k]
			}
		case AggMax:
			if dn == 0 || sh[k] > dh[k] {
				dh[k] = sh[k]
			}
		case AggFirst:
			if dn == 0 {
				dst.ext[dst.aux[db+i].ext].v = src.ext[src.aux[sb+i].ext].v
			}
		case AggLast:
			dst.ext[dst.aux[db+i].ext].v = src.ext[src.aux[sb+i].ext].v
		case AggStddev:
			dx, sx := &dst.aux[db+i], &src.aux[sb+i]
			if dn == 0 {
				dh[k], dx.b = sh[k], sx.b
			} else {
				n := dn + sn
				delta := sh[k] - dh[k]
				dx.b += sx.b + delta*delta*dn*sn/n
				dh[k] += delta * sn / n
			}
		case AggPercentile:
			dst.ext[dst.aux[db+i].ext].sk.merge(src.ext[src.aux[sb+i].ext].sk)
		}
	}
	for c := range p.cntField {
		dh[c] += sh[c]
	}
}

// result returns the value of aggregate i of slot.
func (p *aggPlan) result(i int, st *accStore, slot int32) Value {
	c := p.col[i]
	k := int(slot)*st.w + c
	h := st.hot[int(slot)*p.hw:][:p.hw]
	n := h[p.cnt[c]]
	var a float64
	if j := p.val[c]; j >= 0 {
		a = h[j]
	}
	switch p.fn[i] {
	case AggCount:
		return Number(n)
	}
	if n == 0 {
		if p.fn[i] == AggSum {
			return Number(0)
		}
		return Null
	}
	switch p.fn[i] {
	case AggSum:
		return Number(a)
	case AggMin, AggMax:
		return Value{Kind: p.kinds[i], Num: a}
	case AggAvg:
		return Number(a / n)
	case AggFirst, AggLast:
		return st.ext[st.aux[k].ext].v
	case AggStddev:
		if n < 2 {
			return Null
		}
		return Number(math.Sqrt(st.aux[k].b / (n - 1)))
	case AggStddevPop:
		return Number(math.Sqrt(st.aux[k].b / n))
	case AggPercentile:
		return Number(st.ext[st.aux[k].ext].sk.quantile(p.q[i]))
	}
	return Null
}

// fill writes the results of slot, one per aggregate, into dst, whose values
// must be null (as Batch.Append returns them): the same values as result, but
// numeric results set only Kind and Num, so emitting a row copies no string
// or list headers for them.
func (p *aggPlan) fill(dst []Value, st *accStore, slot int32) {
	h := st.hot[int(slot)*p.hw:][:p.hw]
	if p.hotAggs != nil {
		dst = dst[:len(p.hotAggs)]
		for i, a := range p.hotAggs {
			v, n := &dst[i], h[a.cnt]
			switch a.fn {
			case AggCount:
				v.Kind, v.Num = KindNumber, n
			case AggSum:
				v.Kind = KindNumber
				if n != 0 {
					v.Num = h[a.val]
				}
			case AggMin, AggMax:
				if n != 0 {
					v.Kind, v.Num = a.kind, h[a.val]
				}
			case AggAvg:
				if n != 0 {
					v.Kind, v.Num = KindNumber, h[a.val]/n
				}
			}
		}
		return
	}
	dst = dst[:len(p.fn)]
	for i := range dst {
		c, v := p.col[i], &dst[i]
		n := h[p.cnt[c]]
		switch p.fn[i] {
		case AggCount:
			v.Kind, v.Num = KindNumber, n
		case AggSum:
			v.Kind = KindNumber
			if n != 0 {
				v.Num = h[p.val[c]]
			}
		case AggMin, AggMax:
			if n != 0 {
				v.Kind, v.Num = p.kinds[i], h[p.val[c]]
			}
		case AggAvg:
			if n != 0 {
				v.Kind, v.Num = KindNumber, h[p.val[c]]/n
			}
		default:
			*v = p.result(i, st, slot)
		}
	}
}

// appendAccs encodes the accumulators of one group for state: per aggregate
// the count, then (when non-zero and the function keeps one) the raw float64
// of a, of M2 for stddev, and the first/last value or the sketch.
func (p *aggPlan) appendAccs(dst []byte, st *accStore, slot int32) []byte {
	base := int(slot) * st.w
	h := st.hot[int(slot)*p.hw:][:p.hw]
	if p.hotAggs != nil {
		// The same bytes, read through hotAggs; a count below 64 is one
		// byte of varint (zigzag: 2n).
		for _, a := range p.hotAggs {
			n := h[a.cnt]
			if n < 64 {
				dst = append(dst, byte(n)<<1)
			} else {
				dst = binary.AppendVarint(dst, int64(n))
			}
			if n != 0 && a.val >= 0 {
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(h[a.val]))
			}
		}
		return dst
	}
	for i := range p.fn {
		c := p.col[i]
		k := base + c
		n := int64(h[p.cnt[c]])
		dst = binary.AppendVarint(dst, n)
		if n == 0 {
			continue
		}
		switch p.fn[i] {
		case AggCount:
		case AggSum, AggAvg, AggMin, AggMax:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(h[p.val[c]]))
		case AggStddev, AggStddevPop:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(h[p.val[c]]))
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.aux[k].b))
		case AggFirst, AggLast:
			dst = AppendValue(dst, st.ext[st.aux[k].ext].v)
		case AggPercentile:
			dst = st.ext[st.aux[k].ext].sk.appendTo(dst)
		}
	}
	return dst
}

// readAccs decodes accumulators written by appendAccs into a fresh slot.
func (p *aggPlan) readAccs(b []byte, st *accStore, slot int32) ([]byte, error) {
	base := int(slot) * st.w
	h := st.hot[int(slot)*p.hw:][:p.hw]
	for i := range p.fn {
		c := p.col[i]
		k := base + c
		var n int64
		var err error
		if n, b, err = ReadVarint(b); err != nil {
			return nil, err
		}
		h[p.cnt[c]] = float64(n)
		if n == 0 {
			continue
		}
		switch p.fn[i] {
		case AggCount:
		case AggSum, AggAvg, AggMin, AggMax:
			if h[p.val[c]], b, err = readF64(b); err != nil {
				return nil, err
			}
		case AggStddev, AggStddevPop:
			if h[p.val[c]], b, err = readF64(b); err != nil {
				return nil, err
			}
			if st.aux[k].b, b, err = readF64(b); err != nil {
				return nil, err
			}
		case AggFirst, AggLast:
			var v Value
			if v, b, err = ReadValue(b); err != nil {
				return nil, err
			}
			st.ext[st.aux[k].ext].v = v
		case AggPercentile:
			if b, err = st.ext[st.aux[k].ext].sk.read(b); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// quantileSketch is a small mergeable quantile sketch: a log-bucket histogram
// (DDSketch-style) with gamma = 1.04, so every value is represented by a bucket
// whose midpoint is within 2% relative error of it. It keeps at most
// sketchMaxBuckets buckets; beyond that the lowest-magnitude buckets of the
// same sign are collapsed, which only degrades the accuracy of the lowest
// quantiles. Zero has its own bucket.
type quantileSketch struct {
	b []sketchBucket // sorted by key
}

type sketchBucket struct {
	key int32 // sign * (index+1); 0 is the zero bucket
	n   uint32
}

const (
	sketchGamma      = 1.04
	sketchMaxBuckets = 256
)

var sketchLogGamma = math.Log(sketchGamma)

func sketchKey(x float64) int32 {
	if x == 0 || math.IsNaN(x) {
		return 0
	}
	ax := math.Abs(x)
	k := int32(math.Ceil(math.Log(ax)/sketchLogGamma)) + 1<<20 // keep positive
	if k < 1 {
		k = 1
	}
	if x < 0 {
		return -k
	}
	return k
}

func sketchValue(key int32) float64 {
	if key == 0 {
		return 0
	}
	k := key
	if k < 0 {
		k = -k
	}
	i := float64(k - 1<<20)
	v := 2 * math.Pow(sketchGamma, i) / (1 + sketchGamma) // bucket (g^(i-1), g^i] midpoint in relative terms
	if key < 0 {
		return -v
	}
	return v
}

func (s *quantileSketch) addN(key int32, n uint32) {
	i := sort.Search(len(s.b), func(i int) bool { return s.b[i].key >= key })
	if i < len(s.b) && s.b[i].key == key {
		s.b[i].n += n
		return
	}
	s.b = append(s.b, sketchBucket{})
	copy(s.b[i+1:], s.b[i:])
	s.b[i] = sketchBucket{key, n}
	if len(s.b) > sketchMaxBuckets {
		// collapse the two buckets nearest to zero magnitude on the positive side,
		// or the negative side if there is no positive pair.
		j := sort.Search(len(s.b), func(i int) bool { return s.b[i].key > 0 })
		if j+1 < len(s.b) {
			s.b[j+1].n += s.b[j].n
			s.b = append(s.b[:j], s.b[j+1:]...)
		} else {
			s.b[len(s.b)-2].n += s.b[len(s.b)-1].n
			s.b = s.b[:len(s.b)-1]
		}
	}
}

func (s *quantileSketch) add(x float64) { s.addN(sketchKey(x), 1) }

func (s *quantileSketch) merge(o *quantileSketch) {
	for _, b := range o.b {
		s.addN(b.key, b.n)
	}
}

// quantile returns the approximate q-quantile (nearest rank), NaN when empty.
func (s *quantileSketch) quantile(q float64) float64 {
	var total uint64
	for _, b := range s.b {
		total += uint64(b.n)
	}
	if total == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	var c uint64
	for _, b := range s.b {
		c += uint64(b.n)
		if c >= rank {
			return sketchValue(b.key)
		}
	}
	return sketchValue(s.b[len(s.b)-1].key)
}

func (s *quantileSketch) appendTo(dst []byte) []byte {
	dst = AppendVarint(dst, int64(len(s.b)))
	for _, b := range s.b {
		dst = AppendVarint(dst, int64(b.key))
		dst = AppendVarint(dst, int64(b.n))
	}
	return dst
}

func (s *quantileSketch) read(b []byte) ([]byte, error) {
	n, b, err := ReadVarint(b)
	if err != nil || n < 0 || n > sketchMaxBuckets {
		return nil, ErrCorruptState
	}
	s.b = s.b[:0]
	for i := int64(0); i < n; i++ {
		var k, c int64
		if k, b, err = ReadVarint(b); err != nil {
			return nil, err
		}
		if c, b, err = ReadVarint(b); err != nil {
			return nil, err
		}
		s.b = append(s.b, sketchBucket{int32(k), uint32(c)})
	}
	return b, nil
}
