package uplink

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ColumnType is the type of an uplinked column, as written to Parquet.
type ColumnType uint8

// Column types. Each names the Parquet physical and logical type it is
// written as.
const (
	TypeString    ColumnType = iota + 1 // BYTE_ARRAY, logical STRING
	TypeDouble                          // DOUBLE
	TypeInt64                           // INT64 (counts, sequence numbers)
	TypeBool                            // BOOLEAN
	TypeTimestamp                       // INT64, logical TIMESTAMP(MILLIS, UTC): unix milliseconds
	TypeJSON                            // BYTE_ARRAY, logical JSON: lists and objects as JSON text
)

var typeNames = [...]string{TypeString: "string", TypeDouble: "double", TypeInt64: "int64",
	TypeBool: "bool", TypeTimestamp: "timestamp", TypeJSON: "json"}

// String returns the type's name ("string", "double", "int64", "bool",
// "timestamp", "json").
func (t ColumnType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Column is one column of an uplinked pipeline output.
type Column struct {
	Name string
	Type ColumnType
	// Optional columns may be null (a missing member or JSON null in a row);
	// a row without a value for a required column is a dead letter.
	Optional bool
}

// Schema is the column list of one pipeline output, in the pipeline's
// output order. Every object of the output is written with it, so the
// objects of one schema version agree on names, types and optionality.
// A Schema is immutable after NewSchema.
type Schema struct {
	cols    []Column
	version string
}

// NewSchema returns the schema of cols. Names must be non-empty and unique.
func NewSchema(cols ...Column) (*Schema, error) {
	var errs []error
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("column %d: empty name", i+1))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("column %q: declared twice", c.Name))
		}
		seen[c.Name] = true
		if c.Type < TypeString || c.Type > TypeJSON {
			errs = append(errs, fmt.Errorf("column %q: unknown type %d", c.Name, c.Type))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("uplink schema: %w", err)
	}
	s := &Schema{cols: append([]Column(nil), cols...)}
	js, _ := s.MarshalJSON()
	h := sha256.Sum256(js)
	s.version = hex.EncodeToString(h[:4])
	return s, nil
}

// Columns returns a copy of the columns.
func (s *Schema) Columns() []Column { return append([]Column(nil), s.cols...) }

// Version is a short hash (8 hex digits of SHA-256) of the column list
// (names, types, optionality): equal schemas have equal versions. It is
// written into every object's metadata (key "edged.schema_version").
func (s *Schema) Version() string { return s.version }

// String returns "name type [optional], ..." for messages.
func (s *Schema) String() string {
	var b strings.Builder
	for i, c := range s.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
		b.WriteByte(' ')
		b.WriteString(c.Type.String())
		if c.Optional {
			b.WriteString(" optional")
		}
	}
	return b.String()
}

// Equal reports whether s and o have the same columns.
func (s *Schema) Equal(o *Schema) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.Equal(s.cols, o.cols)
}

type columnJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Optional bool   `json:"optional,omitempty"`
}

// MarshalJSON writes the columns as [{"name":…,"type":…,"optional":…}]: the
// form stored in every object's metadata (key "edged.schema").
func (s *Schema) MarshalJSON() ([]byte, error) {
	cs := make([]columnJSON, len(s.cols))
	for i, c := range s.cols {
		cs[i] = columnJSON{c.Name, c.Type.String(), c.Optional}
	}
	return json.Marshal(cs)
}

// UnmarshalJSON reads the form written by MarshalJSON.
func (s *Schema) UnmarshalJSON(b []byte) error {
	var cs []columnJSON
	if err := json.Unmarshal(b, &cs); err != nil {
		return err
	}
	cols := make([]Column, len(cs))
	for i, c := range cs {
		cols[i] = Column{Name: c.Name, Optional: c.Optional}
		for t, n := range typeNames {
			if n != "" && n == c.Type {
				cols[i].Type = ColumnType(t)
			}
		}
	}
	n, err := NewSchema(cols...)
	if err != nil {
		return err
	}
	*s = *n
	return nil
}
