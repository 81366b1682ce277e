// Package yamlcheck decodes a YAML file into a typed config and reports every
// problem of the file at once, in the user's words: each error names the file,
// the line and the key path (spec.steps[2].window.size), an unknown key comes
// with the valid keys and the nearest one, a bad duration says what a
// duration looks like, and no message names a Go type.
//
// Decode walks the YAML tree against the Go type (its yaml tags) before
// decoding, so it finds key typos and malformed values everywhere in one
// run, then decodes leniently (values that do not fit are left zero) so that
// the caller can validate the rest of the file and report those problems too.
package yamlcheck

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem at a key of a YAML file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Path string // key path, e.g. spec.steps[2].window.size; empty for the file
	Msg  string
	// Suggest is, for an unknown key, the valid key it is nearest to (the
	// key the user probably meant), or "".
	Suggest string
}

// Error formats the problem as FILE:LINE: PATH: MSG.
func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Path != "" {
		return loc + ": " + e.Path + ": " + e.Msg
	}
	return loc + ": " + e.Msg
}

// Decode decodes the single YAML document in data into v (a pointer to a
// struct whose fields carry yaml tags), over the values v already holds. It
// returns every problem found, in file order: syntax errors, unknown keys,
// values of the wrong shape or type. Values that do not fit are left as they
// were; the rest of v is filled, so the caller can still validate it. An
// empty document is not a problem (v keeps its values).
func Decode(file string, data []byte, v any) []*Error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return []*Error{syntaxError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return []*Error{syntaxError(file, err)}
		}
		return []*Error{{File: file, Line: line, Msg: "a second YAML document (---): one document per file"}}
	}
	c := &checker{file: file}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	c.walk(doc, reflect.TypeOf(v).Elem(), "")
	// Decode what fits. yaml.v3 keeps going after a value that does not fit
	// and reports it in a TypeError; the walk above has described each one
	// in the user's words.
	if err := doc.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			c.add(doc, "", "%s", sanitize(err.Error()))
		} else if len(c.errs) == 0 {
			for _, m := range te.Errors {
				line := 0
				if loc := yamlLine.FindStringSubmatch(m); loc != nil {
					line, _ = strconv.Atoi(loc[1])
					m = strings.TrimPrefix(m, loc[0])
				}
				c.errs = append(c.errs, &Error{File: file, Line: line, Msg: sanitize(m)})
			}
		}
	}
	slices.SortStableFunc(c.errs, func(a, b *Error) int { return a.Line - b.Line })
	return c.errs
}

// Join returns the errors joined (nil for none), each on its own line.
func Join(errs []*Error) error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func syntaxError(file string, err error) *Error {
	m := err.Error()
	line := 0
	if loc := yamlLine.FindStringSubmatch(m); loc != nil {
		line, _ = strconv.Atoi(loc[1])
		m = strings.TrimPrefix(m, loc[0])
	}
	m = strings.TrimPrefix(m, "yaml: ")
	return &Error{File: file, Line: line, Msg: "not valid YAML: " + m}
}

// goType matches the Go type names yaml.v3 puts in its messages.
var goType = regexp.MustCompile(`into [\w.*\[\]]+`)

func sanitize(m string) string {
	m = strings.TrimPrefix(m, "yaml: ")
	return goType.ReplaceAllString(m, "here")
}

// Checker is implemented by types that decode themselves and describe
// what is wrong with a value in the user's words ("" when it is fine), so
// the problem is reported at its key with the others.
type Checker interface {
	CheckYAML(n *yaml.Node) string
}

type checker struct {
	file string
	errs []*Error
}

func (c *checker) add(n *yaml.Node, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks node n against type t at key path.
func (c *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // null leaves the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ck, ok := reflect.New(t).Interface().(Checker); ok {
		if msg := ck.CheckYAML(n); msg != "" {
			c.add(n, path, "%s", msg)
		}
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType) {
		return // a type that decodes itself
	}
	switch {
	case t == durationType:
		c.duration(n, path)
		return
	case t.Kind() == reflect.Interface:
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(n, path, "must be a mapping of keys (key: value), not %s", describe(n))
			return
		}
		fields := structKeys(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				msg, sug := unknownKey(k.Value, fields)
				c.add(k, join(path, k.Value), "%s", msg)
				c.errs[len(c.errs)-1].Suggest = sug
				continue
			}
			c.walk(v, f, join(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n, path, "must be a mapping (key: value), not %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			c.add(n, path, "must be a list (- item, or [a, b]), not %s", describe(n))
			return
		}
		for i, e := range n.Content {
			c.walk(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.add(n, path, "must be a single value, not %s", describe(n))
			return
		}
		if t.Kind() == reflect.String {
			return
		}
		tagOK := true
		switch t.Kind() {
		case reflect.Bool:
			tagOK = n.Tag == "!!bool"
		case reflect.Float32, reflect.Float64:
			tagOK = n.Tag == "!!int" || n.Tag == "!!float"
		default:
			tagOK = n.Tag == "!!int"
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil || !tagOK {
			c.add(n, path, "%q is not %s", n.Value, kindName(t.Kind()))
		}
	}
}

// duration checks a duration value: a number with a unit.
func (c *checker) duration(n *yaml.Node, path string) {
	const hint = "use e.g. 500ms, 10s, 1m, 1h30m"
	if n.Kind != yaml.ScalarNode {
		c.add(n, path, "must be a duration (%s), not %s", hint, describe(n))
		return
	}
	if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
		if n.Value == "0" {
			return
		}
		c.add(n, path, "%q is not a duration: a number needs a unit; %s", n.Value, hint)
		return
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		c.add(n, path, "%q is not a duration; %s", n.Value, hint)
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number (0 or more)"
	}
	return "a whole number"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

// structKeys returns the YAML keys of struct type t (inline structs
// flattened) with the type of each.
func structKeys(t reflect.Type) map[string]reflect.Type {
	keys := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structKeys(ft) {
					keys[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys[name] = f.Type
	}
	return keys
}

// unknownKey describes an unknown key: the nearest valid key and the list.
func unknownKey(key string, fields map[string]reflect.Type) (msg, suggestion string) {
	valid := make([]string, 0, len(fields))
	for k := range fields {
		valid = append(valid, k)
	}
	slices.Sort(valid)
	msg = fmt.Sprintf("unknown key %q", key)
	s := Suggest(key, valid)
	if s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg + "; valid keys: " + strings.Join(valid, ", "), s
}

// Suggest returns the candidate nearest to word (by edit distance, ignoring
// case), or "" if none is near enough to be a likely typo.
func Suggest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	lw := strings.ToLower(word)
	for _, c := range candidates {
		d := distance(lw, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if limit := max(1, min(3, len(word)/3)); bestD > limit {
		return ""
	}
	return best
}

// distance is the Levenshtein distance with adjacent transpositions.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
