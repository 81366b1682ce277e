// Package decode turns sensor payloads into engine records once, at the
// source, and records back into bytes. Operators downstream never re-parse
// and never see map[string]any.
//
// # Decoding messages
//
// A Config names the target schema, the payload format, the event-time field
// and its unit, the key fields, whether decoding is strict, the CSV column
// layout and the topic templates of the source. New validates it, resolves
// field names to positions once and returns the source's Decoder; the daemon
// and edged batch both decode through it, so they read the same formats the
// same way:
//
//	json   an object (one record) or an array of objects (one per element)
//	csv    rows after a header row in every payload, or, with CSVColumns,
//	       rows in the declared column order (no header)
//	senml  an RFC 8428 pack: the fields named name, unit, value and sum take
//	       each record's resolved values, the event-time field its time;
//	       relative times count from Input.Received
//	raw    the whole payload as text in the field "payload" (or the first
//	       string field)
//
// Decoder.Decode takes one message as an Input: payload, MQTT topic and
// receipt time. The first topic template that matches the topic fills the
// fields it captures, overriding the payload's, for every format. A message
// decodes whole or not at all, so that it is one dead letter, replayable as
// is.
//
// # Valid records
//
// A record the pipeline reads its event time from must have it: a missing,
// null or empty event-time field is an error wrapping ErrNoEventTime (the
// record would otherwise sit at 1970). Text must be valid UTF-8 (a JSON \u
// escape must not be half a surrogate pair): an error wrapping
// ErrInvalidUTF8, never a silent U+FFFD. Both name the field.
//
// # Input-log entries
//
// AppendEntry writes what the input log keeps of a message (receipt time,
// topic, payload) and ParseEntry reads it back as the Input to decode, so
// that decoding the log after a crash gives the same records as the first
// time. EntryIdentity is the part that identifies a message for duplicate
// detection (without the receipt time).
//
// # Files
//
// SplitFile cuts a recorded file into the messages Decode takes (lines, or
// CSV rows) and Config.WithCSVHeader turns a file's header row into declared
// columns: this is how edged batch reads its input. The older file readers,
// JSONDecoder.DecodeLines and CSVDecoder.Decode, read JSON Lines and CSV
// with a header from an io.Reader and pass bad lines to a dead-letter
// callback while they go on with the rest; JSONDecoder.Decode decodes one
// object.
//
// The JSON decoder is a hand-written single-pass scanner over flat objects.
// Keys not in the schema are skipped, nested values included (or rejected
// when Config.Strict is set). Values are coerced per field kind:
//
//	field kind   JSON number        JSON string                      true/false   null
//	number       the number         parsed if it is a number         error        null
//	string       error              the string                       error        null
//	bool         error              "true", "false", "1", "0", ...   the bool     null
//	time         in the time unit   RFC 3339, or a number in the unit error       null
//
// A duplicate key for a schema field is an error.
//
// # Errors
//
// Bad input gives a *DecodeError that names the line (for files), the record
// (for a message of several), the byte offset and the field at fault, for
// example
// `decode: field "temp": want number, got string "abc"`. A record is appended
// only when all of it decoded: on error the batch is unchanged. The decoders
// never panic, whatever the input; they are fuzzed.
//
// # Allocation and interning
//
// In steady state decoding a JSON object allocates nothing: numbers are
// parsed in place (plain decimals of up to 15 digits directly, the rest by
// strconv.ParseFloat on a non-escaping conversion), field names are looked up
// without copying, and values go to a scratch row that is copied into the
// batch. String values and keys are the exception: each decoder interns
// strings of up to 64 bytes in a table of at most 4096 entries, so repeated
// sensor ids cost nothing after the first time. When the table is full it is
// emptied, which bounds its memory while still serving the ids of a steady
// fleet. Longer strings are allocated per record.
//
// The same holds for every format of New: CSV rows are split in place (a
// header row equal to the previous payload's is not resolved again) and
// SenML packs are scanned by the same scanner as JSON.
//
// Decoders hold this scratch state, so one decoder must not be used by two
// goroutines at once; create one per source partition.
//
// # Encoding
//
// AppendJSON writes a record as a flat JSON object in schema order, and
// AppendCSVHeader and AppendCSV write CSV. They append to a caller's buffer
// and allocate nothing when it has room. A record written by AppendJSON
// decodes back to equal values with a TimeUnixMs decoder.
package decode
