package decode

import (
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// TestIntegerFieldRejectsFractions: a field declared int takes integral
// numbers (also as text) and makes a record with a fraction a decode error
// naming the field, so it is a dead letter at the source rather than a
// non-integer in an INT64 column downstream.
func TestIntegerFieldRejectsFractions(t *testing.T) {
	s, err := engine.MustSchema(engine.Field{Name: "seq", Kind: engine.KindNumber}, engine.Field{Name: "v", Kind: engine.KindNumber}).WithIntegers("seq")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewJSON(DefaultConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, err string
	}{
		{`{"seq":12,"v":1.5}`, ""},
		{`{"seq":"13","v":1}`, ""},
		{`{"seq":1e3}`, ""},
		{`{"seq":12.5}`, `want an integer, got 12.5`},
		{`{"seq":"7.25"}`, `want an integer, got 7.25`},
	} {
		b := engine.NewBatch(s)
		err := d.Decode([]byte(tc.in), b)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v; want no error", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "seq")):
			t.Errorf("%s: error %v; want one naming seq and containing %q", tc.in, err, tc.err)
		}
	}
}
