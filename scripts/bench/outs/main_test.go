package main

import (
	"fmt"
	"testing"
)

// TestTallyLeavesOutTheFinalsWindows: the sliding part's outputs as edged
// publishes them (a 60 s window sliding by 1 s, 10 readings per sensor per
// second) followed by the windows of the finals that edged's idle rule closes
// once the input stopped, with n = 1 each, and a copy of an output delivered
// twice. The sum is the data's readings times 60, and the finals' windows are
// counted apart: counted in the sum they made a correct run fail as
// "counted twice" (60,003,426 for 60,000,000 at a million readings).
func TestTallyLeavesOutTheFinalsWindows(t *testing.T) {
	const (
		base    = int64(1_767_225_600_000)
		sensors = 3
		seconds = 5  // of data, 10 readings per sensor each
		size    = 60 // window size in seconds
	)
	finals := base + (seconds-1)*1000 + 3_600_000
	tl := newTally(finals)
	payload := func(start int64, s, n int) []byte {
		return fmt.Appendf(nil, `{"_id":"bench/0/1/%d/%d","sensor":"s%04d","window_start":%d,"window_end":%d,"n":%d,"avg_temp":24.95,"max_temp":29.9}`,
			start, s, s, start, start+size*1000, n)
	}
	const readings = seconds * 10 * sensors
	data := 0
	// Data windows start from 59 s before the first reading to the last second.
	for w := -(size - 1); w < seconds; w++ {
		start := base + int64(w)*1000
		secs := min(w+size, seconds) - max(w, 0) // seconds of data the window covers
		for s := range sensors {
			if !tl.add(payload(start, s, 10*secs)) {
				t.Fatalf("data window %d of s%04d not counted", w, s)
			}
			data++
		}
	}
	if tl.add(payload(base, 1, 10*seconds)) {
		t.Fatal("an output delivered twice under the same id was counted again")
	}
	// The finals' windows: each final reading falls into 60 windows.
	for w := range size {
		start := finals - int64(size-1-w)*1000
		for s := range sensors {
			if tl.add(payload(start, s, 1)) {
				t.Fatalf("window at %d holding the final of s%04d counted as data", start, s)
			}
		}
	}
	if want := int64(readings * size); tl.sum != want {
		t.Errorf("sum = %d, want %d (readings x %d windows each)", tl.sum, want, size)
	}
	if tl.outputs != int64(data) || tl.finalOutputs != size*sensors || tl.dupOutputs != 1 || tl.bad != 0 {
		t.Errorf("outputs %d finals %d dups %d bad %d, want %d %d 1 0",
			tl.outputs, tl.finalOutputs, tl.dupOutputs, tl.bad, data, size*sensors)
	}
}
