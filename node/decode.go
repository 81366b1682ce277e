package node

import (
	"fmt"
	"strconv"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/ingest/mqtt"
)

// fieldFill sets fields of decoded records by name: topic captures, and the
// SenML and raw decoders' outputs. It recomputes Record.Key when a key field
// was set.
type fieldFill struct {
	schema  *engine.Schema
	timeIdx int
	keyIdx  []int
	keyBuf  []byte
	// SenML and raw targets (-1: not in the schema).
	name, unit, value, sum, payload int
	// set during fillTopic
	rec    *engine.Record
	keyHit bool
	fn     func(name, value string)
}

func newFieldFill(cfg decode.Config) fieldFill {
	f := fieldFill{schema: cfg.Schema, timeIdx: -1}
	idx := func(n string) int {
		if i, ok := cfg.Schema.Index(n); ok {
			return i
		}
		return -1
	}
	if cfg.TimeField != "" {
		f.timeIdx = idx(cfg.TimeField)
	}
	for _, k := range cfg.KeyFields {
		f.keyIdx = append(f.keyIdx, idx(k))
	}
	f.name, f.unit, f.value, f.sum = idx("name"), idx("unit"), idx("value"), idx("sum")
	f.payload = idx("payload")
	if f.payload < 0 {
		for i := range cfg.Schema.Len() {
			if cfg.Schema.Field(i).Kind == engine.KindString {
				f.payload = i
				break
			}
		}
	}
	return f
}

// convert returns text as a value of kind k (null when it does not parse).
func convert(k engine.Kind, text string) engine.Value {
	switch k {
	case engine.KindString:
		return engine.String(text)
	case engine.KindNumber:
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return engine.Number(f)
		}
	case engine.KindBool:
		if b, err := strconv.ParseBool(text); err == nil {
			return engine.Bool(b)
		}
	case engine.KindTime:
		if ms, err := strconv.ParseInt(text, 10, 64); err == nil {
			return engine.Time(ms)
		}
		if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
			return engine.Time(t.UnixMilli())
		}
	}
	return engine.Null
}

// fillTopic sets the fields captured by the first template matching topic
// on the records in[from:]. Captured values override the payload's.
func (s *pipeSource) fillTopic(topic string, in *engine.Batch, from int) {
	f := &s.fields
	if f.fn == nil {
		f.fn = func(name, value string) {
			i, ok := f.schema.Index(name)
			if !ok {
				return
			}
			v := convert(f.schema.Field(i).Kind, value)
			f.rec.Vals[i] = v
			if i == f.timeIdx && v.Kind == engine.KindTime {
				f.rec.Time = v.Millis()
			}
			for _, k := range f.keyIdx {
				if k == i {
					f.keyHit = true
				}
			}
		}
	}
	for _, t := range s.tmpls {
		if !t.Match(topic, nil) {
			continue
		}
		for r := from; r < in.Len(); r++ {
			f.rec, f.keyHit = &in.Recs[r], false
			t.Match(topic, f.fn)
			if f.keyHit {
				f.setKey(f.rec)
			}
		}
		f.rec = nil
		return
	}
}

// setKey recomputes r.Key the way the decoders do: the key fields' text
// joined with "/".
func (f *fieldFill) setKey(r *engine.Record) {
	b := f.keyBuf[:0]
	for i, k := range f.keyIdx {
		if i > 0 {
			b = append(b, '/')
		}
		if k >= 0 && r.Vals[k].Kind != engine.KindNull {
			b = r.Vals[k].AppendText(b)
		}
	}
	f.keyBuf = b
	r.Key = string(b)
}

// decodeSenML appends one record per SenML record of payload: the fields
// named name, unit, value and sum take the record's resolved name, unit,
// value (when its kind matches the field's) and sum; the event-time field
// (eventTime) takes its time.
func (s *pipeSource) decodeSenML(payload []byte, in *engine.Batch, now time.Time) error {
	f := &s.fields
	return s.senml.Decode(payload, now, func(sr *mqtt.SenMLRecord) error {
		r := in.Append()
		if f.name >= 0 {
			r.Vals[f.name] = convert(f.schema.Field(f.name).Kind, sr.Name)
		}
		if f.unit >= 0 && sr.Unit != "" {
			r.Vals[f.unit] = convert(f.schema.Field(f.unit).Kind, sr.Unit)
		}
		if f.value >= 0 && sr.Value.Kind == f.schema.Field(f.value).Kind {
			r.Vals[f.value] = sr.Value
		}
		if f.sum >= 0 && sr.HasSum && f.schema.Field(f.sum).Kind == engine.KindNumber {
			r.Vals[f.sum] = engine.Number(sr.Sum)
		}
		if f.timeIdx >= 0 {
			ms := sr.Millis()
			r.Time = ms
			if f.schema.Field(f.timeIdx).Kind == engine.KindTime {
				r.Vals[f.timeIdx] = engine.Time(ms)
			} else {
				r.Vals[f.timeIdx] = engine.Number(float64(ms))
			}
		}
		if len(f.keyIdx) > 0 {
			f.setKey(r)
		}
		return nil
	})
}

// decodeRaw appends one record whose field "payload" (or, without one, the
// first string field) holds the whole payload as text. Raw records carry no
// event time unless a topic capture fills the event-time field.
func (s *pipeSource) decodeRaw(payload []byte, in *engine.Batch) error {
	f := &s.fields
	if f.payload < 0 {
		return fmt.Errorf("raw: the source has no string field to hold the payload")
	}
	v, err := mqtt.DecodeRaw(payload, s.csvCfg.MaxLineBytes)
	if err != nil {
		return err
	}
	r := in.Append()
	r.Vals[f.payload] = v
	if len(f.keyIdx) > 0 {
		f.setKey(r)
	}
	return nil
}
