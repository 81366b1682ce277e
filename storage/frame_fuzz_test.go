package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// realFrame builds a frame the way writeFrames does.
func realFrame(c *codec, recs, keys []string) []byte {
	var raw []byte
	for i, r := range recs {
		k := ""
		if keys != nil {
			k = keys[i]
		}
		raw = binary.AppendUvarint(raw, uint64(len(k)))
		raw = append(raw, k...)
		raw = binary.AppendUvarint(raw, uint64(len(r)))
		raw = append(raw, r...)
	}
	f := binary.AppendUvarint(nil, uint64(len(recs)))
	return c.compress(f, raw)
}

// FuzzReadFrame protects the input-log frame decoder: whatever the bytes, it
// never panics, and a frame it cannot decode gives a *FrameError naming the
// source and the frame's offset.
func FuzzReadFrame(f *testing.F) {
	var recs, keys []string
	for i := range 300 {
		recs = append(recs, fmt.Sprintf(`{"dev":"s-%04d","t":%d,"temp":%.2f}`, i%50, int64(1700000000000)+int64(i)*10, 20+float64(i%90)/10))
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	for _, kind := range []Compression{CompressZstd, CompressS2, CompressNone} {
		c, err := newCodec(kind)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(realFrame(c, recs[:1], nil))
		f.Add(realFrame(c, recs, nil))
		f.Add(realFrame(c, recs[:17], keys[:17]))
		c.close()
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, codecRaw, 0, 1, 'x'})
	c, err := newCodec(CompressZstd)
	if err != nil {
		f.Fatal(err)
	}
	defer c.close()
	var buf []byte
	f.Fuzz(func(t *testing.T, v []byte) {
		n := 0
		_, err := c.readFrame("src", 42, v, &buf, func(i int, key, rec []byte) error {
			if i != n {
				t.Fatalf("record index %d; want %d", i, n)
			}
			n++
			return nil
		})
		if err == nil {
			return
		}
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Source != "src" || fe.Offset != 42 {
			t.Fatalf("error %v (%T); want a *FrameError for source src offset 42", err, err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"src"`) || !strings.Contains(msg, "offset 42") {
			t.Fatalf("error %q does not name the source and offset", msg)
		}
	})
}

// TestReadFrameRoundTrip protects the frame format: every codec decodes what
// it encoded, records and keys in order.
func TestReadFrameRoundTrip(t *testing.T) {
	recs := []string{"a", "", `{"x":1}`, strings.Repeat("y", 5000)}
	keys := []string{"k1", "", "k3", "k4"}
	for _, kind := range []Compression{CompressZstd, CompressS2, CompressNone} {
		c, err := newCodec(kind)
		if err != nil {
			t.Fatal(err)
		}
		var buf []byte
		var got []string
		n, err := c.readFrame("s", 1, realFrame(c, recs, keys), &buf, func(i int, k, r []byte) error {
			got = append(got, string(k)+"="+string(r))
			return nil
		})
		c.close()
		if err != nil || n != len(recs) {
			t.Fatalf("codec %d: n %d, err %v; want %d, nil", kind, n, err, len(recs))
		}
		for i := range recs {
			if want := keys[i] + "=" + recs[i]; got[i] != want {
				t.Fatalf("codec %d record %d: got %.20q; want %.20q", kind, i, got[i], want)
			}
		}
	}
}
