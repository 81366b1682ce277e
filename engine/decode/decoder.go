package decode

import (
	"slices"
	"strconv"

	"github.com/edgedio/edged/engine"
)

// Input is one message as a Decoder reads it: the payload and what the
// source knows about it.
type Input struct {
	// Payload is the message body. Decode does not retain it.
	Payload []byte
	// Topic is the MQTT topic the message arrived on; empty for input files
	// and other topic-less sources. Decode does not retain it; it is read
	// only when Config.Topics capture fields.
	Topic []byte
	// Received is when the message was received, in unix milliseconds: the
	// time it was first appended to the input log, kept in the log entry
	// (AppendEntry) so that decoding it again after a crash gives the same
	// records. SenML relative times are resolved against it, never against
	// the clock at decode time. Zero means unknown: a relative SenML time is
	// then an error.
	Received int64
	// Origin is copied into every record decoded from the message.
	Origin engine.Origin
}

// Decoder turns messages into records. New returns the Decoder of a Config,
// for every payload format.
//
// A Decoder keeps scratch buffers and an intern table between calls: it is
// not safe for concurrent use (use one per goroutine, e.g. per source
// partition).
type Decoder interface {
	// Decode appends the records of one message to dst, which must have the
	// decoder's schema: one record for a JSON object or a raw payload, one per
	// element of a JSON array, per SenML record, per CSV data row. Fields
	// captured from in.Topic override the payload's, then Record.Time, Key and
	// Origin are set.
	//
	// A message decodes whole or not at all: on error nothing is appended and
	// the error is a *DecodeError that names the record (Index, for a message
	// of several), the field and the reason in the user's words; the caller
	// keeps the message (payload, topic, receipt time) as one dead letter
	// with err.Error() as its reason, and replaying it later decodes it all
	// again. A record whose payload parsed but is invalid gives a DecodeError
	// wrapping a sentinel: ErrNoEventTime (the pipeline declares an
	// event-time field and the record has none) or ErrInvalidUTF8 (text that
	// is not UTF-8 is rejected, never rewritten). The only other error is a
	// dst whose schema does not match.
	Decode(dst *engine.Batch, in Input) error
}

// DecoderFunc adapts a function to the Decoder interface.
type DecoderFunc func(dst *engine.Batch, in Input) error

// Decode calls f(dst, in).
func (f DecoderFunc) Decode(dst *engine.Batch, in Input) error { return f(dst, in) }

// New returns the Decoder of cfg.Format, or the error of cfg.Validate.
func New(cfg Config) (Decoder, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	d := &msgDecoder{p: p, format: cfg.Format, topics: cfg.Topics, raw: -1}
	d.json = JSONDecoder{p: p, seen: make([]bool, len(p.names))}
	d.capFn = d.capture
	for _, t := range cfg.Topics {
		if len(t.Fields()) > 0 {
			d.captures = true
		}
	}
	idx := func(n string) int {
		if i, ok := p.index[n]; ok {
			return i
		}
		return -1
	}
	switch cfg.Format {
	case FormatCSV:
		if len(cfg.CSVColumns) > 0 {
			d.csv.fixed = make([]int, len(cfg.CSVColumns))
			for c, n := range cfg.CSVColumns {
				d.csv.fixed[c] = -1
				if n != SkipColumn {
					d.csv.fixed[c] = idx(n)
				}
			}
		}
	case FormatSenML:
		d.senml.name, d.senml.unit, d.senml.value, d.senml.sum = idx("name"), idx("unit"), idx("value"), idx("sum")
	case FormatRaw:
		d.raw = rawField(cfg.Schema)
	}
	return d, nil
}

// msgDecoder is the Decoder of every format; the plan holds what they share
// (field positions, scratch record, validity checks, key, captures).
type msgDecoder struct {
	p      *plan
	format string
	json   JSONDecoder // the JSON scanner, also used by SenML
	csv    csvState
	senml  senmlState
	raw    int // raw: the field that takes the payload

	topics   []TopicMatcher
	captures bool // some template captures fields
	capFn    func(name, value string)
	capTopic string
	capErr   *DecodeError
	// capCache keeps the captures of topics that captured without error:
	// a sensor's messages share their topic, and matching the templates
	// and converting the captured text again for each of them cost a third
	// of decoding a small JSON reading. Bounded like the intern table.
	capCache map[string][]capture
}

func (d *msgDecoder) Decode(dst *engine.Batch, in Input) error {
	if err := d.p.checkBatch(dst); err != nil {
		return err
	}
	n0 := dst.Len()
	e := d.topicCaptures(in.Topic)
	if e == nil {
		switch d.format {
		case FormatCSV:
			e = d.decodeCSV(in.Payload, dst)
		case FormatSenML:
			e = d.decodeSenML(in.Payload, in.Received, dst)
		case FormatRaw:
			e = d.decodeRaw(in.Payload, dst)
		default:
			e = d.json.decodeMessage(in.Payload, dst)
		}
	}
	if e != nil {
		truncate(dst, n0)
		return e
	}
	if in.Origin != (engine.Origin{}) {
		for i := n0; i < len(dst.Recs); i++ {
			dst.Recs[i].Origin = in.Origin
		}
	}
	return nil
}

// topicCaptures fills d.p.caps from the first template matching topic.
func (d *msgDecoder) topicCaptures(topic []byte) *DecodeError {
	p := d.p
	p.caps = p.caps[:0]
	if !d.captures || len(topic) == 0 {
		return nil
	}
	if c, ok := d.capCache[string(topic)]; ok {
		p.caps = append(p.caps, c...)
		return nil
	}
	d.capTopic, d.capErr = p.intern.get(topic), nil
	for _, t := range d.topics {
		if t.Match(d.capTopic, d.capFn) {
			break
		}
	}
	if d.capErr == nil && len(topic) <= internMaxLen {
		if d.capCache == nil || len(d.capCache) >= internMaxEntries {
			d.capCache = make(map[string][]capture)
		}
		d.capCache[d.capTopic] = slices.Clone(p.caps)
	}
	return d.capErr
}

// capture is the Match callback of topicCaptures.
func (d *msgDecoder) capture(name, value string) {
	p := d.p
	idx, ok := p.index[name]
	if !ok || d.capErr != nil {
		return
	}
	v := engine.Null
	if value != "" {
		var reason string
		if v, reason = fromText(p, idx, value); reason != "" {
			d.capErr = &DecodeError{Offset: -1, Field: name, Err: reasonErr(reason),
				Reason: reason + " (captured from topic " + quoteSample(d.capTopic) + ")"}
			return
		}
	}
	p.caps = append(p.caps, capture{idx, v})
}

// decodeRaw appends one record whose raw field holds the payload as text.
func (d *msgDecoder) decodeRaw(payload []byte, dst *engine.Batch) *DecodeError {
	p := d.p
	if len(payload) > p.maxLine {
		return &DecodeError{Offset: p.maxLine, Field: p.names[d.raw],
			Reason: "payload of " + strconv.Itoa(len(payload)) + " bytes is longer than the limit of " + strconv.Itoa(p.maxLine)}
	}
	clear(p.vals)
	v, reason := fromText(p, d.raw, payload)
	if reason != "" {
		return p.fieldErr(-1, d.raw, reason)
	}
	p.vals[d.raw] = v
	return p.commit(dst)
}
