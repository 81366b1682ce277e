package conformance

import "testing"

// runDStream is replaced by the real translation of this vector kind.
func runDStream(t *testing.T, v *Vector) { t.Fatalf("kind %s: runner not written yet", v.Kind) }
