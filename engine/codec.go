package engine

import (
	"encoding/binary"
	"errors"
	"math"
)

// ErrCorruptState is returned when stored state bytes cannot be decoded.
var ErrCorruptState = errors.New("corrupt state entry")

// AppendValue appends a compact binary encoding of v to dst, for operator state.
// ReadValue decodes it.
func AppendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindNull:
	case KindString:
		dst = binary.AppendUvarint(dst, uint64(len(v.Str)))
		dst = append(dst, v.Str...)
	case KindList:
		dst = binary.AppendUvarint(dst, uint64(len(v.Items())))
		for _, e := range v.Items() {
			dst = AppendValue(dst, e)
		}
	default:
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Num))
	}
	return dst
}

// ReadValue decodes one value written by AppendValue and returns the rest of b.
func ReadValue(b []byte) (Value, []byte, error) {
	if len(b) == 0 {
		return Value{}, nil, ErrCorruptState
	}
	k := Kind(b[0])
	b = b[1:]
	switch k {
	case KindNull:
		return Value{}, b, nil
	case KindString:
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return Value{}, nil, ErrCorruptState
		}
		return String(string(b[w : w+int(n)])), b[w+int(n):], nil
	case KindList:
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)) {
			return Value{}, nil, ErrCorruptState
		}
		b = b[w:]
		l := make([]Value, 0, n)
		for i := uint64(0); i < n; i++ {
			var e Value
			var err error
			e, b, err = ReadValue(b)
			if err != nil {
				return Value{}, nil, err
			}
			l = append(l, e)
		}
		return List(l...), b, nil
	case KindNumber, KindBool, KindTime:
		if len(b) < 8 {
			return Value{}, nil, ErrCorruptState
		}
		return Value{Kind: k, Num: math.Float64frombits(binary.LittleEndian.Uint64(b))}, b[8:], nil
	}
	return Value{}, nil, ErrCorruptState
}

// AppendVarint appends a signed varint (for times and counters in state).
func AppendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// ReadVarint reads a signed varint written by AppendVarint.
func ReadVarint(b []byte) (int64, []byte, error) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil, ErrCorruptState
	}
	return v, b[n:], nil
}
