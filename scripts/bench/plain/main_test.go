package main

import "testing"

// TestWindowsEmitEachOnceWhenTheWatermarkPasses: a window is emitted once,
// with its count, average and maximum, when the largest event time is 2 s
// past its end; a reading for a window already emitted is dropped.
func TestWindowsEmitEachOnceWhenTheWatermarkPasses(t *testing.T) {
	var got []agg
	w := newWindows(func(a *agg) { got = append(got, *a) })
	w.add("s1", 1000, 20)
	w.add("s1", 1500, 22)
	w.add("s2", 1999, 30)
	w.add("s1", 2500, 10)
	w.add("s1", 3999, 10) // watermark 1999: nothing ends at or before it but [0,1000)
	if len(got) != 0 {
		t.Fatalf("emitted %v before the watermark passed the windows' end", got)
	}
	w.add("s1", 4000, 10) // watermark 2000: [1000,2000) closes for s1 and s2
	if len(got) != 2 {
		t.Fatalf("got %d outputs, want 2: %v", len(got), got)
	}
	for _, a := range got {
		switch a.sensor {
		case "s1":
			if a.start != 1000 || a.n != 2 || a.sum/float64(a.n) != 21 || a.maxed != 22 {
				t.Errorf("s1 window = %+v, want start 1000, n 2, avg 21, max 22", a)
			}
		case "s2":
			if a.start != 1000 || a.n != 1 || a.maxed != 30 {
				t.Errorf("s2 window = %+v, want start 1000, n 1, max 30", a)
			}
		}
	}
	w.add("s2", 1200, 99) // its window was emitted
	if w.late != 1 || len(got) != 2 {
		t.Errorf("late = %d, outputs = %d; want the late reading dropped and counted", w.late, len(got))
	}
}
