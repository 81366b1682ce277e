package sink

import "testing"

// BenchmarkTopicRender: an mqtt sink's topic for one window output
// (out/{sensor}), by the scanner (scan) and through encoding/json (json,
// the way it was).
func BenchmarkTopicRender(b *testing.B) {
	top, err := ParseTopic("out/{sensor}")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"sensor":"s0042","window_start":1767225600000,"window_end":1767225601000,"n":50,"avg_temp":24.95,"max_temp":29.9}`)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		var dst []byte
		for b.Loop() {
			dst, _ = top.Render(dst[:0], data)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = renderReference(top, data)
		}
	})
}
