package pipeline

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// busSpec is the example of the README's "Local buses" section.
const busSpec = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: boiler}
spec:
  sources:
    - name: boiler-room
      eventTime: time
      watermark: 2s
      bus:
        device: bme280        # bmxx80 family: temperature, pressure, humidity
        i2c: {bus: "1", addr: 0x76}
        interval: 1s
        fields: {sensor: boiler-1}
        calibrate: {temperature: {offset: -0.4}}
  steps:
    - name: per-minute
      input: boiler-room
      window:
        type: tumbling
        size: 1m
        keys: [sensor]
        aggregates:
          - avg_temp: avg(temperature)
          - max_humidity: max(humidity)
  sinks: [{name: out, input: per-minute}]
`

// TestBusSourceSchemaIsTheSensors: a bus source without fields gets the
// sensor's schema (read time, measured values, constant fields), which
// steps can use, and recorded readings run through batch mode.
func TestBusSourceSchemaIsTheSensors(t *testing.T) {
	s, err := Parse("boiler.yaml", []byte(busSpec))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range c.Decoders["boiler-room"].Schema.Fields() {
		got = append(got, f.Name+":"+f.Kind.String())
	}
	if want := "time:time temperature:number pressure:number humidity:number sensor:string"; strings.Join(got, " ") != want {
		t.Fatalf("schema %v; want %s", got, want)
	}
	in := `{"time":60000,"temperature":20,"pressure":1000,"humidity":40,"sensor":"boiler-1"}
{"time":90000,"temperature":22,"pressure":1000,"humidity":45,"sensor":"boiler-1"}
{"time":130000,"temperature":30,"pressure":1000,"humidity":50,"sensor":"boiler-1"}
`
	var out bytes.Buffer
	if _, err := RunBatch(context.Background(), c, BatchOptions{Input: strings.NewReader(in), Output: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"avg_temp":21`) || !strings.Contains(out.String(), `"max_humidity":45`) {
		t.Fatalf("got %s; want the first minute's avg_temp 21 and max_humidity 45", out.String())
	}
}

func TestBusSourceWithMQTTIsRejected(t *testing.T) {
	doc := strings.Replace(busSpec, "      bus:\n", "      mqtt: {topics: [a/b]}\n      bus:\n", 1)
	_, err := Parse("x.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), "spec.sources[0].bus: a source reads mqtt or bus, not both") {
		t.Fatalf("got %v; want the mqtt-or-bus error", err)
	}
}
