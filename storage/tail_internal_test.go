package storage

import "testing"

// A frame the tail drops is unreachable from it: no stale copy of it stays
// in the tail's array beyond the slice's length, where it would keep the
// frame's body from being collected. Many small frames followed by large
// ones (a burst of small batches, then large ones) left up to another
// TailBytes of dropped bodies there.
func TestTailKeepsNoDroppedFrame(t *testing.T) {
	x := &DB{opt: Options{TailBytes: 1 << 20}, tails: map[string]*logTail{}}
	src := &logSource{name: "s"}
	next := uint64(0)
	add := func(size int) {
		src.txFirst, src.txN, src.txRaw = next, 1, make([]byte, size)
		next++
		x.tailAdd(src)
	}
	check := func(when string) {
		t.Helper()
		tl := x.tails["s"]
		held := map[*byte]bool{}
		bytes := 0
		for _, f := range tl.frames {
			held[&f.body[0]] = true
			bytes += len(f.body)
		}
		if bytes != tl.bytes || bytes > x.opt.TailBytes {
			t.Fatalf("%s: the tail counts %d bytes, holds %d, budget %d", when, tl.bytes, bytes, x.opt.TailBytes)
		}
		for i, f := range tl.frames[len(tl.frames):cap(tl.frames)] {
			if f.body != nil && !held[&f.body[0]] {
				t.Fatalf("%s: slot %d beyond the tail's %d frames holds dropped frame %d (%d bytes)", when, len(tl.frames)+i, len(tl.frames), f.first, len(f.body))
			}
		}
	}
	for range 100 {
		add(10 << 10)
	}
	check("after 100 small frames")
	for i := range 10 {
		add(400 << 10)
		check("after large frame " + string(rune('0'+i)))
	}
	x.tailDrop("s", next-1)
	check("after a truncation")
}
