package mesh

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPipelineVersionsConvergeWhateverTheOrder: members that learn the same
// versions of a pipeline in any order (applies on several members, a
// deletion, concurrent applies of different content at the same version)
// all end with the same one, the greatest by (version, hash, node).
func TestPipelineVersionsConvergeWhateverTheOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	base := PipelineVersion{}.Next("p", "a", []byte("one"))
	a2 := base.Next("p", "a", []byte("two"))
	b2 := base.Next("p", "b", []byte("other two"))
	c2 := base.Next("p", "c", nil) // a concurrent deletion
	b3 := b2.Next("p", "b", []byte("three"))
	all := []PipelineVersion{base, a2, b2, c2, b3}
	want := b3
	for range 200 {
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		cur := all[0]
		for _, v := range all[1:] {
			if v.Beats(cur) {
				cur = v
			}
		}
		if cur.Compare(want) != 0 {
			t.Fatalf("order %v ends at %s; want %s", all, cur, want)
		}
	}
	// Same version: the hash decides, and an update beats a deletion.
	if !a2.Beats(c2) || !b2.Beats(c2) {
		t.Errorf("a deletion beats a concurrent update: %s vs %s, %s", c2, a2, b2)
	}
	if a2.Beats(b2) == b2.Beats(a2) {
		t.Errorf("%s and %s: not exactly one wins", a2, b2)
	}
}

// TestPipelineVersionIncludesTellsUpdateFromConflict: a version made on
// top of another includes it (an update, nothing to report); one made
// concurrently does not (the other lost a conflict).
func TestPipelineVersionIncludesTellsUpdateFromConflict(t *testing.T) {
	v1 := PipelineVersion{}.Next("p", "a", []byte("one"))
	v2 := v1.Next("p", "b", []byte("two"))
	v3 := v2.Next("p", "a", nil)
	if !v2.Includes(v1) || !v3.Includes(v1) || !v3.Includes(v2) {
		t.Errorf("a later version does not include its history: %v %v %v", v1.Clock, v2.Clock, v3.Clock)
	}
	x := v1.Next("p", "c", []byte("concurrent"))
	if v3.Includes(x) || x.Includes(v2) {
		t.Errorf("concurrent versions include each other: %v vs %v", v3.Clock, x.Clock)
	}
	if v1.Clock["b"] != 0 {
		t.Errorf("Next changed the version it was made from: %v", v1.Clock)
	}
}

func TestPipelineDigest(t *testing.T) {
	p := PipelineVersion{}.Next("p", "a", []byte("one"))
	q := PipelineVersion{}.Next("q", "b", []byte("two"))
	if PipelineDigest(nil) != "" {
		t.Errorf("empty set: digest %q", PipelineDigest(nil))
	}
	d := PipelineDigest([]PipelineVersion{p, q})
	if d != PipelineDigest([]PipelineVersion{q, p}) {
		t.Error("digest depends on the order of the set")
	}
	pc := p
	pc.Clock = map[string]uint64{"z": 9}
	if d != PipelineDigest([]PipelineVersion{pc, q}) {
		t.Error("digest depends on the clocks, which decide nothing")
	}
	for _, other := range [][]PipelineVersion{
		{p, q.Next("q", "b", []byte("three"))},
		{p, q.Next("q", "b", nil)},
		{p},
		{p, PipelineVersion{}.Next("q", "c", []byte("two"))},
	} {
		if PipelineDigest(other) == d {
			t.Errorf("set %v has the digest of another set", other)
		}
	}
	if len(d) != 16 {
		t.Errorf("digest %q: want 16 hex digits (it travels in 512 bytes of metadata)", d)
	}
}
