package decode

import (
	"errors"
	"fmt"
	"slices"
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

// Payload formats accepted in Config.Format.
const (
	FormatJSON  = "json"  // a JSON object, or an array of objects (the default)
	FormatCSV   = "csv"   // CSV rows, after a header row or in Config.CSVColumns order
	FormatSenML = "senml" // an RFC 8428 SenML JSON pack
	FormatRaw   = "raw"   // the whole payload as text in one string field
)

// SkipColumn in Config.CSVColumns marks a column that is read and ignored.
const SkipColumn = "-"

// TopicMatcher is a topic template that captures fields from an MQTT topic;
// *topic.Template implements it. Implementations must be safe for
// concurrent use and must not retain fn.
type TopicMatcher interface {
	// Match reports whether topic matches and then calls fn once per
	// captured field with its name and the text of the topic it captured.
	Match(topic string, fn func(name, value string)) bool
	// Fields returns the names of the captured fields.
	Fields() []string
}

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
	// MaxLineBytes bounds one line of JSON Lines input (a longer line is
	// reported as bad and skipped) and one raw payload. Zero means
	// DefaultMaxLineBytes.
	MaxLineBytes int
	// Format is the payload format New decodes: FormatJSON, FormatCSV,
	// FormatSenML or FormatRaw. Empty means FormatJSON. NewJSON and NewCSV
	// ignore it.
	Format string
	// CSVColumns, for FormatCSV, declares the columns of every row in order
	// (a field name, or SkipColumn for a column to ignore): payloads then
	// hold data rows only. Empty means the first row of every payload is a
	// header naming the columns.
	CSVColumns []string
	// Topics are the topic templates of the source, tried in order; the
	// first that matches a message's topic fills the fields it captures,
	// overriding the payload's values, for every format. A message without a
	// topic, or whose topic none matches, gets no captures. Nil: none.
	Topics []TopicMatcher
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
// max_line_bytes, format, csv.columns, mqtt.topics). It does not modify c.
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
	switch c.Format {
	case "", FormatJSON, FormatCSV, FormatSenML:
	case FormatRaw:
		if rawField(c.Schema) < 0 {
			errs = append(errs, errors.New("decode: format: raw needs a string field to hold the payload (the field \"payload\", or any string field)"))
		}
		if c.TimeField != "" && !capturedAnywhere(c.Topics, c.TimeField) {
			errs = append(errs, fmt.Errorf("decode: time_field: a raw payload has no event time; %q must be captured by a topic template", c.TimeField))
		}
	default:
		errs = append(errs, fmt.Errorf("decode: format: %q is not one of %s, %s, %s, %s", c.Format, FormatJSON, FormatCSV, FormatSenML, FormatRaw))
	}
	if len(c.CSVColumns) > 0 {
		if c.Format != FormatCSV {
			errs = append(errs, errors.New("decode: csv.columns: only for format csv"))
		}
		seen := map[string]bool{}
		for i, n := range c.CSVColumns {
			if n == SkipColumn {
				continue
			}
			if _, ok := c.Schema.Index(n); !ok {
				errs = append(errs, fmt.Errorf("decode: csv.columns[%d]: %w", i, unknownField(c.Schema, n)))
			} else if seen[n] {
				errs = append(errs, fmt.Errorf("decode: csv.columns[%d]: column %q declared twice", i, n))
			}
			seen[n] = true
		}
		// The fields a header row must name must be declared columns too.
		for i := range c.Schema.Len() {
			name := c.Schema.Field(i).Name
			if seen[name] || capturedAnywhere(c.Topics, name) {
				continue
			}
			switch {
			case name == c.TimeField:
				errs = append(errs, fmt.Errorf("decode: csv.columns: no column holds the event-time field %q", name))
			case slices.Contains(c.KeyFields, name):
				errs = append(errs, fmt.Errorf("decode: csv.columns: no column holds the key field %q", name))
			case c.Strict:
				errs = append(errs, fmt.Errorf("decode: csv.columns: no column holds the field %q (strict)", name))
			}
		}
	}
	for i, t := range c.Topics {
		for _, f := range t.Fields() {
			if _, ok := c.Schema.Index(f); !ok {
				errs = append(errs, fmt.Errorf("decode: mqtt.topics[%d]: the template captures %q, which is not a field of the source", i, f))
			}
		}
	}
	if c.MaxLineBytes < 0 {
		errs = append(errs, errors.New("decode: max_line_bytes: "+strconv.Itoa(c.MaxLineBytes)+" is negative"))
	}
	return errors.Join(errs...)
}

// capturedAnywhere reports whether a template of ts captures field.
func capturedAnywhere(ts []TopicMatcher, field string) bool {
	for _, t := range ts {
		for _, f := range t.Fields() {
			if f == field {
				return true
			}
		}
	}
	return false
}

// rawField returns the field a raw payload goes to: "payload" when it is a
// string field, else the first string field; -1 if there is none.
func rawField(s *engine.Schema) int {
	if i, ok := s.Index("payload"); ok && s.Field(i).Kind == engine.KindString {
		return i
	}
	for i := range s.Len() {
		if s.Field(i).Kind == engine.KindString {
			return i
		}
	}
	return -1
}

func unknownField(s *engine.Schema, name string) error {
	_, err := s.Lookup(name)
	return err
}
