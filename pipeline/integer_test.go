package pipeline

import (
	"testing"
)

const integerSpec = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: ints}
spec:
  sources:
    - name: readings
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: int}
        - {name: ts, type: time}
        - {name: temp, type: number}
      eventTime: ts
      watermark: 1s
  steps:
    - name: keep
      project:
        - sensor: sensor
        - seq: seq
        - seq2: seq * 2
        - ts: ts
        - temp: temp
    - name: per-minute
      input: keep
      window:
        type: tumbling
        size: 1m
        keys: [sensor]
        aggregates:
          - n: count()
          - last_seq: max(seq)
          - seq_sum: sum(seq)
          - avg_temp: avg(temp)
          - max_temp: max(temp)
  sinks:
    - {name: raw, input: keep, type: stdout}
    - {name: minutes, input: per-minute, type: stdout}
`

// TestIntegerFieldsAreMarked: a field declared int, counts, and what passes
// an integer on unchanged are marked integral in the sink schemas (the
// uplink writes them as INT64); computed numbers and averages are not.
func TestIntegerFieldsAreMarked(t *testing.T) {
	spec, err := Parse("ints.yaml", []byte(integerSpec))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	for sink, want := range map[string]map[string]bool{
		"raw":     {"sensor": false, "seq": true, "seq2": false, "ts": false, "temp": false},
		"minutes": {"sensor": false, "window_start": false, "window_end": false, "n": true, "last_seq": true, "seq_sum": true, "avg_temp": false, "max_temp": false},
	} {
		s := c.Plan.SinkSchema(sink)
		if s.Len() != len(want) {
			t.Fatalf("sink %s: schema %s; want fields %v", sink, s, want)
		}
		for i := 0; i < s.Len(); i++ {
			if got := s.Integer(i); got != want[s.Field(i).Name] {
				t.Errorf("sink %s field %s: Integer = %v; want %v", sink, s.Field(i).Name, got, want[s.Field(i).Name])
			}
		}
	}
	// The decoder of the source rejects a fraction in the int field.
	cfg := c.Decoders["readings"]
	if !cfg.Schema.Integer(1) {
		t.Fatalf("decoder schema %s: seq not marked integral", cfg.Schema)
	}
}
