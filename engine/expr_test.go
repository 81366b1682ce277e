package engine

import (
	"errors"
	"math"
	"strings"
	"testing"
)

var exprSchema = MustSchema(
	Field{"sensor", KindString},
	Field{"ts", KindTime},
	Field{"temp", KindNumber},
	Field{"hum", KindNumber},
	Field{"ok", KindBool},
	Field{"label", KindString},
	Field{"odd name", KindNumber},
	Field{"any", KindNull},
	Field{"tags", KindList},
	Field{"site.id", KindString},
)

// exprRec is 2024-01-02T03:04:05Z, a Tuesday.
const exprRecTime = 1704164645000

func exprRec() *Record {
	return &Record{
		Time: exprRecTime,
		Key:  "k1",
		Vals: []Value{
			String("t1"), Time(1000), Number(21.5), Number(60), Bool(true), Null,
			Number(7), String("12.5"), List(String("a"), String("b")), String("s/1"),
		},
	}
}

// nullRec has every field null.
func nullRec() *Record { return &Record{Vals: make([]Value, exprSchema.Len())} }

func evalExpr(t *testing.T, src string, r *Record) Value {
	t.Helper()
	e, err := CompileExpr(src, exprSchema)
	if err != nil {
		t.Fatalf("CompileExpr(%q): %v", src, err)
	}
	return e.Eval(r)
}

func sameValue(a, b Value) bool {
	if a.Kind == KindNumber && b.Kind == KindNumber {
		return a.Num == b.Num || math.Abs(a.Num-b.Num) < 1e-9
	}
	return a.Equal(b)
}

func showValue(v Value) string { return v.Kind.String() + " " + v.String() }

func TestExprEval(t *testing.T) {
	tests := []struct {
		src  string
		want Value
	}{
		// literals
		{"42", Number(42)},
		{"1e3", Number(1000)},
		{".5", Number(0.5)},
		{"2.5E-1", Number(0.25)},
		{"250ms", Number(250)},
		{"5s", Number(5000)},
		{"1m", Number(60000)},
		{"1h", Number(3600000)},
		{"1d", Number(86400000)},
		{"1h30m", Number(5400000)},
		{"1.5s", Number(1500)},
		{`"a\tb"`, String("a\tb")},
		{`'it\'s'`, String("it's")},
		{`"\x41\u00e9\/\\\""`, String("Aé/\\\"")},
		{"true", Bool(true)},
		{"FALSE", Bool(false)},
		{"null", Null},
		// fields
		{"temp", Number(21.5)},
		{"sensor", String("t1")},
		{"ts", Time(1000)},
		{"ok", Bool(true)},
		{"`odd name`", Number(7)},
		{"site.id", String("s/1")},
		{"_time", Time(exprRecTime)},
		{"_key", String("k1")},
		{"tags", List(String("a"), String("b"))},
		{"any", String("12.5")},
		// precedence and associativity
		{"1 + 2 * 3", Number(7)},
		{"(1 + 2) * 3", Number(9)},
		{"10 - 4 - 3", Number(3)},
		{"16 / 4 / 2", Number(2)},
		{"7 % 4 * 2", Number(6)},
		{"-2 * 3", Number(-6)},
		{"- -2", Number(2)},
		{"+2", Number(2)},
		{"2 * -temp", Number(-43)},
		{"1 + 2 > 2", Bool(true)},
		{"true or false and false", Bool(true)},
		{"(true or false) and false", Bool(false)},
		{"not false and false", Bool(false)},
		{"not 1 == 2", Bool(true)},
		{"!ok || ok", Bool(true)},
		{"true && !false", Bool(true)},
		{"temp > 20 ? 'warm' : 'cold'", String("warm")},
		{"false ? 1 : true ? 2 : 3", Number(2)},
		{"temp > 30 or hum < 80 and ok", Bool(true)},
		// arithmetic and strings
		{"temp + hum", Number(81.5)},
		{"temp / 0", Null},
		{"temp % 0", Null},
		{"7 % 3", Number(1)},
		{"sensor + '-' + label", Null},
		{"sensor + '-x'", String("t1-x")},
		// time arithmetic
		{"ts + 5s", Time(6000)},
		{"5s + ts", Time(6000)},
		{"ts - 500ms", Time(500)},
		{"_time - ts", Number(exprRecTime - 1000)},
		// comparison
		{"temp == 21.5", Bool(true)},
		{"temp = 21.5", Bool(true)},
		{"temp != 21.5", Bool(false)},
		{"temp <> 21.5", Bool(false)},
		{"temp < 22", Bool(true)},
		{"temp <= 21.5", Bool(true)},
		{"temp >= 22", Bool(false)},
		{"30 > temp", Bool(true)},
		{"temp > hum", Bool(false)},
		{"sensor < 't2'", Bool(true)},
		{"sensor >= 't1'", Bool(true)},
		{"ts < _time", Bool(true)},
		{"ok == true", Bool(true)},
		{"ok != true", Bool(false)},
		{"_key == 'k1'", Bool(true)},
		// in
		{"sensor in ['t1', 't2']", Bool(true)},
		{"sensor in ['t3']", Bool(false)},
		{"sensor not in ['t3']", Bool(true)},
		{"sensor in []", Bool(false)},
		{"temp in [1, 21.5]", Bool(true)},
		{"temp in [1, hum]", Bool(false)},
		{"temp in [hum, temp]", Bool(true)},
		{"ok in [false]", Bool(false)},
		{"sensor in ['a','b','c','d','e','f','g','h','i','t1']", Bool(true)},
		{"sensor in ['a','b','c','d','e','f','g','h','i','j']", Bool(false)},
		{"sensor in ['x', null]", Null},
		{"sensor in ['t1', null]", Bool(true)},
		{"temp in [1, null]", Null},
		// null checks
		{"label == null", Bool(true)},
		{"null == label", Bool(true)},
		{"label != null", Bool(false)},
		{"temp == null", Bool(false)},
		{"tags == null", Bool(false)},
		{"any != null", Bool(true)},
		{"is_null(label)", Bool(true)},
		{"is_null(temp)", Bool(false)},
		{"is_null(null)", Bool(true)},
		{"coalesce(label, sensor)", String("t1")},
		{"coalesce(null, label, 'x')", String("x")},
		{"coalesce(label)", Null},
		{"coalesce(any, null)", String("12.5")},
		{"coalesce(tags, tags)", List(String("a"), String("b"))},
		{"if(ok, temp, 0)", Number(21.5)},
		{"if(not ok, temp, 0)", Number(0)},
		{"if(label == 'x', 1, 2)", Number(2)},
		{"if(ok, null, 2)", Null},
		{"if(ok, any, null)", String("12.5")},
		// math
		{"abs(-3)", Number(3)},
		{"round(2.5)", Number(3)},
		{"round(-2.5)", Number(-3)},
		{"round(3.14159, 2)", Number(3.14)},
		{"round(1234, -2)", Number(1200)},
		{"round(1.5, 400)", Number(1.5)},
		{"round(1.5, -400)", Number(0)},
		{"floor(-1.5)", Number(-2)},
		{"ceil(1.2)", Number(2)},
		{"min(3, 1, 2)", Number(1)},
		{"max(3, 1, 2)", Number(3)},
		{"max(temp, null)", Null},
		{"min(ts, _time)", Time(1000)},
		{"sqrt(16)", Number(4)},
		{"sqrt(-1)", Null},
		{"pow(2, 10)", Number(1024)},
		{"pow(10, 400)", Null},
		{"log(exp(2))", Number(2)},
		{"log(0)", Null},
		{"exp(0)", Number(1)},
		// conversions
		{"str(21.5)", String("21.5")},
		{"string(temp * 2)", String("43")},
		{"str(ok)", String("true")},
		{"str(ts)", String("1000")},
		{"str(sensor)", String("t1")},
		{"str(label)", Null},
		{"str(any)", String("12.5")},
		{"str(tags)", String("[a,b]")},
		{"number('  12.5 ')", Number(12.5)},
		{"number('x')", Null},
		{"number(ok)", Number(1)},
		{"number(ts)", Number(1000)},
		{"number(any) + 1", Number(13.5)},
		{"bool('true')", Bool(true)},
		{"bool('0')", Bool(false)},
		{"bool('maybe')", Null},
		{"bool(temp)", Bool(true)},
		{"bool(0)", Bool(false)},
		{"bool(any)", Null},
		// strings
		{"lower('AbC')", String("abc")},
		{"upper(sensor)", String("T1")},
		{"trim('  x ')", String("x")},
		{"len('héllo')", Number(5)},
		{"len(tags)", Number(2)},
		{"contains('hello', 'ell')", Bool(true)},
		{"starts_with(sensor, 't')", Bool(true)},
		{"ends_with(sensor, '2')", Bool(false)},
		{"substr('hello', 1)", String("ello")},
		{"substr('hello', 1, 3)", String("ell")},
		{"substr('hello', -3)", String("llo")},
		{"substr('hello', -3, 2)", String("ll")},
		{"substr('hello', 10)", String("")},
		{"substr('hello', 2, -1)", String("")},
		{"substr('hello', 0, 1e300)", String("hello")},
		{"substr('héllo', 1, 2)", String("él")},
		{"substr('héllo', -4, 1)", String("é")},
		{"concat(sensor, '/', temp, '/', ok, label)", String("t1/21.5/true")},
		{"concat()", String("")},
		{"split_part('a/b/c', '/', 2)", String("b")},
		{"split_part('a/b/c', '/', 3)", String("c")},
		{"split_part('a/b/c', '/', 4)", String("")},
		{"split_part('a/b/c', '/', -1)", String("c")},
		{"split_part('a/b/c', '/', -3)", String("a")},
		{"split_part('a/b/c', '/', -4)", String("")},
		{"split_part('a::b', '::', 2)", String("b")},
		{"split_part('abc', '', 1)", String("abc")},
		{"split_part('abc', '/', 0)", Null},
		{"regex_match(sensor, '^t[0-9]+$')", Bool(true)},
		{"regex_match('x', 'y')", Bool(false)},
		// time
		{"unix_ms(ts)", Number(1000)},
		{"time_ms(1500.7)", Time(1500)},
		{"hour(_time)", Number(3)},
		{"minute(_time)", Number(4)},
		{"day_of_week(_time)", Number(2)},
		{"hour(time_ms(1e300))", Null},
		{"_time > time_ms(0)", Bool(true)},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			if got := evalExpr(t, tt.src, exprRec()); !sameValue(got, tt.want) {
				t.Fatalf("got %s; want %s", showValue(got), showValue(tt.want))
			}
		})
	}
}

// TestExprNullSemantics protects "null in, null out" and the filter rule that
// null counts as false.
func TestExprNullSemantics(t *testing.T) {
	tests := []struct {
		src      string
		want     Value
		wantBool bool // EvalBool for bool expressions
	}{
		{"temp + 1", Null, false},
		{"-temp", Null, false},
		{"temp > 30", Null, false},
		{"not (temp > 30)", Null, false},
		{"temp > 30 and hum < 80", Null, false},
		{"temp > 30 and false", Bool(false), false},
		{"false and temp > 30", Bool(false), false},
		{"temp > 30 or true", Bool(true), true},
		{"true or temp > 30", Bool(true), true},
		{"temp > 30 or false", Null, false},
		{"temp == null", Bool(true), true},
		{"temp != null", Bool(false), false},
		{"temp < null", Null, false},
		{"temp + null", Null, false},
		{"null + null", Null, false},
		{"sensor + 'x'", Null, false},
		{"sensor in ['a']", Null, false},
		{"sensor not in ['a']", Null, false},
		{"ok", Null, false},
		{"not ok", Null, false},
		{"ok == true", Null, false},
		{"_time == time_ms(0)", Bool(true), true},
		{"_key == ''", Bool(true), true},
		{"abs(temp)", Null, false},
		{"round(temp, 1)", Null, false},
		{"round(1.25, hum)", Null, false},
		{"lower(sensor)", Null, false},
		{"contains(sensor, 'a')", Null, false},
		{"len(sensor)", Null, false},
		{"len(tags)", Null, false},
		{"substr(sensor, 1)", Null, false},
		{"split_part(sensor, '/', 1)", Null, false},
		{"regex_match(sensor, 'a')", Null, false},
		{"concat(sensor, 'x')", String("x"), false},
		{"coalesce(temp, hum, 3)", Number(3), false},
		{"if(ok, 1, 2)", Number(2), false},
		{"ok ? 1 : 2", Number(2), false},
		{"is_null(any)", Bool(true), true},
		{"number(any)", Null, false},
		{"str(ts)", Null, false},
		{"hour(ts)", Null, false},
		{"unix_ms(ts)", Null, false},
		{"min(temp, 1)", Null, false},
		{"temp in [temp]", Null, false},
		{"1 in [temp]", Null, false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := CompileExpr(tt.src, exprSchema)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Eval(nullRec()); !sameValue(got, tt.want) {
				t.Fatalf("Eval got %s; want %s", showValue(got), showValue(tt.want))
			}
			if got := e.EvalBool(nullRec()); got != tt.wantBool {
				t.Fatalf("EvalBool got %v; want %v", got, tt.wantBool)
			}
		})
	}
}

// TestExprMismatchedValueIsNull protects the static-kind promise when a record
// carries a value whose kind differs from its schema.
func TestExprMismatchedValueIsNull(t *testing.T) {
	r := exprRec()
	r.Vals[2] = String("oops") // temp
	for _, src := range []string{"temp", "temp > 1", "temp + 1", "abs(temp)"} {
		if got := evalExpr(t, src, r); !got.IsNull() {
			t.Errorf("%s: got %s; want null", src, showValue(got))
		}
	}
}

func TestExprStaticKind(t *testing.T) {
	tests := []struct {
		src  string
		want Kind
	}{
		{"temp", KindNumber},
		{"temp > 1", KindBool},
		{"sensor + 'x'", KindString},
		{"_time", KindTime},
		{"_time + 1s", KindTime},
		{"_time - ts", KindNumber},
		{"null", KindNull},
		{"any", KindNull},
		{"coalesce(null, temp)", KindNumber},
		{"if(ok, null, 'x')", KindString},
		{"temp + null", KindNumber},
		{"tags", KindList},
		{"number(any)", KindNumber},
		{"time_ms(0)", KindTime},
		{"min(ts, _time)", KindTime},
		{"concat(temp)", KindString},
		{"is_null(any)", KindBool},
	}
	for _, tt := range tests {
		e, err := CompileExpr(tt.src, exprSchema)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if got := e.Kind(); got != tt.want {
			t.Errorf("%s: kind got %s; want %s", tt.src, got, tt.want)
		}
	}
}

func TestExprCompileErrors(t *testing.T) {
	tests := []struct {
		src    string
		want   string // substring of Error()
		column string // ExprError.Column
		is     error  // errors.Is target, or nil
	}{
		{"temp > 'x'", `expression "temp > 'x'": column 6: cannot compare number with string (field "temp")`, "temp", ErrType},
		{"tmp > 3", `column 1: unknown field "tmp" (have sensor, ts, temp, hum, ok, label, odd name, any, tags, site.id)`, "tmp", ErrUnknownField},
		{"`nope` == 1", `unknown field "nope"`, "nope", ErrUnknownField},
		{"temp + sensor", `column 6: cannot apply + to number and string`, "temp", ErrType},
		{"sensor - 'a'", `cannot apply - to string and string`, "sensor", ErrType},
		{"ts * 2", `cannot apply * to time and number`, "ts", ErrType},
		{"ts > 5", `cannot compare time with number`, "ts", ErrType},
		{"ok < true", `cannot order bools with <`, "ok", ErrType},
		{"temp and ok", `and needs bool operands, have number`, "temp", ErrType},
		{"not temp", `not needs a bool, have number`, "temp", ErrType},
		{"-sensor", `unary - needs a number, have string`, "sensor", ErrType},
		{"any + 1", `needs typed operands`, "any", ErrType},
		{"tags == tags", `cannot compare list values`, "tags", ErrType},
		{"sensor in [1, 2]", `column 12: in: cannot compare string with number`, "sensor", ErrType},
		{"if(temp, 1, 2)", `if: argument 1 must be bool, have number`, "temp", ErrType},
		{"if(ok, 1, 'a')", `if: values have different kinds (number, string)`, "", ErrType},
		{"ok ? 1 : 'a'", `column 4: conditional: values have different kinds (number, string)`, "", ErrType},
		{"coalesce(temp, sensor)", `coalesce: values have different kinds`, "temp", ErrType},
		{"coalesce(any, 1)", `cannot mix an untyped field with number`, "any", ErrType},
		{"abs(sensor)", `abs: argument 1 must be number, have string`, "sensor", ErrType},
		{"lower(temp)", `lower: argument 1 must be string, have number`, "temp", ErrType},
		{"lower(any)", `convert it with number(), str() or bool()`, "any", ErrType},
		{"min(temp, ts)", `min: arguments must all be numbers or all be times`, "temp", ErrType},
		{"round()", `round takes 1 to 2 arguments, have 0`, "", nil},
		{"abs(1, 2)", `abs takes 1 argument, have 2`, "", nil},
		{"coalesce()", `coalesce takes at least 1 arguments, have 0`, "", nil},
		{"bool(ts)", `bool: cannot convert time`, "ts", ErrType},
		{"number(tags)", `number: cannot convert list`, "tags", ErrType},
		{"regex_match(sensor, label)", `column 21: regex_match: the pattern must be a string literal`, "", ErrType},
		{"regex_match(sensor, '(')", `regex_match: error parsing regexp`, "", nil},
		{"now()", `now() is not allowed`, "", nil},
		{"foo(1)", `unknown function "foo"`, "", nil},
		{"temp >", `column 7: unexpected end of expression, want a value`, "", nil},
		{"(temp > 1", `unexpected end of expression, want ")"`, "", nil},
		{"temp > 1)", `column 9: unexpected ")", want end of expression`, "", nil},
		{"1 < temp < 3", `comparisons do not chain`, "", nil},
		{"temp not 3", `want "in" after "not"`, "", nil},
		{"temp in 3", `want "[" to start the list`, "", nil},
		{"temp in [1 2]", `want "," or "]"`, "", nil},
		{"abs(1 2)", `want "," or ")"`, "", nil},
		{"ok ? 1", `want ":" of "?:"`, "", nil},
		{"'abc", `column 1: unterminated string`, "", nil},
		{`'a\q'`, `unknown escape \q`, "", nil},
		{`'\u12'`, `short \u escape`, "", nil},
		{`'\xZZ'`, `malformed \x escape`, "", nil},
		{"`abc", "unterminated `name`", "", nil},
		{"``", "empty `name`", "", nil},
		{"5x", `unknown duration unit "x"`, "", nil},
		{"1e400", `malformed number`, "", nil},
		{"1h30", `has no unit`, "", nil},
		{"temp # 1", `unexpected character '#'`, "", nil},
		{"and", `unexpected "and", want a value`, "", nil},
		{"", `unexpected end of expression, want a value`, "", nil},
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), `nested too deeply`, "", nil},
		{strings.Repeat("-", 300) + "1", `nested too deeply`, "", nil},
	}
	for _, tt := range tests {
		name := tt.src
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run(name, func(t *testing.T) {
			_, err := CompileExpr(tt.src, exprSchema)
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			var xe *ExprError
			if !errors.As(err, &xe) {
				t.Fatalf("got %T %v; want *ExprError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q; want it to contain %q", err, tt.want)
			}
			if xe.Column != tt.column {
				t.Errorf("Column got %q; want %q", xe.Column, tt.column)
			}
			if xe.Expr != tt.src && len(tt.src) < maxExprLen {
				t.Errorf("Expr got %q; want %q", xe.Expr, tt.src)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
		})
	}
}

func TestExprNilSchema(t *testing.T) {
	e, err := CompileExpr("1 + 2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Eval(&Record{}); got.Num != 3 {
		t.Fatalf("got %s; want 3", showValue(got))
	}
}

// TestExprZeroAllocs protects the hot path: numeric and bool expressions, and
// strings taken from the record, evaluate without allocating.
func TestExprZeroAllocs(t *testing.T) {
	r := exprRec()
	for _, src := range []string{
		"temp > 30 and hum < 80",
		"temp * 1.8 + 32",
		"round((temp - 32) * 5 / 9, 1)",
		"sensor in ['t1', 't2'] or _time > ts + 5s",
		"coalesce(label, sensor)",
		"if(temp > hum, 'hot', 'cold')",
		"regex_match(sensor, '^t[0-9]$')",
		"hour(_time) >= 8",
		"sensor",
		"lower(sensor)",
	} {
		e, err := CompileExpr(src, exprSchema)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			e.Eval(r)
			e.EvalBool(r)
		})
		if allocs != 0 {
			t.Errorf("%s: got %v allocs per record; want 0", src, allocs)
		}
	}
}

func TestExprConstantFolding(t *testing.T) {
	e, err := CompileExpr("round(5s * 2 / 3, 1)", exprSchema)
	if err != nil {
		t.Fatal(err)
	}
	if !e.node.isConst {
		t.Fatal("constant expression not folded")
	}
	if got := e.Eval(nil); got.Num != 3333.3 {
		t.Fatalf("got %s; want 3333.3", showValue(got))
	}
}
