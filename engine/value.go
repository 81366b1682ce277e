package engine

import (
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of values a record field can hold.
const (
	KindNull   Kind = iota // no value (a missing field, an outer-join miss)
	KindNumber             // float64 in Value.Num
	KindString             // Value.Str
	KindBool               // Value.Num is 1 for true, 0 for false
	KindTime               // unix milliseconds in Value.Num (exact up to year 287396)
	KindList               // Value.Items; only produced by grouping operators
)

var kindNames = [...]string{"null", "number", "string", "bool", "time", "list"}

// String returns the kind's name as used in pipeline specs and errors.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind maps a spec type name (number, string, bool, time) to its Kind.
func ParseKind(s string) (Kind, bool) {
	switch strings.ToLower(s) {
	case "number", "float", "double", "int", "integer":
		return KindNumber, true
	case "string", "text":
		return KindString, true
	case "bool", "boolean":
		return KindBool, true
	case "time", "timestamp":
		return KindTime, true
	case "list":
		return KindList, true
	}
	return KindNull, false
}

// Value is one typed field value. It is a small struct (40 bytes), passed by
// value, so that records hold their fields inline without boxing. The zero
// Value is null.
//
// A list's elements sit behind a pointer rather than inline (a slice header
// would make every Value 56 bytes): records and batches of numbers and
// strings, what streams carry, take 30% less memory and cache. Lists are
// built with List and read with Items; a list Value is immutable once built.
type Value struct {
	Kind Kind
	Num  float64  // KindNumber, KindBool (0/1), KindTime (unix ms)
	Str  string   // KindString
	list *[]Value // KindList: the elements (Items)
}

// Null is the null value.
var Null = Value{}

// Number returns a number value.
func Number(f float64) Value { return Value{Kind: KindNumber, Num: f} }

// Int returns a number value holding i.
func Int(i int64) Value { return Value{Kind: KindNumber, Num: float64(i)} }

// String returns a string value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Bool returns a bool value.
func Bool(b bool) Value {
	if b {
		return Value{Kind: KindBool, Num: 1}
	}
	return Value{Kind: KindBool}
}

// Time returns a time value from unix milliseconds.
func Time(ms int64) Value { return Value{Kind: KindTime, Num: float64(ms)} }

// List returns a list value holding vs (not copied).
func List(vs ...Value) Value { return Value{Kind: KindList, list: &vs} }

// Items returns the elements of a list value (nil for other kinds). The
// slice is shared with every copy of v: it must not be modified.
func (v Value) Items() []Value {
	if v.list == nil {
		return nil
	}
	return *v.list
}

// appendItems appends xs to the elements of list value v in place, so every
// copy of v sees them: only for a list that the caller built and has not
// handed out yet (a grouping operator's accumulator).
func (v *Value) appendItems(xs ...Value) {
	*v.list = append(*v.list, xs...)
}

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// AsBool reports whether v is a true bool.
func (v Value) AsBool() bool { return v.Kind == KindBool && v.Num != 0 }

// Millis returns a time value as unix milliseconds (numbers are taken as milliseconds too).
func (v Value) Millis() int64 { return int64(v.Num) }

// Equal reports whether two values are identical (same kind, same content).
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindNull:
		return true
	case KindString:
		return v.Str == w.Str
	case KindList:
		vl, wl := v.Items(), w.Items()
		if len(vl) != len(wl) {
			return false
		}
		for i := range vl {
			if !vl[i].Equal(wl[i]) {
				return false
			}
		}
		return true
	default:
		return v.Num == w.Num || (math.IsNaN(v.Num) && math.IsNaN(w.Num))
	}
}

// Compare orders values: null first, then by kind, then by content. It is a total
// order used for sorting outputs deterministically.
func Compare(a, b Value) int {
	if a.Kind != b.Kind {
		if a.Kind < b.Kind {
			return -1
		}
		return 1
	}
	switch a.Kind {
	case KindNull:
		return 0
	case KindString:
		return strings.Compare(a.Str, b.Str)
	case KindList:
		al, bl := a.Items(), b.Items()
		for i := 0; i < len(al) && i < len(bl); i++ {
			if c := Compare(al[i], bl[i]); c != 0 {
				return c
			}
		}
		return cmpInt(len(al), len(bl))
	default:
		switch {
		case a.Num < b.Num:
			return -1
		case a.Num > b.Num:
			return 1
		}
		return 0
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AppendText appends the value's plain text form (numbers without a trailing
// ".0" when integral, time as unix ms) to dst.
func (v Value) AppendText(dst []byte) []byte {
	switch v.Kind {
	case KindNull:
		return append(dst, "null"...)
	case KindString:
		return append(dst, v.Str...)
	case KindBool:
		return strconv.AppendBool(dst, v.Num != 0)
	case KindTime:
		return strconv.AppendInt(dst, int64(v.Num), 10)
	case KindList:
		dst = append(dst, '[')
		for i, e := range v.Items() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.AppendText(dst)
		}
		return append(dst, ']')
	default:
		return AppendNumber(dst, v.Num)
	}
}

// String returns the value's plain text form.
func (v Value) String() string { return string(v.AppendText(nil)) }

// AppendNumber formats f compactly: integral values without exponent or fraction.
func AppendNumber(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// AppendKey appends an unambiguous binary encoding of v to dst, suitable as (part of)
// a map key or a state key. Equal values give equal bytes.
func (v Value) AppendKey(dst []byte) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindNull:
	case KindString:
		dst = strconv.AppendInt(dst, int64(len(v.Str)), 10)
		dst = append(dst, ':')
		dst = append(dst, v.Str...)
	case KindList:
		dst = strconv.AppendInt(dst, int64(len(v.Items())), 10)
		dst = append(dst, ':')
		for _, e := range v.Items() {
			dst = e.AppendKey(dst)
		}
	default:
		b := math.Float64bits(v.Num)
		if v.Num == 0 { // +0 and -0 are the same key
			b = 0
		}
		dst = append(dst, byte(b>>56), byte(b>>48), byte(b>>40), byte(b>>32),
			byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
	}
	return dst
}
