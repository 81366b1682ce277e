package engine

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds the built-in functions of the expression language.

// forbiddenFuncs are refused because their result would differ between the first
// run of an epoch and its replay after a crash.
var forbiddenFuncs = map[string]bool{
	"now": true, "rand": true, "random": true, "uuid": true, "today": true, "current_time": true,
}

type funcCompiler func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError)

var exprFuncs map[string]funcCompiler

func init() {
	exprFuncs = map[string]funcCompiler{
		"abs":   math1(math.Abs),
		"floor": math1(math.Floor),
		"ceil":  math1(math.Ceil),
		"sqrt":  math1(math.Sqrt),
		"log":   math1(math.Log),
		"exp":   math1(math.Exp),
		"round": fnRound,
		"pow":   fnPow,
		"min":   minMax(false),
		"max":   minMax(true),

		"str":    fnStr,
		"string": fnStr,
		"number": fnNumber,
		"bool":   fnBool,

		"lower":       str1(strings.ToLower),
		"upper":       str1(strings.ToUpper),
		"trim":        str1(strings.TrimSpace),
		"len":         fnLen,
		"contains":    str2(strings.Contains),
		"starts_with": str2(strings.HasPrefix),
		"ends_with":   str2(strings.HasSuffix),
		"substr":      fnSubstr,
		"concat":      fnConcat,
		"split_part":  fnSplitPart,
		"regex_match": fnRegexMatch,

		"unix_ms":     fnUnixMs,
		"time_ms":     fnTimeMs,
		"hour":        timePart(func(t time.Time) int { return t.Hour() }),
		"minute":      timePart(func(t time.Time) int { return t.Minute() }),
		"day_of_week": timePart(func(t time.Time) int { return int(t.Weekday()) }),

		"is_null":  fnIsNull,
		"coalesce": fnCoalesce,
		"if":       fnIf,
	}
}

func (c *compiler) call(a *ast) (*cnode, *ExprError) {
	if forbiddenFuncs[a.name] {
		return nil, c.errAt(a.pos, nil, "", "%s() is not allowed: expressions must give the same result when an epoch is replayed; use _time", a.name)
	}
	fn, ok := exprFuncs[a.name]
	if !ok {
		return nil, c.errAt(a.pos, ErrUnknownField, "", "unknown function %q", a.name)
	}
	args, err := c.compileAll(a.kids)
	if err != nil {
		return nil, err
	}
	n, err := fn(c, a, args)
	if err != nil {
		return nil, err
	}
	if n.field == "" {
		n.field = firstField(args...)
	}
	if a.name == "regex_match" {
		return n, nil // folded by fnRegexMatch itself
	}
	return fold(n, args...), nil
}

func (c *compiler) arity(a *ast, args []*cnode, min, max int) *ExprError {
	if len(args) >= min && (max < 0 || len(args) <= max) {
		return nil
	}
	var want string
	switch {
	case min == max:
		want = strconv.Itoa(min)
	case max < 0:
		want = "at least " + strconv.Itoa(min)
	default:
		want = strconv.Itoa(min) + " to " + strconv.Itoa(max)
	}
	s := "s"
	if want == "1" {
		s = ""
	}
	return c.errAt(a.pos, nil, "", "%s takes %s argument%s, have %d", a.name, want, s, len(args))
}

// want checks that argument i has kind k (an untyped null fits any kind).
func (c *compiler) want(a *ast, args []*cnode, i int, ks ...Kind) *ExprError {
	x := args[i]
	if x.isNull && x.kind == KindNull {
		return nil
	}
	if !x.dyn {
		for _, k := range ks {
			if x.kind == k {
				return nil
			}
		}
	}
	names := make([]string, len(ks))
	for j, k := range ks {
		names[j] = k.String()
	}
	hint := ""
	if x.dyn {
		hint = "; convert it with number(), str() or bool()"
	}
	return c.typeErr(x.pos, []*cnode{x}, "%s: argument %d must be %s, have %s%s", a.name, i+1, strings.Join(names, " or "), kindName(x), hint)
}

func (c *compiler) wantAll(a *ast, args []*cnode, ks ...Kind) *ExprError {
	for i := range args {
		if err := c.want(a, args, i, ks...); err != nil {
			return err
		}
	}
	return nil
}

func math1(f func(float64) float64) funcCompiler {
	return func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
		if err := c.arity(a, args, 1, 1); err != nil {
			return nil, err
		}
		if err := c.want(a, args, 0, KindNumber); err != nil {
			return nil, err
		}
		x := args[0].numf()
		return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
			v, ok := x(r)
			if !ok {
				return 0, false
			}
			return finite(f(v))
		}}, nil
	}
}

// roundTo rounds x half away from zero to d decimal digits (d may be negative).
func roundTo(x, d float64) (float64, bool) {
	d = math.Trunc(d)
	if d == 0 {
		return math.Round(x), true
	}
	if d > 30 {
		return x, true
	}
	if d < -30 {
		return 0, true
	}
	p := math.Pow(10, d)
	y := math.Round(x*p) / p
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return x, true
	}
	return y, true
}

func fnRound(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 2); err != nil {
		return nil, err
	}
	if err := c.wantAll(a, args, KindNumber); err != nil {
		return nil, err
	}
	x := args[0].numf()
	if len(args) == 1 {
		return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
			v, ok := x(r)
			return math.Round(v), ok
		}}, nil
	}
	if dn := args[1]; dn.isConst && !dn.isNull {
		// Constant digits, the usual case: compute the scale once.
		d := math.Trunc(dn.constValue().Num)
		if d >= 1 && d <= 15 {
			p := math.Pow(10, d)
			return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
				v, ok := x(r)
				if !ok {
					return 0, false
				}
				y := math.Round(v*p) / p
				if math.IsInf(y, 0) || math.IsNaN(y) {
					return v, true
				}
				return y, true
			}}, nil
		}
	}
	d := args[1].numf()
	return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
		v, ok := x(r)
		n, nok := d(r)
		if !ok || !nok || math.IsNaN(n) {
			return 0, false
		}
		return roundTo(v, n)
	}}, nil
}

func fnPow(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 2, 2); err != nil {
		return nil, err
	}
	if err := c.wantAll(a, args, KindNumber); err != nil {
		return nil, err
	}
	x, y := args[0].numf(), args[1].numf()
	return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
		b, bok := x(r)
		e, eok := y(r)
		if !bok || !eok {
			return 0, false
		}
		return finite(math.Pow(b, e))
	}}, nil
}

func minMax(isMax bool) funcCompiler {
	return func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
		if err := c.arity(a, args, 1, -1); err != nil {
			return nil, err
		}
		if err := c.wantAll(a, args, KindNumber, KindTime); err != nil {
			return nil, err
		}
		k, ok := sameKind(args)
		if !ok {
			return nil, c.typeErr(a.pos, args, "%s: arguments must all be numbers or all be times", a.name)
		}
		if k == KindNull {
			k = KindNumber
		}
		fs := make([]numFn, len(args))
		for i, x := range args {
			fs[i] = x.numf()
		}
		return &cnode{kind: k, pos: a.pos, num: func(r *Record) (float64, bool) {
			m, ok := fs[0](r)
			if !ok {
				return 0, false
			}
			for _, f := range fs[1:] {
				v, ok := f(r)
				if !ok {
					return 0, false
				}
				if isMax && v > m || !isMax && v < m || math.IsNaN(v) {
					m = v
				}
			}
			return m, true
		}}, nil
	}
}

func fnStr(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	x := args[0]
	n := &cnode{kind: KindString, pos: a.pos}
	switch {
	case x.isNull:
		n.isNull = true
	case x.dyn || x.kind == KindList:
		f := x.val
		n.str = func(r *Record) (string, bool) {
			v := f(r)
			if v.Kind == KindNull {
				return "", false
			}
			if v.Kind == KindString {
				return v.Str, true
			}
			return v.String(), true
		}
	case x.kind == KindString:
		return x, nil
	case x.kind == KindBool:
		f := x.bln
		n.str = func(r *Record) (string, bool) {
			b, ok := f(r)
			if b {
				return "true", ok
			}
			return "false", ok
		}
	default: // number, time (as unix ms)
		f := x.num
		n.str = func(r *Record) (string, bool) {
			v, ok := f(r)
			if !ok {
				return "", false
			}
			var buf [32]byte
			return string(AppendNumber(buf[:0], v)), true
		}
	}
	return n, nil
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, false
	}
	return finite(f)
}

func fnNumber(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	x := args[0]
	n := &cnode{kind: KindNumber, pos: a.pos}
	switch {
	case x.isNull:
		n.isNull = true
	case x.dyn:
		f := x.val
		n.num = func(r *Record) (float64, bool) {
			v := f(r)
			switch v.Kind {
			case KindNumber, KindTime, KindBool:
				return v.Num, true
			case KindString:
				return parseNumber(v.Str)
			}
			return 0, false
		}
	case x.kind == KindNumber:
		return x, nil
	case x.kind == KindTime:
		n.num = x.num
	case x.kind == KindString:
		f := x.str
		n.num = func(r *Record) (float64, bool) {
			s, ok := f(r)
			if !ok {
				return 0, false
			}
			return parseNumber(s)
		}
	case x.kind == KindBool:
		f := x.bln
		n.num = func(r *Record) (float64, bool) {
			b, ok := f(r)
			if b {
				return 1, ok
			}
			return 0, ok
		}
	default:
		return nil, c.typeErr(x.pos, args, "number: cannot convert %s", kindName(x))
	}
	return n, nil
}

func parseBool(s string) (bool, bool) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return b, err == nil
}

func fnBool(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	x := args[0]
	n := &cnode{kind: KindBool, pos: a.pos}
	switch {
	case x.isNull:
		n.isNull = true
	case x.dyn:
		f := x.val
		n.bln = func(r *Record) (bool, bool) {
			v := f(r)
			switch v.Kind {
			case KindNumber, KindBool:
				return v.Num != 0, true
			case KindString:
				return parseBool(v.Str)
			}
			return false, false
		}
	case x.kind == KindBool:
		return x, nil
	case x.kind == KindNumber:
		f := x.num
		n.bln = func(r *Record) (bool, bool) { v, ok := f(r); return v != 0, ok }
	case x.kind == KindString:
		f := x.str
		n.bln = func(r *Record) (bool, bool) {
			s, ok := f(r)
			if !ok {
				return false, false
			}
			return parseBool(s)
		}
	default:
		return nil, c.typeErr(x.pos, args, "bool: cannot convert %s", kindName(x))
	}
	return n, nil
}

func str1(f func(string) string) funcCompiler {
	return func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
		if err := c.arity(a, args, 1, 1); err != nil {
			return nil, err
		}
		if err := c.want(a, args, 0, KindString); err != nil {
			return nil, err
		}
		x := args[0].strf()
		return &cnode{kind: KindString, pos: a.pos, str: func(r *Record) (string, bool) {
			s, ok := x(r)
			if !ok {
				return "", false
			}
			return f(s), true
		}}, nil
	}
}

func str2(f func(s, sub string) bool) funcCompiler {
	return func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
		if err := c.arity(a, args, 2, 2); err != nil {
			return nil, err
		}
		if err := c.wantAll(a, args, KindString); err != nil {
			return nil, err
		}
		x, y := args[0].strf(), args[1].strf()
		return &cnode{kind: KindBool, pos: a.pos, bln: func(r *Record) (bool, bool) {
			s, sok := x(r)
			t, tok := y(r)
			if !sok || !tok {
				return false, false
			}
			return f(s, t), true
		}}, nil
	}
}

func fnLen(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	x := args[0]
	if x.kind == KindList {
		f := x.val
		return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
			v := f(r)
			return float64(len(v.Items())), v.Kind == KindList
		}}, nil
	}
	if err := c.want(a, args, 0, KindString, KindList); err != nil {
		return nil, err
	}
	f := x.strf()
	return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
		s, ok := f(r)
		return float64(utf8.RuneCountInString(s)), ok
	}}, nil
}

// runeOffset returns the byte offset of rune index i (0 <= i <= rune count).
func runeOffset(s string, i int) int {
	if i <= 0 {
		return 0
	}
	for off := range s {
		if i == 0 {
			return off
		}
		i--
	}
	return len(s)
}

// clampIndex converts a float index into [0, n], NaN counting as 0.
func clampIndex(f float64, n int) int {
	switch {
	case !(f > 0):
		return 0
	case f >= float64(n):
		return n
	}
	return int(f)
}

// substr returns the runes [start, start+length) of s; a negative start counts
// from the end; indexes are clamped to the string.
func substr(s string, start, length float64, hasLen bool) string {
	n := utf8.RuneCountInString(s)
	start = math.Trunc(start)
	var st int
	if start < 0 {
		st = clampIndex(float64(n)+start, n)
	} else {
		st = clampIndex(start, n)
	}
	end := n
	if hasLen {
		end = st + clampIndex(math.Trunc(length), n-st)
	}
	if n == len(s) { // ASCII
		return s[st:end]
	}
	b := runeOffset(s, st)
	return s[b : b+runeOffset(s[b:], end-st)]
}

func fnSubstr(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 2, 3); err != nil {
		return nil, err
	}
	if err := c.want(a, args, 0, KindString); err != nil {
		return nil, err
	}
	for i := 1; i < len(args); i++ {
		if err := c.want(a, args, i, KindNumber); err != nil {
			return nil, err
		}
	}
	s, st := args[0].strf(), args[1].numf()
	ln, hasLen := nullNum, len(args) == 3
	if hasLen {
		ln = args[2].numf()
	}
	return &cnode{kind: KindString, pos: a.pos, str: func(r *Record) (string, bool) {
		x, xok := s(r)
		i, iok := st(r)
		l, lok := ln(r)
		if !xok || !iok || hasLen && !lok {
			return "", false
		}
		return substr(x, i, l, hasLen), true
	}}, nil
}

func fnConcat(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	fs := make([]valFn, len(args))
	for i, x := range args {
		fs[i] = x.valf()
	}
	return &cnode{kind: KindString, pos: a.pos, str: func(r *Record) (string, bool) {
		var buf [64]byte
		b := buf[:0]
		for _, f := range fs {
			if v := f(r); v.Kind != KindNull {
				b = v.AppendText(b)
			}
		}
		return string(b), true
	}}, nil
}

// splitPart returns the n-th (1-based; negative counts from the end) part of s
// split at sep, or "" when there is no such part.
func splitPart(s, sep string, n float64) (string, bool) {
	n = math.Trunc(n)
	if n == 0 || math.IsNaN(n) {
		return "", false
	}
	if sep == "" {
		if n == 1 || n == -1 {
			return s, true
		}
		return "", true
	}
	if n < 0 {
		parts := strings.Count(s, sep) + 1
		n = float64(parts) + n + 1
		if n < 1 {
			return "", true
		}
	}
	for i := 1.0; ; i++ {
		j := strings.Index(s, sep)
		if i == n {
			if j < 0 {
				return s, true
			}
			return s[:j], true
		}
		if j < 0 {
			return "", true
		}
		s = s[j+len(sep):]
	}
}

func fnSplitPart(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 3, 3); err != nil {
		return nil, err
	}
	for i, k := range []Kind{KindString, KindString, KindNumber} {
		if err := c.want(a, args, i, k); err != nil {
			return nil, err
		}
	}
	s, sep, idx := args[0].strf(), args[1].strf(), args[2].numf()
	return &cnode{kind: KindString, pos: a.pos, str: func(r *Record) (string, bool) {
		x, xok := s(r)
		p, pok := sep(r)
		n, nok := idx(r)
		if !xok || !pok || !nok {
			return "", false
		}
		return splitPart(x, p, n)
	}}, nil
}

func fnRegexMatch(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 2, 2); err != nil {
		return nil, err
	}
	if err := c.want(a, args, 0, KindString); err != nil {
		return nil, err
	}
	if a.kids[1].op != opStr {
		return nil, c.errAt(args[1].pos, ErrType, "", "regex_match: the pattern must be a string literal")
	}
	re, err := regexp.Compile(a.kids[1].str)
	if err != nil {
		return nil, c.errAt(args[1].pos, nil, "", "regex_match: %v", err)
	}
	s := args[0].strf()
	n := &cnode{kind: KindBool, pos: a.pos, bln: func(r *Record) (bool, bool) {
		x, ok := s(r)
		if !ok {
			return false, false
		}
		return re.MatchString(x), true
	}}
	return fold(n, args[0]), nil
}

func fnUnixMs(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	if err := c.want(a, args, 0, KindTime); err != nil {
		return nil, err
	}
	return &cnode{kind: KindNumber, pos: a.pos, isNull: args[0].isNull, num: args[0].num}, nil
}

func fnTimeMs(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	if err := c.want(a, args, 0, KindNumber); err != nil {
		return nil, err
	}
	f := args[0].numf()
	return &cnode{kind: KindTime, pos: a.pos, num: func(r *Record) (float64, bool) {
		v, ok := f(r)
		return math.Trunc(v), ok
	}}, nil
}

// maxTimeMs bounds the times hour, minute and day_of_week accept (year ±292277).
const maxTimeMs = 9e15

func timePart(part func(time.Time) int) funcCompiler {
	return func(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
		if err := c.arity(a, args, 1, 1); err != nil {
			return nil, err
		}
		if err := c.want(a, args, 0, KindTime); err != nil {
			return nil, err
		}
		f := args[0].numf()
		return &cnode{kind: KindNumber, pos: a.pos, num: func(r *Record) (float64, bool) {
			v, ok := f(r)
			if !ok || !(v > -maxTimeMs && v < maxTimeMs) {
				return 0, false
			}
			return float64(part(time.UnixMilli(int64(v)).UTC())), true
		}}, nil
	}
}

func fnIsNull(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, 1); err != nil {
		return nil, err
	}
	return isNullNode(args[0], a.pos), nil
}

// branchKind is the common kind of the values coalesce and if choose between.
func (c *compiler) branchKind(a *ast, args []*cnode) (Kind, bool, *ExprError) {
	dyn := false
	for _, x := range args {
		dyn = dyn || x.dyn
	}
	if dyn {
		for _, x := range args {
			if !x.dyn && !(x.isNull && x.kind == KindNull) {
				return 0, false, c.typeErr(x.pos, args, "%s: cannot mix an untyped field with %s; convert it with number(), str() or bool()", a.name, kindName(x))
			}
		}
		return KindNull, true, nil
	}
	k, ok := sameKind(args)
	if !ok {
		return 0, false, c.typeErr(a.pos, args, "%s: values have different kinds (%s)", a.name, kindList(args))
	}
	return k, false, nil
}

func kindList(ns []*cnode) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = kindName(n)
	}
	return strings.Join(s, ", ")
}

func fnCoalesce(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 1, -1); err != nil {
		return nil, err
	}
	k, dyn, err := c.branchKind(a, args)
	if err != nil {
		return nil, err
	}
	n := &cnode{kind: k, dyn: dyn, pos: a.pos}
	switch {
	case k == KindNull && !dyn:
		n.isNull = true
	case k == KindNumber || k == KindTime:
		fs := make([]numFn, len(args))
		for i, x := range args {
			fs[i] = x.numf()
		}
		n.num = func(r *Record) (float64, bool) {
			for _, f := range fs {
				if v, ok := f(r); ok {
					return v, true
				}
			}
			return 0, false
		}
	case k == KindString:
		fs := make([]strFn, len(args))
		for i, x := range args {
			fs[i] = x.strf()
		}
		n.str = func(r *Record) (string, bool) {
			for _, f := range fs {
				if v, ok := f(r); ok {
					return v, true
				}
			}
			return "", false
		}
	case k == KindBool:
		fs := make([]boolFn, len(args))
		for i, x := range args {
			fs[i] = x.boolf()
		}
		n.bln = func(r *Record) (bool, bool) {
			for _, f := range fs {
				if v, ok := f(r); ok {
					return v, true
				}
			}
			return false, false
		}
	default: // list or dynamic
		fs := make([]valFn, len(args))
		for i, x := range args {
			fs[i] = x.valf()
		}
		n.val = func(r *Record) Value {
			for _, f := range fs {
				if v := f(r); v.Kind != KindNull {
					return v
				}
			}
			return Null
		}
	}
	return n, nil
}

func fnIf(c *compiler, a *ast, args []*cnode) (*cnode, *ExprError) {
	if err := c.arity(a, args, 3, 3); err != nil {
		return nil, err
	}
	if err := c.want(a, args, 0, KindBool); err != nil {
		return nil, err
	}
	k, dyn, err := c.branchKind(a, args[1:])
	if err != nil {
		return nil, err
	}
	cond := args[0].boolf()
	x, y := args[1], args[2]
	n := &cnode{kind: k, dyn: dyn, pos: a.pos}
	// A null condition chooses the else branch, as SQL's CASE does.
	switch {
	case k == KindNull && !dyn:
		n.isNull = true
	case k == KindNumber || k == KindTime:
		xf, yf := x.numf(), y.numf()
		n.num = func(r *Record) (float64, bool) {
			if b, ok := cond(r); ok && b {
				return xf(r)
			}
			return yf(r)
		}
	case k == KindString:
		xf, yf := x.strf(), y.strf()
		n.str = func(r *Record) (string, bool) {
			if b, ok := cond(r); ok && b {
				return xf(r)
			}
			return yf(r)
		}
	case k == KindBool:
		xf, yf := x.boolf(), y.boolf()
		n.bln = func(r *Record) (bool, bool) {
			if b, ok := cond(r); ok && b {
				return xf(r)
			}
			return yf(r)
		}
	default:
		xf, yf := x.valf(), y.valf()
		n.val = func(r *Record) Value {
			if b, ok := cond(r); ok && b {
				return xf(r)
			}
			return yf(r)
		}
	}
	return n, nil
}
