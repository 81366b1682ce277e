package engine

import (
	"errors"
	"testing"
)

// FuzzCompileExpr protects the compiler against hostile pipeline specs: it never
// panics, every error is an *ExprError, and a compiled expression evaluates
// without panicking on a normal record, on a record whose fields are all null
// and on one whose values have the wrong kinds.
func FuzzCompileExpr(f *testing.F) {
	for _, s := range []string{
		"temp > 30 and hum < 80",
		"round((temp - 32) * 5 / 9, 1)",
		"sensor in ['t1', 't2'] && !(label == null)",
		"coalesce(label, concat(sensor, '/', str(temp)))",
		"hum > 90 ? 'wet' : 'dry'",
		"regex_match(sensor, '^t[0-9]+$')",
		"hour(_time) >= 8 and day_of_week(_time) in [1, 2, 3, 4, 5]",
		"_time - ts >= 5m",
		"substr(sensor, -2, 1) + split_part(`site.id`, '/', -1)",
		"number(any) * 2 + len(tags)",
		"if(ok, time_ms(unix_ms(ts) + 1h30m), _time)",
		"min(temp, hum, 3) / max(0, -1) % 0",
		"pow(temp, 400) + sqrt(-1) + log(0) + exp(1000)",
		"`odd name` not in [1, null, 2e3]",
		"bool('true') or bool(temp) and is_null(any)",
		"'\\u00e9\\x41\\n' == lower(upper(trim(sensor)))",
		"((((1))))", "1 +", "()", "[1]", "'unterminated", "`", "5xs", "1e", "a.b.c",
		"not not not ok", "- - - 1", "in in in", "now()", "?:", "temp ? 1 : 2",
		"\x00\xff", "1h30", ".5.5", "temp in [", "f(", "substr('é', 1e308, -1e308)",
	} {
		f.Add(s)
	}
	good := exprRec()
	bad := exprRec()
	for i := range bad.Vals {
		bad.Vals[(i+1)%len(bad.Vals)] = exprRec().Vals[i] // every value in the wrong field
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := CompileExpr(src, exprSchema)
		if err != nil {
			var xe *ExprError
			if !errors.As(err, &xe) {
				t.Fatalf("CompileExpr(%q) error %T %v; want *ExprError", src, err, err)
			}
			_ = err.Error()
			return
		}
		for _, r := range []*Record{good, nullRec(), bad} {
			v := e.Eval(r)
			if e.Kind() != KindNull && v.Kind != KindNull && v.Kind != e.Kind() {
				t.Fatalf("%q: Eval gave %s; static kind is %s", src, v.Kind, e.Kind())
			}
			e.EvalBool(r)
		}
	})
}
