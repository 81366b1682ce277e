package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
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
// at once, joined.
func Parse(file string, data []byte) (*Spec, error) {
	s := &Spec{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if root.Kind == 0 {
		return nil, fmt.Errorf("%s: empty document", file)
	}
	index(&root, "", s.lines)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		return nil, yamlErrors(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%s:%d: one pipeline per file: found a second YAML document", file, extra.Line)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlErrors turns yaml.v3's "line N: ..." messages into FILE:N: messages.
func yamlErrors(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %w", file, err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, m := range te.Errors {
		if loc := yamlLine.FindStringSubmatch(m); loc != nil {
			m = strings.TrimPrefix(m, loc[0])
			m = strings.Replace(m, "not found in type", "is not a known key of", 1)
			errs = append(errs, fmt.Errorf("%s:%s: %s", file, loc[1], m))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s", file, m))
	}
	return errors.Join(errs...)
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
