package engine

import (
	"testing"
	"unsafe"
)

// TestValueIsFortyBytes protects the memory layout that batches, records and
// the aggregate path rely on: a Value holds a list behind a pointer, so a
// field costs 40 bytes, not the 56 of an inline slice header.
func TestValueIsFortyBytes(t *testing.T) {
	if n := unsafe.Sizeof(Value{}); n > 40 {
		t.Fatalf("Value is %d bytes, want at most 40", n)
	}
}

// TestListValueRoundTrips checks that a list built with List reads back with
// Items, through the state codec, and compares and prints by its elements.
func TestListValueRoundTrips(t *testing.T) {
	l := List(Number(1), String("x"), Null)
	if got := l.Items(); len(got) != 3 || got[1].Str != "x" {
		t.Fatalf("Items = %v", got)
	}
	b := AppendValue(nil, l)
	back, rest, err := ReadValue(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("ReadValue: %v, %d bytes left", err, len(rest))
	}
	if !back.Equal(l) || Compare(back, l) != 0 || back.String() != "[1,x,null]" {
		t.Fatalf("round trip gave %v, want %v", back, l)
	}
	if Number(1).Items() != nil {
		t.Fatal("a number has items")
	}
}
