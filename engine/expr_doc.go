package engine

// Expr is a compiled pipeline expression: a filter condition, a projected
// column, a key. CompileExpr parses and type-checks it against the input schema
// once, at pipeline load, and turns it into a tree of typed closures over
// resolved field positions: a numeric subtree is a func(*Record) (float64, bool),
// a predicate a func(*Record) (bool, bool), so `temp > 30 and hum < 80` runs
// without building a Value and without allocating. An Expr holds no mutable
// state and is safe for concurrent use.
//
// # Why not expr-lang/expr
//
// expr-lang/expr evaluates against an environment, which for records whose
// fields are only known from a runtime schema means a map[string]any per
// record: every field boxed into an interface, allocations on every record,
// dynamic type checks at run time, and a larger binary for a Pi-class target.
// This compiler instead resolves names and kinds against the Schema at load
// time, reports type errors with the column at fault before the pipeline runs,
// and evaluates with zero allocations for number and bool results.
//
// # Language
//
// Literals:
//
//	42  3.5  .5  1e3  2.5E-3          numbers (float64)
//	"a\tb"  'it\'s'                   strings; escapes \n \t \r \0 \\ \' \" \/ \xHH \uHHHH
//	true  false  null                 (keywords are case-insensitive: TRUE, NULL, AND ...)
//	250ms  5s  1m  1h  1d  1h30m      durations, as a number of milliseconds
//
// Names:
//
//	temp                 an input field: letters, digits, '_' and '.', not starting with a digit
//	`odd name`           any other field name, in backquotes
//	_time                the record's event time (kind time, unix ms)
//	_key                 the record's key (string)
//
// A schema field called _time or _key is reachable as `_time` or `_key`.
//
// Operators, from the loosest to the tightest binding:
//
//	c ? a : b                   conditional (right-associative); same as if(c, a, b)
//	or  ||                      three-valued: true or null = true
//	and &&                      three-valued: false and null = false
//	not !                       prefix; `not a == b` is not (a == b)
//	== != < <= > >=  (= <>)     comparison, does not chain; x in [a, b], x not in [a, b]
//	+ -                         numbers; + also joins strings; time ± number = time, time - time = number
//	* / %                       numbers; division or remainder by zero is null
//	- +                         unary
//
// Comparison needs operands of the same kind: number with number, string with
// string (bytewise order), time with time, bool with bool (== and != only).
// Compare a time with a number by converting: unix_ms(_time) > 1.7e12 or
// _time > time_ms(1.7e12).
//
// Null: a field that is absent in a record is null. Arithmetic, comparison,
// `in` and functions with a null operand give null (concat skips nulls,
// coalesce and is_null look for them). `x == null` and `x != null` are null
// checks and always give true or false. A filter keeps a record only when its
// condition is true: null counts as false. if() with a null condition takes the
// else branch. Results that are not finite numbers (sqrt(-1), log(0), overflow
// in pow) are null too.
//
// Functions:
//
//	abs(x) floor(x) ceil(x) sqrt(x) log(x) exp(x)    log is the natural logarithm
//	round(x[, digits])                               half away from zero; digits may be negative
//	pow(x, y)
//	min(a, b, ...) max(a, b, ...)                    numbers, or times; null if any is null
//	str(x) string(x)                                 any kind to text (times as unix ms)
//	number(x)                                        from string (parsed; null if malformed), bool (0/1), time (unix ms)
//	bool(x)                                          from string ("true", "false", "1", "0", ...), number (x != 0)
//	lower(s) upper(s) trim(s)
//	len(s)                                           length in characters (or elements of a list field)
//	contains(s, sub) starts_with(s, p) ends_with(s, p)
//	substr(s, start[, n])                            characters from start (0-based; negative counts from the end)
//	concat(a, b, ...)                                text of every non-null argument, joined
//	split_part(s, sep, n)                            n-th part, 1-based (negative from the end); "" if none
//	regex_match(s, "pattern")                        RE2 syntax; the pattern must be a literal, compiled once
//	unix_ms(t)  time_ms(n)                           time to unix ms and back
//	hour(t) minute(t) day_of_week(t)                 in UTC; day_of_week is 0 for Sunday
//	is_null(x)  coalesce(a, b, ...)  if(c, a, b)
//
// now() and other non-deterministic functions are refused: a replayed epoch must
// produce the outputs of the first run, so time comes from _time.
//
// Examples:
//
//	temp > 30 and hum < 80
//	sensor in ["t1", "t2"] && !(status == null)
//	round((temp - 32) * 5 / 9, 1)
//	_time - time_ms(0) >= 5m
//	coalesce(label, concat(site, "/", sensor))
//	hum > 90 ? "wet" : "dry"
//	regex_match(topic, '^sensors/[a-z]+/temp$')
//	hour(_time) >= 8 and day_of_week(_time) in [1, 2, 3, 4, 5]
//
// # Operators
//
// FilterExpr, Project, Extend, FlatMapExprs, KeyBy and Require are the
// expression-backed stateless operators. There is no split operator: to route
// records to several sinks, hang several FilterExpr steps on one stream:
//
//	src := b.Source("in", schema)
//	b.Sink("alerts", src.Then("hot", FilterExpr("temp > 30")))
//	b.Sink("normal", src.Then("ok", FilterExpr("not (temp > 30)")))
//
// Note that a record with a null temp reaches neither sink here; write
// "temp > 30" and "temp <= 30 or temp == null" to route it to the second.
type Expr struct {
	src  string
	kind Kind
	node *cnode
	val  valFn
	pred boolFn // nil unless kind is KindBool
}

// Kind returns the static kind of the expression's result. It is KindNull only
// when the kind is known at run time alone (an untyped field, or the literal
// null).
func (e *Expr) Kind() Kind { return e.kind }

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression for r. It does not allocate for number, bool
// and time results, nor for strings taken from the record; functions that build
// strings (concat, lower, str, ...) allocate their result.
func (e *Expr) Eval(r *Record) Value { return e.val(r) }

// EvalBool evaluates a bool expression for r, with null counting as false. It is
// the fast path for predicates; for an expression of another kind it returns false.
func (e *Expr) EvalBool(r *Record) bool {
	if e.pred == nil {
		return false
	}
	b, ok := e.pred(r)
	return ok && b
}
