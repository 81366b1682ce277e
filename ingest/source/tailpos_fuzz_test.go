package source

import (
	"bytes"
	"testing"
)

// FuzzDecodeTailPos: a committed position read back from storage never
// panics the decoder, and what it accepts encodes back to the same bytes.
func FuzzDecodeTailPos(f *testing.F) {
	f.Add(tailPos{off: 0}.encode())
	f.Add(tailPos{off: 1 << 40, fpLen: fpMax, fp: 0xdeadbeef}.encode())
	f.Add([]byte{0x80})
	f.Add([]byte{5, 6, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := decodeTailPos(b)
		if !ok {
			return
		}
		if p.off < 0 || p.fpLen < 0 || p.fpLen > fpMax || int64(p.fpLen) > p.off {
			t.Fatalf("accepted %x as %+v", b, p)
		}
		if e := p.encode(); !bytes.Equal(e, b) {
			// Non-minimal varints decode too; they must at least decode to p.
			if q, ok := decodeTailPos(e); !ok || q != p {
				t.Fatalf("%+v encodes to %x, which decodes to %+v", p, e, q)
			}
		}
	})
}
