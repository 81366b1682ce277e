package engine

// ReduceFunc combines two values of a key into one. It must be associative
// (and commutative for windowed forms, whose panes are combined in time order
// but whose records within a batch are combined in input order). It must not
// retain List slices of its arguments beyond returning them.
type ReduceFunc func(a, b Value) Value

// Sum adds numbers (and concatenates strings). A null operand yields the other.
func Sum(a, b Value) Value {
	switch {
	case a.Kind == KindNumber && b.Kind == KindNumber:
		return Value{Kind: KindNumber, Num: a.Num + b.Num}
	case a.Kind == KindNull:
		return b
	case b.Kind == KindNull:
		return a
	case a.Kind == KindString && b.Kind == KindString:
		return String(a.Str + b.Str)
	}
	return Null
}

// Subtract is the inverse of Sum for numbers: a - b. A null b yields a.
func Subtract(a, b Value) Value {
	switch {
	case a.Kind == KindNumber && b.Kind == KindNumber:
		return Value{Kind: KindNumber, Num: a.Num - b.Num}
	case b.Kind == KindNull:
		return a
	case a.Kind == KindNull && b.Kind == KindNumber:
		return Value{Kind: KindNumber, Num: -b.Num}
	}
	return Null
}

// Min returns the smaller value by Compare (nulls are ignored).
func Min(a, b Value) Value {
	if a.IsNull() || (!b.IsNull() && Compare(b, a) < 0) {
		return b
	}
	return a
}

// Max returns the larger value by Compare (nulls are ignored).
func Max(a, b Value) Value {
	if a.IsNull() || Compare(b, a) > 0 {
		return b
	}
	return a
}

// ReduceByName returns the built-in reduce function with the given spec name:
// sum, subtract, min, max.
func ReduceByName(name string) (ReduceFunc, bool) {
	switch name {
	case "sum":
		return Sum, true
	case "subtract":
		return Subtract, true
	case "min":
		return Min, true
	case "max":
		return Max, true
	}
	return nil, false
}
