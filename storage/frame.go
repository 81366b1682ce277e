package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"
)

// Frame codecs: the byte after a frame's record count.
const (
	codecRaw  = 0
	codecZstd = 1
	codecS2   = 2
)

// maxCompressedFrame bounds the decoded size of a compressed frame. Larger
// groups are stored raw, so a corrupt (or hostile) frame can never make the
// decoder allocate more than this, which matters on a 32-bit gateway.
const maxCompressedFrame = 32 << 20

// frameKey is the key of the frame inside a frame bucket; see doc.go, "Bucket
// layout".
var frameKey = []byte{'f'}

// frameTimeKey holds a frame's append time (8 bytes, unix ms) beside it.
var frameTimeKey = []byte{'t'}

// FrameError is returned for an input-log frame that cannot be decoded. It
// names the source and the offset of the frame's first record.
type FrameError struct {
	Source string
	Offset uint64 // offset of the frame's first record
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("storage: log %q frame at offset %d: %v", e.Source, e.Offset, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// frameValue returns the frame stored under key k of a log bucket whose cursor
// gave v: frames up to format edged-storage/1 are plain values, later ones are
// in a bucket of their own (so that appending a frame never rewrites the leaf
// page holding the previous frames).
func frameValue(b *bolt.Bucket, k, v []byte) []byte {
	if v != nil {
		return v
	}
	if fb := b.Bucket(k); fb != nil {
		return fb.Get(frameKey)
	}
	return nil
}

// frameCount returns the record count of frame v (0, false if malformed).
func frameCount(v []byte) (uint64, bool) {
	n, k := binary.Uvarint(v)
	return n, k > 0
}

// codec compresses and decompresses frame bodies.
type codec struct {
	kind Compression
	zenc *zstd.Encoder
	zdec *zstd.Decoder
}

func newCodec(kind Compression) (*codec, error) {
	c := &codec{kind: kind}
	var err error
	if c.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true),
		// Records repeat their neighbours; a longer history buys little and
		// costs its size in memory.
		zstd.WithWindowSize(256<<10)); err != nil {
		return nil, fmt.Errorf("storage: zstd encoder: %w", err)
	}
	if c.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxCompressedFrame)); err != nil {
		c.zenc.Close()
		return nil, fmt.Errorf("storage: zstd decoder: %w", err)
	}
	return c, nil
}

func (c *codec) close() {
	c.zenc.Close()
	c.zdec.Close()
}

// compress appends the frame codec byte and body of raw to dst.
func (c *codec) compress(dst, raw []byte) []byte {
	start := len(dst)
	if len(raw) <= maxCompressedFrame {
		switch c.kind {
		case CompressZstd:
			dst = append(dst, codecZstd)
			dst = c.zenc.EncodeAll(raw, dst)
		case CompressS2:
			dst = append(dst, codecS2)
			n0, need := len(dst), s2.MaxEncodedLen(len(raw))
			dst = slices.Grow(dst, need)
			enc := s2.Encode(dst[n0:n0+need], raw)
			dst = dst[:n0+len(enc)]
		}
		if len(dst) > start && len(dst)-start-1 < len(raw) {
			return dst
		}
	}
	dst = append(dst[:start], codecRaw)
	return append(dst, raw...)
}

// decompress returns the decoded body (codec byte first), reusing dst. A raw
// body is returned in place, without a copy.
func (c *codec) decompress(dst, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, errors.New("empty frame body")
	}
	switch body[0] {
	case codecRaw:
		return body[1:], nil
	case codecZstd:
		// WithDecoderMaxMemory bounds the decoded size.
		return c.zdec.DecodeAll(body[1:], dst[:0])
	case codecS2:
		n, err := s2.DecodedLen(body[1:])
		if err != nil {
			return nil, err
		}
		if n > maxCompressedFrame {
			return nil, fmt.Errorf("s2 body decodes to %d bytes (limit %d)", n, maxCompressedFrame)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		return s2.Decode(dst[:n], body[1:])
	}
	return nil, fmt.Errorf("unknown frame codec %d", body[0])
}

// readFrame decodes frame v of source, whose first record has offset first,
// and calls fn for each record with its index and dedup key. buf is reused for
// the decompressed body. A malformed frame gives a *FrameError; an error of fn
// is returned as is.
func (c *codec) readFrame(source string, first uint64, v []byte, buf *[]byte, fn func(i int, key, rec []byte) error) (int, error) {
	bad := func(format string, a ...any) error {
		return &FrameError{Source: source, Offset: first, Err: fmt.Errorf(format, a...)}
	}
	n, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, bad("bad frame header")
	}
	raw, err := c.decompress((*buf)[:0], v[k:])
	if err != nil {
		return 0, bad("%w", err)
	}
	if len(v) > k && v[k] != codecRaw {
		*buf = raw
	}
	// Each record takes at least two bytes (two uvarint lengths).
	if n > uint64(len(raw))/2 {
		return 0, bad("count %d does not fit a %d-byte body", n, len(raw))
	}
	for i := 0; i < int(n); i++ {
		kl, m := binary.Uvarint(raw)
		if m <= 0 || uint64(len(raw)-m) < kl {
			return 0, bad("bad record %d (offset %d)", i, first+uint64(i))
		}
		key := raw[m : m+int(kl) : m+int(kl)]
		raw = raw[m+int(kl):]
		rl, m := binary.Uvarint(raw)
		if m <= 0 || uint64(len(raw)-m) < rl {
			return 0, bad("bad record %d (offset %d)", i, first+uint64(i))
		}
		rec := raw[m : m+int(rl) : m+int(rl)]
		raw = raw[m+int(rl):]
		if fn != nil {
			if err := fn(i, key, rec); err != nil {
				return int(n), err
			}
		}
	}
	if len(raw) != 0 {
		return int(n), bad("%d trailing bytes after %d records", len(raw), n)
	}
	return int(n), nil
}
