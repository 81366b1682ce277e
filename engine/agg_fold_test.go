package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFoldFastMatchesAdd protects the fast fold of counts, sums, minimums
// and maximums: folding records the way Process does (foldable deciding,
// foldFast folding) must leave every accumulator word bit-identical to add
// alone, in the same order, whatever the values: nulls, zeros of either
// sign in either order, NaN (first or later), infinities. A fast path that
// folded -0 after 0 with the builtin min, or a first NaN, would differ. (A
// NaN minimum stays NaN either way; its payload bits may differ, so NaN
// words compare as equal.)
func TestFoldFastMatchesAdd(t *testing.T) {
	s := MustSchema(Field{"k", KindString}, Field{"temp", KindNumber}, Field{"w", KindNumber})
	specials := []Value{Null, Number(0), Number(math.Copysign(0, -1)), Number(math.NaN()),
		Number(math.Inf(1)), Number(math.Inf(-1)), Number(1), Number(-1)}
	for _, c := range []struct {
		name  string
		aggs  []AggSpec
		fast  bool
		shape foldShape
	}{
		{"bench", benchAggs, true, shapeAll},
		{"max min avg count, any order", []AggSpec{{Func: "max", Field: "temp", As: "max"}, {Func: "min", Field: "temp", As: "min"},
			{Func: "avg", Field: "temp", As: "avg"}, {Func: "count", As: "n"}}, true, shapeAll},
		{"count avg max", []AggSpec{{Func: "count", As: "n"}, {Func: "avg", Field: "temp", As: "avg"}, {Func: "max", Field: "temp", As: "max"}}, true, shapeNoMin},
		{"rows only", []AggSpec{{Func: "count", As: "n"}}, true, shapeAny},
		{"min only", []AggSpec{{Func: "min", Field: "temp", As: "min"}}, true, shapeAny},
		{"max and count of field", []AggSpec{{Func: "max", Field: "temp", As: "max"}, {Func: "count", Field: "temp", As: "n"}}, true, shapeAny},
		{"two fields", []AggSpec{{Func: "max", Field: "temp", As: "max"}, {Func: "min", Field: "w", As: "min"}}, false, shapeAny},
		{"stddev", []AggSpec{{Func: "count", As: "n"}, {Func: "stddev", Field: "temp", As: "sd"}}, false, shapeAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := resolveAggs(c.aggs, s)
			if err != nil {
				t.Fatal(err)
			}
			if p.fast != c.fast || p.shape != c.shape {
				t.Fatalf("fast = %v, shape %d; want %v, %d", p.fast, p.shape, c.fast, c.shape)
			}
			seed := uint64(7)
			rng := rand.New(rand.NewPCG(seed, seed))
			const slots = 4
			for round := range 200 {
				recs := make([]Record, 40)
				for i := range recs {
					v := Number(float64(rng.IntN(5) - 2))
					if rng.IntN(3) == 0 {
						v = specials[rng.IntN(len(specials))]
					}
					recs[i].Vals = []Value{String("a"), v, Number(rng.Float64())}
				}
				want, got := accStore{w: p.ncol()}, accStore{w: p.ncol()}
				for range slots {
					want.newSlot(p)
					got.newSlot(p)
				}
				folds := make([]recFold, len(recs))
				for i := range recs {
					s := int32(rng.IntN(slots))
					p.add(&want, s, &recs[i])
					folds[i] = recFold{slot: s, rec: -1}
					var ok bool
					if folds[i].x, ok = p.foldable(&recs[i]); !ok {
						folds[i].rec = int32(i)
					}
				}
				p.foldFast(&got, folds, recs)
				for i := range want.hot {
					g, w := got.hot[i], want.hot[i]
					if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
						t.Fatalf("seed %d round %d: word %d (slot %d) = %v, add gives %v", seed, round, i, i/p.hw, got.hot[i], want.hot[i])
					}
				}
				for i := range want.aux {
					if math.Float64bits(got.aux[i].b) != math.Float64bits(want.aux[i].b) {
						t.Fatalf("seed %d round %d: aux %d = %v, add gives %v", seed, round, i, got.aux[i].b, want.aux[i].b)
					}
				}
			}
		})
	}
}

// TestHotAggsEncodeAndFillLikeTheGeneralPath protects the paths of fill and
// appendAccs for plans without cold parts (aggPlan.hotAggs): the stored
// bytes and the output values must be those of the general loop, for groups
// with no value, counts below and above 64 (one and two bytes of varint),
// nulls, and the aggregates in any order; and the bytes must read back.
func TestHotAggsEncodeAndFillLikeTheGeneralPath(t *testing.T) {
	s := MustSchema(Field{"k", KindString}, Field{"temp", KindNumber}, Field{"w", KindTime})
	for _, aggs := range [][]AggSpec{
		benchAggs,
		{{Func: "avg", Field: "temp", As: "avg"}, {Func: "count", As: "n"}, {Func: "max", Field: "w", As: "wmax"},
			{Func: "count", Field: "temp", As: "nt"}, {Func: "min", Field: "temp", As: "min"}},
	} {
		p, err := resolveAggs(aggs, s)
		if err != nil {
			t.Fatal(err)
		}
		if p.hotAggs == nil {
			t.Fatal("a plan of counts, sums, averages, minimums and maximums has no hotAggs")
		}
		general := *p
		general.hotAggs = nil
		rng := rand.New(rand.NewPCG(3, 3))
		st := accStore{w: p.ncol()}
		for _, n := range []int{0, 1, 5, 63, 64, 65, 200} {
			slot := st.newSlot(p)
			for range n {
				r := &Record{Vals: []Value{String("a"), Number(float64(rng.IntN(100)) - 50), {Kind: KindTime, Num: float64(rng.IntN(1000))}}}
				if rng.IntN(4) == 0 {
					r.Vals[1] = Null
				}
				p.add(&st, slot, r)
			}
			got, want := p.appendAccs(nil, &st, slot), general.appendAccs(nil, &st, slot)
			if string(got) != string(want) {
				t.Fatalf("%d values: stored %x, general path %x", n, got, want)
			}
			back := accStore{w: p.ncol()}
			bs := back.newSlot(p)
			if rest, err := p.readAccs(got, &back, bs); err != nil || len(rest) != 0 {
				t.Fatalf("%d values: read back: %v, %d bytes left", n, err, len(rest))
			}
			gv, wv := make([]Value, len(aggs)), make([]Value, len(aggs))
			p.fill(gv, &back, bs)
			general.fill(wv, &st, slot)
			for i := range gv {
				if gv[i] != wv[i] {
					t.Fatalf("%d values: %s = %+v, general path %+v", n, aggs[i].As, gv[i], wv[i])
				}
			}
		}
	}
}
