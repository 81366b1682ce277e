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
	return p, nil
}

// acc is the hot part of the accumulator of one aggregate for one group: n
// counts values; a is the sum, min, max or Welford mean. It is 16 bytes so
// that the accumulators of a group share few cache lines. Welford's M2 and
// the first/last values and sketches live in accAux, allocated only when the
// plan has such aggregates.
type acc struct {
	n int64
	a float64
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

// accStore holds the accumulators of many groups: slot i uses accs[i*w:(i+1)*w]
// (and aux[i*w:(i+1)*w] when the plan needs aux).
type accStore struct {
	w    int
	accs []acc
	aux  []accAux
	ext  []accExt
}

func (s *accStore) reset() {
	s.accs = s.accs[:0]
	s.aux = s.aux[:0]
	clear(s.ext)
	s.ext = s.ext[:0]
}

// newSlot appends a zeroed group and returns its slot number.
func (s *accStore) newSlot(p *aggPlan) int32 {
	slot := int32(len(s.accs) / s.w)
	for i := 0; i < s.w; i++ {
		s.accs = append(s.accs, acc{})
		if p.aux {
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
	}
	return slot
}

// clearSlot zeroes the accumulators of slot, keeping its extension storage.
func clearSlot(st *accStore, slot int32) {
	base := int(slot) * st.w
	clear(st.accs[base : base+st.w])
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

// add folds record r into the accumulators of slot.
func (p *aggPlan) add(st *accStore, slot int32, r *Record) {
	base := int(slot) * st.w
	accs := st.accs[base : base+st.w]
	for i := range accs {
		a := &accs[i]
		f := p.cfield[i]
		if f < 0 {
			a.n++
			continue
		}
		v := &r.Vals[f]
		if v.Kind == KindNull {
			continue
		}
		x := v.Num
		switch p.cfn[i] {
		case AggCount:
			a.n++
		case AggSum, AggAvg:
			a.n++
			a.a += x
		case AggMin:
			if a.n == 0 || x < a.a {
				a.a = x
			}
			a.n++
		case AggMax:
			if a.n == 0 || x > a.a {
				a.a = x
			}
			a.n++
		case AggFirst:
			if a.n == 0 {
				st.ext[st.aux[base+i].ext].v = *v
			}
			a.n++
		case AggLast:
			st.ext[st.aux[base+i].ext].v = *v
			a.n++
		case AggStddev, AggStddevPop:
			a.n++
			d := x - a.a
			a.a += d / float64(a.n)
			st.aux[base+i].b += d * (x - a.a)
		case AggPercentile:
			a.n++
			st.ext[st.aux[base+i].ext].sk.add(x)
		}
	}
}

// merge folds the partial of src slot ss (a later one) into dst slot ds (an
// earlier one).
func (p *aggPlan) merge(dst *accStore, ds int32, src *accStore, ss int32) {
	db, sb := int(ds)*dst.w, int(ss)*src.w
	for i := 0; i < dst.w; i++ {
		d, s := &dst.accs[db+i], &src.accs[sb+i]
		if s.n == 0 {
			continue
		}
		switch p.cfn[i] {
		case AggCount:
		case AggSum, AggAvg:
			d.a += s.a
		case AggMin:
			if d.n == 0 || s.a < d.a {
				d.a = s.a
			}
		case AggMax:
			if d.n == 0 || s.a > d.a {
				d.a = s.a
			}
		case AggFirst:
			if d.n == 0 {
				dst.ext[dst.aux[db+i].ext].v = src.ext[src.aux[sb+i].ext].v
			}
		case AggLast:
			dst.ext[dst.aux[db+i].ext].v = src.ext[src.aux[sb+i].ext].v
		case AggStddev, AggStddevPop:
			dx, sx := &dst.aux[db+i], &src.aux[sb+i]
			if d.n == 0 {
				d.a, dx.b = s.a, sx.b
			} else {
				n := float64(d.n + s.n)
				delta := s.a - d.a
				dx.b += sx.b + delta*delta*float64(d.n)*float64(s.n)/n
				d.a += delta * float64(s.n) / n
			}
		case AggPercentile:
			dst.ext[dst.aux[db+i].ext].sk.merge(src.ext[src.aux[sb+i].ext].sk)
		}
		d.n += s.n
	}
}

// subtract removes the partial of src slot ss from dst slot ds in place and
// reports whether the result is exact; false means dst must be recomputed.
func (p *aggPlan) subtract(dst *accStore, ds int32, src *accStore, ss int32) bool {
	ok := true
	db, sb := int(ds)*dst.w, int(ss)*src.w
	for i := 0; i < dst.w; i++ {
		d, s := &dst.accs[db+i], &src.accs[sb+i]
		if s.n == 0 {
			continue
		}
		n := d.n - s.n
		switch p.cfn[i] {
		case AggCount:
		case AggSum, AggAvg:
			d.a -= s.a
			if n == 0 {
				d.a = 0
			}
		case AggStddev, AggStddevPop:
			dx, sx := &dst.aux[db+i], &src.aux[sb+i]
			if n == 0 {
				d.a, dx.b = 0, 0
			} else {
				total := float64(d.n)
				m1 := (total*d.a - float64(s.n)*s.a) / float64(n)
				delta := s.a - m1
				dx.b -= sx.b + delta*delta*float64(n)*float64(s.n)/total
				if dx.b < 0 {
					dx.b = 0
				}
				d.a = m1
			}
		case AggMin, AggMax:
			if s.a == d.a || math.IsNaN(s.a) {
				ok = false
			}
		case AggLast:
		default: // first, percentile
			ok = false
		}
		d.n = n
	}
	return ok
}

// result returns the value of aggregate i of slot.
func (p *aggPlan) result(i int, st *accStore, slot int32) Value {
	k := int(slot)*st.w + p.col[i]
	a := &st.accs[k]
	switch p.fn[i] {
	case AggCount:
		return Int(a.n)
	}
	if a.n == 0 {
		if p.fn[i] == AggSum {
			return Number(0)
		}
		return Null
	}
	switch p.fn[i] {
	case AggSum:
		return Number(a.a)
	case AggMin, AggMax:
		return Value{Kind: p.kinds[i], Num: a.a}
	case AggAvg:
		return Number(a.a / float64(a.n))
	case AggFirst, AggLast:
		return st.ext[st.aux[k].ext].v
	case AggStddev:
		if a.n < 2 {
			return Null
		}
		return Number(math.Sqrt(st.aux[k].b / float64(a.n-1)))
	case AggStddevPop:
		return Number(math.Sqrt(st.aux[k].b / float64(a.n)))
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
	base := int(slot) * st.w
	accs := st.accs[base : base+st.w]
	dst = dst[:len(p.fn)]
	for i := range dst {
		a, v := &accs[p.col[i]], &dst[i]
		switch p.fn[i] {
		case AggCount:
			v.Kind, v.Num = KindNumber, float64(a.n)
		case AggSum:
			v.Kind = KindNumber
			if a.n != 0 {
				v.Num = a.a
			}
		case AggMin, AggMax:
			if a.n != 0 {
				v.Kind, v.Num = p.kinds[i], a.a
			}
		case AggAvg:
			if a.n != 0 {
				v.Kind, v.Num = KindNumber, a.a/float64(a.n)
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
	for i := range p.fn {
		k := base + p.col[i]
		a := &st.accs[k]
		dst = binary.AppendVarint(dst, a.n)
		if a.n == 0 {
			continue
		}
		switch p.fn[i] {
		case AggCount:
		case AggSum, AggAvg, AggMin, AggMax:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.a))
		case AggStddev, AggStddevPop:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.a))
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
	for i := range p.fn {
		k := base + p.col[i]
		a := &st.accs[k]
		var err error
		if a.n, b, err = ReadVarint(b); err != nil {
			return nil, err
		}
		if a.n == 0 {
			continue
		}
		switch p.fn[i] {
		case AggCount:
		case AggSum, AggAvg, AggMin, AggMax:
			if a.a, b, err = readF64(b); err != nil {
				return nil, err
			}
		case AggStddev, AggStddevPop:
			if a.a, b, err = readF64(b); err != nil {
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
