package engine

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ExprError is a compile error of an expression. The pipeline planner wraps it
// in a PlanError that adds the pipeline and the step.
type ExprError struct {
	Expr   string // the expression source
	Pos    int    // byte offset of the offending token in Expr (reported 1-based as "column")
	Column string // the input field the error is about, if any
	Msg    string // what is wrong

	kind error // ErrUnknownField, ErrType or nil, for errors.Is
}

// Error reads like
//
//	expression "temp > 'x'": column 6: cannot compare number with string (field "temp")
func (e *ExprError) Error() string {
	var b strings.Builder
	b.WriteString("expression ")
	b.WriteString(strconv.Quote(e.Expr))
	b.WriteString(": column ")
	b.WriteString(strconv.Itoa(e.Pos + 1))
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Column != "" && !strings.Contains(e.Msg, strconv.Quote(e.Column)) {
		b.WriteString(" (field ")
		b.WriteString(strconv.Quote(e.Column))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns ErrUnknownField for unknown names, ErrType for type errors and
// nil for syntax errors.
func (e *ExprError) Unwrap() error { return e.kind }

// Typed evaluation closures. The bool result is false when the value is null;
// the first result is then meaningless.
type (
	numFn  func(r *Record) (float64, bool) // KindNumber, and KindTime as unix ms
	strFn  func(r *Record) (string, bool)
	boolFn func(r *Record) (bool, bool)
	valFn  func(r *Record) Value
)

// cnode is a compiled, type-checked expression node. Exactly one of num, str,
// bln, val is the node's evaluator, chosen by kind:
//
//	KindNumber, KindTime  num
//	KindString            str
//	KindBool              bln
//	KindList, dynamic     val
//
// A null literal has kind KindNull and isNull set; it fits wherever a value of
// any kind is expected. A node of a known kind whose value is always null (such
// as temp + null) has isNull set too.
type cnode struct {
	kind     Kind
	dyn      bool // kind known only at run time (a schema field of kind null)
	isNull   bool // always null
	isConst  bool // does not read the record
	pos      int
	field    string // input field this node reads (or derives from), for messages
	plain    bool   // a plain reference to input field fieldIdx of a typed kind
	fieldIdx int
	num      numFn
	str      strFn
	bln      boolFn
	val      valFn
}

func nullNum(*Record) (float64, bool) { return 0, false }
func nullStr(*Record) (string, bool)  { return "", false }
func nullBool(*Record) (bool, bool)   { return false, false }
func nullVal(*Record) Value           { return Null }

// numf, strf, boolf and valf return the node's evaluator in the wanted form;
// for an always-null node they return the null evaluator of that form.
func (n *cnode) numf() numFn {
	if n.isNull || n.num == nil {
		return nullNum
	}
	return n.num
}

func (n *cnode) strf() strFn {
	if n.isNull || n.str == nil {
		return nullStr
	}
	return n.str
}

func (n *cnode) boolf() boolFn {
	if n.isNull || n.bln == nil {
		return nullBool
	}
	return n.bln
}

func (n *cnode) valf() valFn {
	switch {
	case n.isNull:
		return nullVal
	case n.val != nil:
		return n.val
	}
	switch n.kind {
	case KindNumber, KindTime:
		f, k := n.num, n.kind
		return func(r *Record) Value {
			x, ok := f(r)
			if !ok {
				return Null
			}
			return Value{Kind: k, Num: x}
		}
	case KindString:
		f := n.str
		return func(r *Record) Value {
			s, ok := f(r)
			if !ok {
				return Null
			}
			return Value{Kind: KindString, Str: s}
		}
	case KindBool:
		f := n.bln
		return func(r *Record) Value {
			b, ok := f(r)
			if !ok {
				return Null
			}
			return Bool(b)
		}
	}
	return nullVal
}

// constNode returns a constant node holding v, of kind k (v may be null).
func constNode(v Value, k Kind, pos int) *cnode {
	n := &cnode{kind: k, isConst: true, pos: pos}
	if v.IsNull() {
		n.isNull = true
		return n
	}
	switch k {
	case KindNumber, KindTime:
		x := v.Num
		n.num = func(*Record) (float64, bool) { return x, true }
	case KindString:
		s := v.Str
		n.str = func(*Record) (string, bool) { return s, true }
	case KindBool:
		b := v.Num != 0
		n.bln = func(*Record) (bool, bool) { return b, true }
	default:
		n.val = func(*Record) Value { return v }
	}
	return n
}

// constValue evaluates a constant node.
func (n *cnode) constValue() Value { return n.valf()(&Record{}) }

// fold replaces a node whose operands are all constant by its value.
func fold(n *cnode, kids ...*cnode) *cnode {
	for _, k := range kids {
		if !k.isConst {
			return n
		}
	}
	if n.dyn {
		return n
	}
	return constNode(n.constValue(), n.kind, n.pos)
}

type compiler struct {
	src    string
	schema *Schema
}

func (c *compiler) errAt(pos int, kind error, column, format string, args ...any) *ExprError {
	return &ExprError{Expr: c.src, Pos: pos, Column: column, Msg: fmt.Sprintf(format, args...), kind: kind}
}

// typeErr is a type error about operands ns, naming the first that is a field.
func (c *compiler) typeErr(pos int, ns []*cnode, format string, args ...any) *ExprError {
	col := ""
	for _, n := range ns {
		if n.field != "" {
			col = n.field
			break
		}
	}
	return c.errAt(pos, ErrType, col, format, args...)
}

// kindName names a node's kind for messages.
func kindName(n *cnode) string {
	if n.dyn {
		return "untyped field"
	}
	return n.kind.String()
}

// CompileExpr parses src and type-checks it against the records of schema s
// (nil means no fields). See Expr for the language. Errors are *ExprError.
func CompileExpr(src string, s *Schema) (*Expr, error) {
	if s == nil {
		s = MustSchema()
	}
	if len(src) > maxExprLen {
		return nil, &ExprError{Expr: src[:64] + "...", Msg: fmt.Sprintf("expression longer than %d bytes", maxExprLen)}
	}
	a, perr := parseExpr(src)
	if perr != nil {
		perr.Expr = src
		return nil, perr
	}
	c := &compiler{src: src, schema: s}
	n, err := c.compile(a)
	if err != nil {
		return nil, err
	}
	e := &Expr{src: src, kind: n.kind, node: n, val: n.valf()}
	if n.dyn {
		e.kind = KindNull
	}
	if n.kind == KindBool {
		e.pred = n.boolf()
	}
	return e, nil
}

func (c *compiler) compile(a *ast) (*cnode, *ExprError) {
	switch a.op {
	case opNum:
		return constNode(Number(a.num), KindNumber, a.pos), nil
	case opStr:
		return constNode(String(a.str), KindString, a.pos), nil
	case opBool:
		return constNode(Bool(a.b), KindBool, a.pos), nil
	case opNull:
		return &cnode{kind: KindNull, isNull: true, isConst: true, pos: a.pos}, nil
	case opTime:
		return &cnode{kind: KindTime, pos: a.pos, field: "_time",
			num: func(r *Record) (float64, bool) { return float64(r.Time), true }}, nil
	case opKey:
		return &cnode{kind: KindString, pos: a.pos, field: "_key",
			str: func(r *Record) (string, bool) { return r.Key, true }}, nil
	case opField:
		return c.field(a)
	case opUnary:
		return c.unary(a)
	case opBinary:
		return c.binary(a)
	case opIn:
		return c.in(a)
	case opCond:
		args, err := c.compileAll(a.kids)
		if err != nil {
			return nil, err
		}
		n, err := fnIf(c, a, args)
		if err != nil {
			return nil, err
		}
		return fold(n, args...), nil
	case opCall:
		return c.call(a)
	}
	return nil, c.errAt(a.pos, nil, "", "BUG: unknown node %q", a.op)
}

func (c *compiler) compileAll(as []*ast) ([]*cnode, *ExprError) {
	ns := make([]*cnode, len(as))
	for i, a := range as {
		n, err := c.compile(a)
		if err != nil {
			return nil, err
		}
		ns[i] = n
	}
	return ns, nil
}

func (c *compiler) field(a *ast) (*cnode, *ExprError) {
	i, ok := c.schema.Index(a.name)
	if !ok {
		return nil, c.errAt(a.pos, ErrUnknownField, a.name, "unknown field %q (have %s)", a.name, c.schema.names())
	}
	k := c.schema.Field(i).Kind
	n := &cnode{kind: k, pos: a.pos, field: a.name, fieldIdx: i}
	switch k {
	case KindNumber, KindTime:
		n.num = func(r *Record) (float64, bool) { v := &r.Vals[i]; return v.Num, v.Kind == k }
	case KindString:
		n.str = func(r *Record) (string, bool) { v := &r.Vals[i]; return v.Str, v.Kind == KindString }
	case KindBool:
		n.bln = func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num != 0, v.Kind == KindBool }
	default: // KindList, or KindNull: a field whose kind is only known at run time
		n.dyn = k == KindNull
		n.val = func(r *Record) Value { return r.Vals[i] }
		return n, nil
	}
	n.plain = true
	// Projection of a plain field copies the value without the typed detour,
	// keeping the static kind promise (a mismatching value reads as null).
	n.val = func(r *Record) Value {
		v := r.Vals[i]
		if v.Kind != k {
			return Null
		}
		return v
	}
	return n, nil
}

func (c *compiler) unary(a *ast) (*cnode, *ExprError) {
	x, err := c.compile(a.kids[0])
	if err != nil {
		return nil, err
	}
	switch a.name {
	case "not":
		if x.isNull && x.kind == KindNull {
			return &cnode{kind: KindBool, isNull: true, isConst: true, pos: a.pos}, nil
		}
		if x.kind != KindBool || x.dyn {
			return nil, c.typeErr(a.pos, []*cnode{x}, "not needs a bool, have %s", kindName(x))
		}
		f := x.boolf()
		return fold(&cnode{kind: KindBool, pos: a.pos, bln: func(r *Record) (bool, bool) {
			b, ok := f(r)
			return !b, ok
		}}, x), nil
	default: // "-", "+"
		if x.isNull && x.kind == KindNull {
			return &cnode{kind: KindNumber, isNull: true, isConst: true, pos: a.pos}, nil
		}
		if x.kind != KindNumber || x.dyn {
			return nil, c.typeErr(a.pos, []*cnode{x}, "unary %s needs a number, have %s", a.name, kindName(x))
		}
		if a.name == "+" {
			return x, nil
		}
		f := x.numf()
		return fold(&cnode{kind: KindNumber, pos: a.pos, field: x.field, num: func(r *Record) (float64, bool) {
			v, ok := f(r)
			return -v, ok
		}}, x), nil
	}
}

func (c *compiler) binary(a *ast) (*cnode, *ExprError) {
	l, err := c.compile(a.kids[0])
	if err != nil {
		return nil, err
	}
	r, err := c.compile(a.kids[1])
	if err != nil {
		return nil, err
	}
	switch a.name {
	case "and", "or":
		return c.logical(a, l, r)
	case "==", "!=", "<", "<=", ">", ">=":
		// x == null and x != null are null checks, never null themselves.
		if a.kids[1].op == opNull || a.kids[0].op == opNull {
			if a.name == "==" || a.name == "!=" {
				x := l
				if a.kids[0].op == opNull {
					x = r
				}
				n := isNullNode(x, a.pos)
				if a.name == "!=" {
					f := n.bln
					n.bln = func(r *Record) (bool, bool) { b, _ := f(r); return !b, true }
				}
				return fold(n, x), nil
			}
			return &cnode{kind: KindBool, isNull: true, isConst: true, pos: a.pos}, nil
		}
		return c.comparison(a, l, r)
	}
	return c.arith(a, l, r)
}

// isNullNode is is_null(x).
func isNullNode(x *cnode, pos int) *cnode {
	n := &cnode{kind: KindBool, pos: pos}
	switch {
	case x.isNull:
		n.bln = func(*Record) (bool, bool) { return true, true }
	case x.val != nil && (x.dyn || x.kind == KindList):
		f := x.val
		n.bln = func(r *Record) (bool, bool) { return f(r).Kind == KindNull, true }
	case x.kind == KindNumber || x.kind == KindTime:
		f := x.num
		n.bln = func(r *Record) (bool, bool) { _, ok := f(r); return !ok, true }
	case x.kind == KindString:
		f := x.str
		n.bln = func(r *Record) (bool, bool) { _, ok := f(r); return !ok, true }
	case x.kind == KindBool:
		f := x.bln
		n.bln = func(r *Record) (bool, bool) { _, ok := f(r); return !ok, true }
	default:
		n.bln = func(*Record) (bool, bool) { return true, true }
	}
	return n
}

func (c *compiler) logical(a *ast, l, r *cnode) (*cnode, *ExprError) {
	for _, x := range []*cnode{l, r} {
		if x.dyn || x.kind != KindBool && !(x.isNull && x.kind == KindNull) {
			return nil, c.typeErr(x.pos, []*cnode{x}, "%s needs bool operands, have %s", a.name, kindName(x))
		}
	}
	lf, rf := l.boolf(), r.boolf()
	n := &cnode{kind: KindBool, pos: a.pos}
	// Three-valued (Kleene) logic: false and null = false, true or null = true.
	if a.name == "and" {
		n.bln = func(r *Record) (bool, bool) {
			x, xok := lf(r)
			if xok && !x {
				return false, true
			}
			y, yok := rf(r)
			if yok && !y {
				return false, true
			}
			return true, xok && yok
		}
	} else {
		n.bln = func(r *Record) (bool, bool) {
			x, xok := lf(r)
			if xok && x {
				return true, true
			}
			y, yok := rf(r)
			if yok && y {
				return true, true
			}
			return false, xok && yok
		}
	}
	return fold(n, l, r), nil
}

// sameKind unifies the kinds of operands that must agree: untyped nulls adopt
// the other kind. It returns KindNull with ok when all are untyped nulls.
func sameKind(ns []*cnode) (Kind, bool) {
	k := KindNull
	for _, n := range ns {
		if n.isNull && n.kind == KindNull {
			continue
		}
		if n.dyn {
			return KindNull, false
		}
		if k == KindNull {
			k = n.kind
		} else if n.kind != k {
			return KindNull, false
		}
	}
	return k, true
}

func (c *compiler) comparison(a *ast, l, r *cnode) (*cnode, *ExprError) {
	ops := []*cnode{l, r}
	k, ok := sameKind(ops)
	if !ok {
		return nil, c.typeErr(a.pos, ops, "cannot compare %s with %s", kindName(l), kindName(r))
	}
	n := &cnode{kind: KindBool, pos: a.pos}
	ordered := a.name != "==" && a.name != "!="
	switch k {
	case KindNumber, KindTime:
		n.bln = cmpNum(a.name, l, r)
	case KindString:
		n.bln = cmpOrdered(a.name, l.strf(), r.strf())
	case KindBool:
		if ordered {
			return nil, c.typeErr(a.pos, ops, "cannot order bools with %s", a.name)
		}
		lf, rf := l.boolf(), r.boolf()
		eq := a.name == "=="
		n.bln = func(r *Record) (bool, bool) {
			x, xok := lf(r)
			y, yok := rf(r)
			return (x == y) == eq, xok && yok
		}
	case KindNull:
		n.isNull, n.isConst = true, true
		return n, nil
	default:
		return nil, c.typeErr(a.pos, ops, "cannot compare %s values", k)
	}
	return fold(n, l, r), nil
}

// cmpNum compares numbers (or times). A field compared with a constant, the
// common filter, is fused into one closure that reads the record directly.
func cmpNum(op string, l, r *cnode) boolFn {
	if i, ok := fieldIndexOf(l); ok && r.isConst && !r.isNull {
		c := r.constValue().Num
		k := l.kind
		switch op {
		case "==":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num == c, v.Kind == k }
		case "!=":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num != c, v.Kind == k }
		case "<":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num < c, v.Kind == k }
		case "<=":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num <= c, v.Kind == k }
		case ">":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num > c, v.Kind == k }
		case ">=":
			return func(r *Record) (bool, bool) { v := &r.Vals[i]; return v.Num >= c, v.Kind == k }
		}
	}
	return cmpOrdered(op, l.numf(), r.numf())
}

// fieldIndexOf reports the record position a plain field node reads.
func fieldIndexOf(n *cnode) (int, bool) {
	return n.fieldIdx, n.plain && (n.kind == KindNumber || n.kind == KindTime)
}

func cmpOrdered[T float64 | string](op string, lf, rf func(*Record) (T, bool)) boolFn {
	switch op {
	case "==":
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x == y, xok && yok }
	case "!=":
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x != y, xok && yok }
	case "<":
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x < y, xok && yok }
	case "<=":
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x <= y, xok && yok }
	case ">":
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x > y, xok && yok }
	default: // ">="
		return func(r *Record) (bool, bool) { x, xok := lf(r); y, yok := rf(r); return x >= y, xok && yok }
	}
}

// finite turns NaN and infinities into null.
func finite(x float64) (float64, bool) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}

func (c *compiler) arith(a *ast, l, r *cnode) (*cnode, *ExprError) {
	ops := []*cnode{l, r}
	lk, rk := l.kind, r.kind
	// An untyped null adopts the other operand's kind.
	if l.isNull && lk == KindNull {
		lk = rk
	}
	if r.isNull && rk == KindNull {
		rk = lk
	}
	if l.dyn || r.dyn {
		return nil, c.typeErr(a.pos, ops, "operator %s needs typed operands, have %s and %s; convert with number() or str()", a.name, kindName(l), kindName(r))
	}
	var k Kind
	switch {
	case lk == KindNull && rk == KindNull:
		return &cnode{kind: KindNull, isNull: true, isConst: true, pos: a.pos}, nil
	case lk == KindNumber && rk == KindNumber:
		k = KindNumber
	case a.name == "+" && lk == KindString && rk == KindString:
		lf, rf := l.strf(), r.strf()
		return fold(&cnode{kind: KindString, pos: a.pos, field: firstField(l, r), str: func(r *Record) (string, bool) {
			x, xok := lf(r)
			y, yok := rf(r)
			if !xok || !yok {
				return "", false
			}
			return x + y, true
		}}, l, r), nil
	case a.name == "+" && (lk == KindTime && rk == KindNumber || lk == KindNumber && rk == KindTime):
		k = KindTime
	case a.name == "-" && lk == KindTime && rk == KindNumber:
		k = KindTime
	case a.name == "-" && lk == KindTime && rk == KindTime:
		k = KindNumber
	default:
		return nil, c.typeErr(a.pos, ops, "cannot apply %s to %s and %s", a.name, lk, rk)
	}
	n := &cnode{kind: k, pos: a.pos, field: firstField(l, r)}
	if l.isNull || r.isNull {
		n.isNull, n.isConst = true, true
		return n, nil
	}
	lf, rf := l.num, r.num
	switch a.name {
	case "+":
		n.num = func(r *Record) (float64, bool) { x, xok := lf(r); y, yok := rf(r); return x + y, xok && yok }
	case "-":
		n.num = func(r *Record) (float64, bool) { x, xok := lf(r); y, yok := rf(r); return x - y, xok && yok }
	case "*":
		n.num = func(r *Record) (float64, bool) { x, xok := lf(r); y, yok := rf(r); return x * y, xok && yok }
	case "/":
		n.num = func(r *Record) (float64, bool) {
			x, xok := lf(r)
			y, yok := rf(r)
			if !xok || !yok || y == 0 {
				return 0, false
			}
			return finite(x / y)
		}
	case "%":
		n.num = func(r *Record) (float64, bool) {
			x, xok := lf(r)
			y, yok := rf(r)
			if !xok || !yok || y == 0 {
				return 0, false
			}
			return finite(math.Mod(x, y))
		}
	}
	return fold(n, l, r), nil
}

func (c *compiler) in(a *ast) (*cnode, *ExprError) {
	ns, err := c.compileAll(a.kids)
	if err != nil {
		return nil, err
	}
	x, list := ns[0], ns[1:]
	k, ok := sameKind(ns)
	if !ok {
		for _, e := range list {
			if kk, ok := sameKind([]*cnode{x, e}); !ok || kk == KindList {
				return nil, c.typeErr(e.pos, []*cnode{x, e}, "in: cannot compare %s with %s", kindName(x), kindName(e))
			}
		}
		return nil, c.typeErr(a.pos, ns, "in: list elements have different kinds")
	}
	neg := a.name == "not in"
	n := &cnode{kind: KindBool, pos: a.pos}
	allConst := true
	for _, e := range list {
		allConst = allConst && e.isConst
	}
	// x in [] is false; x in [..., null] is null when x matches nothing (SQL).
	var member boolFn
	switch k {
	case KindNull:
		n.isNull, n.isConst = true, true
		return n, nil
	case KindNumber, KindTime:
		xf := x.numf()
		if allConst {
			var set []float64
			hasNull := false
			for _, e := range list {
				if v := e.constValue(); v.IsNull() {
					hasNull = true
				} else {
					set = append(set, v.Num)
				}
			}
			member = func(r *Record) (bool, bool) {
				v, ok := xf(r)
				if !ok {
					return false, false
				}
				for _, s := range set {
					if s == v {
						return true, true
					}
				}
				return false, !hasNull
			}
		} else {
			member = memberOf(xf, evalFns(list, (*cnode).numf))
		}
	case KindString:
		xf := x.strf()
		if allConst && len(list) > 8 {
			set := make(map[string]struct{}, len(list))
			hasNull := false
			for _, e := range list {
				if v := e.constValue(); v.IsNull() {
					hasNull = true
				} else {
					set[v.Str] = struct{}{}
				}
			}
			member = func(r *Record) (bool, bool) {
				v, ok := xf(r)
				if !ok {
					return false, false
				}
				if _, in := set[v]; in {
					return true, true
				}
				return false, !hasNull
			}
		} else {
			member = memberOf(xf, evalFns(list, (*cnode).strf))
		}
	case KindBool:
		member = memberOf(x.boolf(), evalFns(list, (*cnode).boolf))
	default:
		return nil, c.typeErr(a.pos, ns, "in: cannot compare %s values", k)
	}
	if neg {
		n.bln = func(r *Record) (bool, bool) { b, ok := member(r); return !b, ok }
	} else {
		n.bln = member
	}
	return fold(n, ns...), nil
}

// evalFns returns the typed evaluator of every node, fn being one of
// (*cnode).numf, strf or boolf.
func evalFns[F any](ns []*cnode, fn func(*cnode) F) []F {
	fs := make([]F, len(ns))
	for i, n := range ns {
		fs[i] = fn(n)
	}
	return fs
}

// memberOf is "x in list" for non-constant lists: true when x equals an
// element, false when it equals none, null when x is null or when it matches
// nothing and some element is null (SQL).
func memberOf[T comparable, F ~func(*Record) (T, bool)](xf F, fs []F) boolFn {
	return func(r *Record) (bool, bool) {
		v, ok := xf(r)
		if !ok {
			return false, false
		}
		known := true
		for _, f := range fs {
			s, sok := f(r)
			if !sok {
				known = false
			} else if s == v {
				return true, true
			}
		}
		return false, known
	}
}

// firstField returns the first input field named by the nodes, for messages.
func firstField(ns ...*cnode) string {
	for _, n := range ns {
		if n.field != "" {
			return n.field
		}
	}
	return ""
}

// setFn evaluates into *dst, writing only the words the result needs: cheaper
// than returning a whole Value when filling output records.
type setFn func(r *Record, dst *Value)

// setf returns the node's evaluator in store-into form.
func (n *cnode) setf() setFn {
	if n.isNull {
		return func(_ *Record, d *Value) { *d = Value{} }
	}
	switch {
	case n.val != nil && (n.dyn || n.kind == KindList || n.plain):
		f := n.val
		return func(r *Record, d *Value) { *d = f(r) }
	case n.kind == KindNumber || n.kind == KindTime || n.kind == KindBool:
		k := n.kind
		var f numFn
		if k == KindBool {
			b := n.bln
			f = func(r *Record) (float64, bool) {
				x, ok := b(r)
				if x {
					return 1, ok
				}
				return 0, ok
			}
		} else {
			f = n.num
		}
		return func(r *Record, d *Value) {
			x, ok := f(r)
			if !ok {
				*d = Value{}
				return
			}
			d.Kind, d.Num = k, x
			if d.Str != "" || d.list != nil {
				d.Str, d.list = "", nil
			}
		}
	case n.kind == KindString:
		f := n.str
		return func(r *Record, d *Value) {
			s, ok := f(r)
			if !ok {
				*d = Value{}
				return
			}
			d.Kind, d.Num, d.Str = KindString, 0, s
			if d.list != nil {
				d.list = nil
			}
		}
	}
	f := n.valf()
	return func(r *Record, d *Value) { *d = f(r) }
}
