package decode

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/edgedio/edged/engine"
)

// Time formats accepted in Config.TimeFormat. They set how a number in a time
// field is read; a string in a time field is always tried as RFC 3339 first.
const (
	TimeUnixMs  = "unix_ms" // numbers are unix milliseconds (the default)
	TimeUnixS   = "unix_s"  // numbers are unix seconds, possibly fractional
	TimeRFC3339 = "rfc3339" // values are RFC 3339 strings; numbers still read as unix ms
)

// DefaultMaxLineBytes is the longest JSON line DecodeLines accepts when
// Config.MaxLineBytes is zero.
const DefaultMaxLineBytes = 1 << 20

// Config describes how payloads map onto records. The zero Config is not valid:
// Schema is required. A Config is read, never modified, by the decoders.
type Config struct {
	// Schema is the record schema to decode into. Its fields must have kind
	// number, string, bool or time. Required.
	Schema *engine.Schema
	// TimeField names the field that holds the event time. Its kind must be
	// time. The decoded time is stored both in that field and in Record.Time.
	// Empty means the records have no event time (Record.Time is 0).
	TimeField string
	// TimeFormat sets the unit of numeric time values: TimeUnixMs, TimeUnixS or
	// TimeRFC3339. Empty means TimeUnixMs. Whatever the format, a string that
	// looks like a number is read in the configured unit and any other string
	// is parsed as RFC 3339 (time zone offsets honoured).
	TimeFormat string
	// KeyFields lists the fields whose values, as text and joined with "/",
	// form Record.Key. A null field contributes an empty segment. Empty means
	// Record.Key is "".
	KeyFields []string
	// Strict makes decoding reject input that does not match the schema
	// exactly: an unknown JSON key and a missing field are errors. When false,
	// unknown keys are ignored and missing fields are null. CSV columns that
	// are not in the schema are always ignored.
	Strict bool
	// MaxLineBytes bounds one line of JSON Lines input; a longer line is
	// reported as bad and skipped. Zero means DefaultMaxLineBytes.
	MaxLineBytes int
}

// DefaultConfig returns a Config for schema s with the defaults spelled out.
func DefaultConfig(s *engine.Schema) Config {
	return Config{
		Schema:       s,
		TimeFormat:   TimeUnixMs,          // sensors mostly send epoch milliseconds
		Strict:       false,               // tolerate extra keys and missing readings
		MaxLineBytes: DefaultMaxLineBytes, // far above any sensor payload
	}
}

// Validate reports every problem with the Config at once, each naming the
// configuration key at fault (schema, time_field, time_format, key_fields,
// max_line_bytes). It does not modify c.
func (c Config) Validate() error {
	var errs []error
	if c.Schema == nil {
		return errors.New("decode: schema: required")
	}
	for i := 0; i < c.Schema.Len(); i++ {
		f := c.Schema.Field(i)
		switch f.Kind {
		case engine.KindNumber, engine.KindString, engine.KindBool, engine.KindTime:
		default:
			errs = append(errs, fmt.Errorf("decode: schema: field %q: kind %s cannot be decoded (want number, string, bool or time)", f.Name, f.Kind))
		}
	}
	if c.TimeField != "" {
		i, ok := c.Schema.Index(c.TimeField)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("decode: time_field: %w", unknownField(c.Schema, c.TimeField)))
		case c.Schema.Field(i).Kind != engine.KindTime:
			errs = append(errs, fmt.Errorf("decode: time_field: field %q has kind %s; want time", c.TimeField, c.Schema.Field(i).Kind))
		}
	}
	switch c.TimeFormat {
	case "", TimeUnixMs, TimeUnixS, TimeRFC3339:
	default:
		errs = append(errs, fmt.Errorf("decode: time_format: %q is not one of %s, %s, %s", c.TimeFormat, TimeUnixMs, TimeUnixS, TimeRFC3339))
	}
	for i, k := range c.KeyFields {
		if _, ok := c.Schema.Index(k); !ok {
			errs = append(errs, fmt.Errorf("decode: key_fields[%d]: %w", i, unknownField(c.Schema, k)))
		}
	}
	if c.MaxLineBytes < 0 {
		errs = append(errs, errors.New("decode: max_line_bytes: "+strconv.Itoa(c.MaxLineBytes)+" is negative"))
	}
	return errors.Join(errs...)
}

func unknownField(s *engine.Schema, name string) error {
	_, err := s.Lookup(name)
	return err
}
