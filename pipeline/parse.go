package pipeline

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/edgedio/edged/internal/yamlcheck"
)

// Load reads and validates the pipeline spec in file.
func Load(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Parse decodes a pipeline document strictly (unknown keys are errors) and
// validates it. file names the document in errors. All problems are reported
// at once, joined: key typos, malformed values and validation errors, each
// as FILE:LINE: key.path: message.
func Parse(file string, data []byte) (*Spec, error) {
	s, errs := parse(file, data)
	if s == nil || len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// ParseAndCompile is Parse followed by Compile, reporting the problems of
// both at once: a file with a key typo and a bad expression shows both in
// one run (Compile runs when the structure validates, unknown keys aside).
func ParseAndCompile(file string, data []byte) (*Compiled, error) {
	s, errs := parse(file, data)
	if s == nil {
		return nil, errors.Join(errs...)
	}
	c, err := Compile(s)
	if err != nil {
		errs = append(errs, unjoin(err)...)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// LoadAndCompile is ParseAndCompile on the contents of file.
func LoadAndCompile(file string) (*Compiled, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseAndCompile(file, data)
}

// parse decodes and validates. It returns a nil spec when the document
// cannot be used at all (a syntax error, or problems that validation also
// found), with the problems; a spec with problems that do not stop
// compilation (unknown keys) comes back with them.
func parse(file string, data []byte) (*Spec, []error) {
	s := &Spec{file: file, lines: map[string]int{}}
	var root yaml.Node
	err := yaml.Unmarshal(data, &root)
	if err == nil {
		index(&root, "", s.lines)
	}
	if err == nil && (root.Kind == 0 || root.Kind == yaml.DocumentNode && len(root.Content) == 0) {
		return nil, []error{&Error{File: file, Msg: "empty document: a pipeline starts with apiVersion: " + APIVersion}}
	}
	var errs []error
	fatal := false
	decoded := yamlcheck.Decode(file, data, s)
	for _, e := range decoded {
		errs = append(errs, &Error{File: e.File, Line: e.Line, Path: e.Path, Msg: e.Msg})
		if e.Path == "" {
			fatal = true // not YAML, or a second document
		}
	}
	if fatal {
		return nil, errs
	}
	verr := s.Validate()
	if verr == nil {
		return s, errs
	}
	// A value the decoder could not read is reported once, where it is, not
	// again by validation as missing.
	for _, e := range unjoin(verr) {
		var pe *Error
		if errors.As(e, &pe) && covered(pe.Path, decoded) {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return s, nil
	}
	slices.SortStableFunc(errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
	return nil, errs
}

func lineOf(err error) int {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 1 << 30
}

// covered reports whether a validation error at path repeats a decoding
// problem: one at the same key, at a key right under it (a typo inside a
// step makes the step look empty), or above it.
func covered(path string, decoded []*yamlcheck.Error) bool {
	for _, d := range decoded {
		if d.Path == "" {
			continue
		}
		if d.Path == path || strings.HasPrefix(path, d.Path+".") || strings.HasPrefix(path, d.Path+"[") {
			return true
		}
		if rest, ok := strings.CutPrefix(d.Path, path+"."); ok && !strings.ContainsAny(rest, ".[") {
			return true
		}
		// A typo of the key that validation finds missing.
		if d.Suggest != "" {
			parent := d.Path[:strings.LastIndexByte(d.Path, '.')+1]
			if path == parent+d.Suggest {
				return true
			}
		}
	}
	return false
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// index records the line of every key path of the document.
func index(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			index(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			index(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			lines[p] = c.Line
			index(c, p, lines)
		}
	}
}

// File returns the file the spec was read from.
func (s *Spec) File() string { return s.file }

// Name returns the pipeline name.
func (s *Spec) Name() string { return s.Metadata.Name }

// errAt returns an error located at the key path (or its nearest ancestor
// that has a line).
func (s *Spec) errAt(path, format string, args ...any) error {
	return &Error{File: s.file, Line: s.line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (s *Spec) line(path string) int {
	for p := path; p != ""; {
		if l, ok := s.lines[p]; ok {
			return l
		}
		switch i := strings.LastIndexAny(p, ".["); {
		case i < 0:
			p = ""
		default:
			p = p[:i]
		}
	}
	return 0
}

// Error is a problem at one key of a pipeline document.
type Error struct {
	File string
	Line int
	Path string // key path, e.g. spec.steps[2].window.size
	Msg  string
	Err  error
}

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

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }
