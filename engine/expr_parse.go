package engine

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the lexer and the recursive-descent parser of the expression
// language. Both run once, at pipeline load; nothing here is on the record path.

type tokKind uint8

const (
	tEOF tokKind = iota
	tNum
	tStr
	tIdent  // name or keyword
	tQIdent // `backquoted name`
	tOp     // punctuation and operators
)

type token struct {
	kind tokKind
	pos  int    // byte offset in the source
	text string // tIdent, tQIdent, tOp: the text; tStr: the unescaped string
	num  float64
}

// maxExprDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxExprDepth = 200

// maxExprLen bounds the source length accepted by CompileExpr.
const maxExprLen = 64 << 10

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentByte(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '.'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lex splits src into tokens. It fails on the first malformed token.
func lex(src string) ([]token, *ExprError) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isDigit(c) || c == '.' && i+1 < len(src) && isDigit(src[i+1]):
			t, n, err := lexNumber(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = n
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentByte(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, pos: i, text: src[i:j]})
			i = j
		case c == '`':
			j := strings.IndexByte(src[i+1:], '`')
			if j < 0 {
				return nil, &ExprError{Pos: i, Msg: "unterminated `name`"}
			}
			if j == 0 {
				return nil, &ExprError{Pos: i, Msg: "empty `name`"}
			}
			toks = append(toks, token{kind: tQIdent, pos: i, text: src[i+1 : i+1+j]})
			i += j + 2
		case c == '"' || c == '\'':
			s, n, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tStr, pos: i, text: s})
			i = n
		default:
			op := ""
			if i+1 < len(src) {
				switch two := src[i : i+2]; two {
				case "==", "!=", "<=", ">=", "<>", "&&", "||":
					op = two
				}
			}
			if op == "" {
				switch c {
				case '+', '-', '*', '/', '%', '<', '>', '=', '!', '?', ':', '(', ')', '[', ']', ',':
					op = src[i : i+1]
				default:
					r, _ := utf8.DecodeRuneInString(src[i:])
					return nil, &ExprError{Pos: i, Msg: "unexpected character " + strconv.QuoteRune(r)}
				}
			}
			toks = append(toks, token{kind: tOp, pos: i, text: op})
			i += len(op)
		}
	}
	return append(toks, token{kind: tEOF, pos: len(src)}), nil
}

var durationUnits = map[string]float64{
	"ms": 1, "s": 1000, "m": 60 * 1000, "h": 3600 * 1000, "d": 24 * 3600 * 1000,
}

// lexNumber reads a number (digits, fraction, exponent) optionally followed by
// a duration unit; "1h30m" is a compound duration. Durations are milliseconds.
func lexNumber(src string, start int) (token, int, *ExprError) {
	i := start
	total := 0.0
	isDur := false
	for {
		j := i
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j < len(src) && src[j] == '.' {
			j++
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k < len(src) && isDigit(src[k]) {
				for k < len(src) && isDigit(src[k]) {
					k++
				}
				j = k
			}
		}
		f, err := strconv.ParseFloat(src[i:j], 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, 0, &ExprError{Pos: i, Msg: "malformed number " + strconv.Quote(src[i:j])}
		}
		if j >= len(src) || !isIdentStart(src[j]) {
			if isDur {
				return token{}, 0, &ExprError{Pos: i, Msg: "duration part " + strconv.Quote(src[i:j]) + " has no unit"}
			}
			return token{kind: tNum, pos: start, num: f}, j, nil
		}
		k := j
		for k < len(src) && isIdentByte(src[k]) && !isDigit(src[k]) && src[k] != '.' {
			k++
		}
		unit := src[j:k]
		mul, ok := durationUnits[unit]
		if !ok {
			return token{}, 0, &ExprError{Pos: j, Msg: "unknown duration unit " + strconv.Quote(unit) + " (use ms, s, m, h or d)"}
		}
		total += f * mul
		isDur = true
		if k < len(src) && (isDigit(src[k]) || src[k] == '.') {
			i = k
			continue
		}
		if k < len(src) && isIdentByte(src[k]) {
			return token{}, 0, &ExprError{Pos: k, Msg: "malformed duration"}
		}
		return token{kind: tNum, pos: start, num: total}, k, nil
	}
}

// lexString reads a quoted string with backslash escapes: \n \t \r \0 \\ \' \"
// \/ \xHH \uHHHH.
func lexString(src string, start int) (string, int, *ExprError) {
	q := src[start]
	var b strings.Builder
	i := start + 1
	for i < len(src) {
		c := src[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(src) {
				return "", 0, &ExprError{Pos: i, Msg: "unterminated string"}
			}
			e := src[i+1]
			i += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case '\\', '\'', '"', '/':
				b.WriteByte(e)
			case 'x', 'u':
				n := 2
				if e == 'u' {
					n = 4
				}
				if i+n > len(src) {
					return "", 0, &ExprError{Pos: i - 2, Msg: "short \\" + string(e) + " escape"}
				}
				v, err := strconv.ParseUint(src[i:i+n], 16, 32)
				if err != nil {
					return "", 0, &ExprError{Pos: i - 2, Msg: "malformed \\" + string(e) + " escape"}
				}
				if e == 'x' {
					b.WriteByte(byte(v))
				} else {
					b.WriteRune(rune(v))
				}
				i += n
			default:
				return "", 0, &ExprError{Pos: i - 2, Msg: "unknown escape \\" + string(rune(e))}
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, &ExprError{Pos: start, Msg: "unterminated string"}
}

// ast is a parsed expression node.
type ast struct {
	op   string // see the parser for the set of ops
	pos  int
	name string  // field, function; op text for unary and binary nodes
	num  float64 // number literal
	str  string  // string literal
	b    bool    // bool literal
	kids []*ast
}

// AST ops.
const (
	opNum    = "num"
	opStr    = "str"
	opBool   = "bool"
	opNull   = "null"
	opField  = "field"
	opTime   = "_time"
	opKey    = "_key"
	opCall   = "call"
	opUnary  = "unary" // name: "-", "not"
	opBinary = "binary"
	opIn     = "in" // kids[0] in kids[1:]; name "in" or "not in"
	opCond   = "cond"
)

type parser struct {
	toks  []token
	i     int
	depth int
}

func parseExpr(src string) (*ast, *ExprError) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t, "end of expression")
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isOp reports whether the next token is one of the given operators or
// keywords (keywords compare case-insensitively).
func (p *parser) isOp(ops ...string) (string, bool) {
	t := p.peek()
	for _, o := range ops {
		if t.kind == tOp && t.text == o || t.kind == tIdent && isKeyword(o) && strings.EqualFold(t.text, o) {
			return o, true
		}
	}
	return "", false
}

func isKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "true", "false", "null":
		return true
	}
	return false
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tNum:
		return "number"
	case tStr:
		return "string " + strconv.Quote(t.text)
	case tQIdent:
		return "`" + t.text + "`"
	}
	return strconv.Quote(t.text)
}

func (p *parser) unexpected(t token, want string) *ExprError {
	return &ExprError{Pos: t.pos, Msg: "unexpected " + describe(t) + ", want " + want}
}

func (p *parser) enter(t token) *ExprError {
	p.depth++
	if p.depth > maxExprDepth {
		return &ExprError{Pos: t.pos, Msg: "expression nested too deeply"}
	}
	return nil
}

func (p *parser) ternary() (*ast, *ExprError) {
	if err := p.enter(p.peek()); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	c, err := p.or()
	if err != nil {
		return nil, err
	}
	if _, ok := p.isOp("?"); !ok {
		return c, nil
	}
	q := p.next()
	a, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if _, ok := p.isOp(":"); !ok {
		return nil, p.unexpected(p.peek(), `":" of "?:"`)
	}
	p.next()
	b, err := p.ternary()
	if err != nil {
		return nil, err
	}
	return &ast{op: opCond, pos: q.pos, name: "conditional", kids: []*ast{c, a, b}}, nil
}

func (p *parser) or() (*ast, *ExprError) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.isOp("or", "||"); !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &ast{op: opBinary, pos: t.pos, name: "or", kids: []*ast{l, r}}
	}
}

func (p *parser) and() (*ast, *ExprError) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.isOp("and", "&&"); !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &ast{op: opBinary, pos: t.pos, name: "and", kids: []*ast{l, r}}
	}
}

func (p *parser) not() (*ast, *ExprError) {
	if _, ok := p.isOp("not", "!"); ok {
		t := p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &ast{op: opUnary, pos: t.pos, name: "not", kids: []*ast{x}}, nil
	}
	return p.comparison()
}

var cmpOps = []string{"==", "!=", "<=", ">=", "<", ">", "=", "<>", "in", "not"}

func (p *parser) comparison() (*ast, *ExprError) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	op, ok := p.isOp(cmpOps...)
	if !ok {
		return l, nil
	}
	t := p.next()
	var n *ast
	switch op {
	case "in", "not":
		name := "in"
		if op == "not" {
			if _, ok := p.isOp("in"); !ok {
				return nil, p.unexpected(p.peek(), `"in" after "not"`)
			}
			p.next()
			name = "not in"
		}
		if _, ok := p.isOp("["); !ok {
			return nil, p.unexpected(p.peek(), `"[" to start the list of "in"`)
		}
		p.next()
		kids := []*ast{l}
		if _, ok := p.isOp("]"); !ok {
			for {
				e, err := p.ternary()
				if err != nil {
					return nil, err
				}
				kids = append(kids, e)
				if _, ok := p.isOp(","); ok {
					p.next()
					continue
				}
				if _, ok := p.isOp("]"); !ok {
					return nil, p.unexpected(p.peek(), `"," or "]"`)
				}
				break
			}
		}
		p.next() // "]"
		n = &ast{op: opIn, pos: t.pos, name: name, kids: kids}
	default:
		switch op {
		case "=":
			op = "=="
		case "<>":
			op = "!="
		}
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		n = &ast{op: opBinary, pos: t.pos, name: op, kids: []*ast{l, r}}
	}
	if _, ok := p.isOp(cmpOps...); ok {
		return nil, &ExprError{Pos: p.peek().pos, Msg: "comparisons do not chain; use and"}
	}
	return n, nil
}

func (p *parser) additive() (*ast, *ExprError) {
	l, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.isOp("+", "-")
		if !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		l = &ast{op: opBinary, pos: t.pos, name: op, kids: []*ast{l, r}}
	}
}

func (p *parser) multiplicative() (*ast, *ExprError) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.isOp("*", "/", "%")
		if !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &ast{op: opBinary, pos: t.pos, name: op, kids: []*ast{l, r}}
	}
}

func (p *parser) unary() (*ast, *ExprError) {
	if op, ok := p.isOp("-", "+"); ok {
		t := p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return &ast{op: opUnary, pos: t.pos, name: "+", kids: []*ast{x}}, nil
		}
		return &ast{op: opUnary, pos: t.pos, name: "-", kids: []*ast{x}}, nil
	}
	return p.primary()
}

func (p *parser) primary() (*ast, *ExprError) {
	t := p.next()
	switch t.kind {
	case tNum:
		return &ast{op: opNum, pos: t.pos, num: t.num}, nil
	case tStr:
		return &ast{op: opStr, pos: t.pos, str: t.text}, nil
	case tQIdent:
		return &ast{op: opField, pos: t.pos, name: t.text}, nil
	case tIdent:
		if _, ok := p.isOp("("); ok {
			return p.call(t)
		}
		switch strings.ToLower(t.text) {
		case "true":
			return &ast{op: opBool, pos: t.pos, b: true}, nil
		case "false":
			return &ast{op: opBool, pos: t.pos}, nil
		case "null":
			return &ast{op: opNull, pos: t.pos}, nil
		case "and", "or", "not", "in":
			return nil, p.unexpected(t, "a value")
		}
		switch t.text {
		case "_time":
			return &ast{op: opTime, pos: t.pos}, nil
		case "_key":
			return &ast{op: opKey, pos: t.pos}, nil
		}
		return &ast{op: opField, pos: t.pos, name: t.text}, nil
	case tOp:
		if t.text == "(" {
			x, err := p.ternary()
			if err != nil {
				return nil, err
			}
			if _, ok := p.isOp(")"); !ok {
				return nil, p.unexpected(p.peek(), `")"`)
			}
			p.next()
			return x, nil
		}
	}
	return nil, p.unexpected(t, "a value")
}

func (p *parser) call(name token) (*ast, *ExprError) {
	if err := p.enter(name); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.next() // "("
	n := &ast{op: opCall, pos: name.pos, name: strings.ToLower(name.text)}
	if _, ok := p.isOp(")"); ok {
		p.next()
		return n, nil
	}
	for {
		a, err := p.ternary()
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, a)
		if _, ok := p.isOp(","); ok {
			p.next()
			continue
		}
		if _, ok := p.isOp(")"); !ok {
			return nil, p.unexpected(p.peek(), `"," or ")"`)
		}
		p.next()
		return n, nil
	}
}
