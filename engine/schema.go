package engine

import (
	"fmt"
	"slices"
	"strings"
)

// Field is a named, typed column of a record.
type Field struct {
	Name string
	Kind Kind
}

// Schema is the ordered list of fields of the records a stage produces. Operators
// resolve field names to positions once, at plan time, through Index. A Schema is
// immutable after NewSchema and safe for concurrent use.
type Schema struct {
	fields []Field
	index  map[string]int
	ints   []bool // ints[i]: field i holds integral numbers (see Integer); nil: none
}

// NewSchema returns a schema with the given fields. Duplicate names are an error.
func NewSchema(fields ...Field) (*Schema, error) {
	s := &Schema{fields: append([]Field(nil), fields...), index: make(map[string]int, len(fields))}
	for i, f := range fields {
		if f.Name == "" {
			return nil, fmt.Errorf("field %d: empty name", i)
		}
		if _, dup := s.index[f.Name]; dup {
			return nil, fmt.Errorf("field %q declared twice", f.Name)
		}
		s.index[f.Name] = i
	}
	return s, nil
}

// MustSchema is NewSchema for static schemas known to be valid; it panics otherwise.
func MustSchema(fields ...Field) *Schema {
	s, err := NewSchema(fields...)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return s
}

// Integer reports whether field i is a number field whose values are
// always integral: a count, or a field declared with type int (and what
// passes such a field on unchanged: a plain reference, min, max, sum, first,
// last). Values are still KindNumber; sinks that have integer types (the
// uplink's Parquet INT64) use the mark to write the field as an integer.
func (s *Schema) Integer(i int) bool { return i >= 0 && i < len(s.ints) && s.ints[i] }

// WithIntegers returns a copy of s in which the named fields are marked
// integral (see Integer); the marks of s are kept. Each name must be a
// number field of s.
func (s *Schema) WithIntegers(names ...string) (*Schema, error) {
	ints := make([]bool, len(s.fields))
	copy(ints, s.ints)
	for _, n := range names {
		i, err := s.Lookup(n)
		if err != nil {
			return nil, err
		}
		if k := s.fields[i].Kind; k != KindNumber {
			return nil, fmt.Errorf("field %q is %s; only a number field can be an integer", n, k)
		}
		ints[i] = true
	}
	c := *s
	c.ints = ints
	return &c, nil
}

// withInts sets the integer marks of a schema being built (not yet shared).
func (s *Schema) withInts(ints []bool) *Schema {
	if slices.Contains(ints, true) {
		s.ints = ints
	}
	return s
}

// Len returns the number of fields.
func (s *Schema) Len() int { return len(s.fields) }

// Field returns field i.
func (s *Schema) Field(i int) Field { return s.fields[i] }

// Fields returns a copy of the fields.
func (s *Schema) Fields() []Field { return append([]Field(nil), s.fields...) }

// Index returns the position of the named field.
func (s *Schema) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Lookup returns the position of the named field or an error that lists the
// fields that do exist.
func (s *Schema) Lookup(name string) (int, error) {
	if i, ok := s.index[name]; ok {
		return i, nil
	}
	return -1, fmt.Errorf("%w: %q (have %s)", ErrUnknownField, name, s.names())
}

func (s *Schema) names() string {
	n := make([]string, len(s.fields))
	for i, f := range s.fields {
		n[i] = f.Name
	}
	return strings.Join(n, ", ")
}

// String returns "name:kind, ..." for messages.
func (s *Schema) String() string {
	var b strings.Builder
	for i, f := range s.fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.Kind.String())
	}
	return b.String()
}
