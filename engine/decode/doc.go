// Package decode turns sensor payloads into engine records once, at the
// source, and records back into bytes. Operators downstream never re-parse
// and never see map[string]any.
//
// # Decoding
//
// A Config names the target schema, the event-time field and its unit, the
// key fields and whether decoding is strict. NewJSON and NewCSV validate it
// and resolve field names to positions once. JSONDecoder.Decode appends one
// record per JSON object; JSONDecoder.DecodeLines and CSVDecoder.Decode read
// JSON Lines and CSV files and pass bad lines to a dead-letter callback while
// they go on with the rest.
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
// Bad input gives a *DecodeError that names the line (for files), the byte
// offset and the field at fault, for example
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
