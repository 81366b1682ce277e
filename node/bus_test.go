//go:build !nobus

package node

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/bus/bustest"
	"github.com/edgedio/edged/ingest/mqtt"
)

const busPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: boiler}
spec:
  interval: 1s
  sources:
    - name: room
      bus:
        device: bme280
        i2c: {bus: "1", addr: 0x76}
        interval: 20ms
        fields: {sensor: boiler-1}
    - name: any
      mqtt: {topics: ["#"]}
      fields: [{name: sensor, type: string}]
  steps:
    - name: celsius
      input: room
      project:
        - sensor: sensor
        - t: temperature
        - at: time
  sinks:
    - {name: readings, input: celsius, type: file, path: readings.jsonl}
`

func busHost() (*bustest.Host, *bustest.BMx280) {
	a := bustest.DatasheetADC
	dev := bustest.NewBMx280(false, bustest.DatasheetCalibration, a[0], a[1], a[2])
	b := bustest.NewI2CBus("i2c-1")
	b.Attach(0x76, dev)
	h := bustest.NewHost()
	h.I2C[1] = b
	return h, dev
}

// TestBusReadingsReachTheSink: a bus source's readings go through the input
// log and the pipeline to a file sink, stamped with their read time; the
// sensor's failures show in status and metrics and it resumes by itself;
// MQTT messages under $bus/ are dropped even when a source subscribes to #.
func TestBusReadingsReachTheSink(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"boiler": busPipeline})
	cfg.MQTT.Brokers = []string{"tcp://127.0.0.1:9"} // MQTT on (handleMQTT is called directly), never connected
	h, dev := busHost()
	start := time.Now()
	tn := startNode(t, cfg, newFakeClock(t0), WithBusHost(h))

	eventually(t, 10*time.Second, func() error {
		if k := tn.logNext(LogMQTT); k < 3 {
			return fmt.Errorf("%d readings in the input log", k-1)
		}
		return nil
	})
	tn.epoch(t, "boiler")
	lines := waitLines(t, filepath.Join(cfg.outputDir(), "readings.jsonl"), 2)
	for _, l := range lines[:2] {
		if l["sensor"] != "boiler-1" || l["t"] != 25.08 {
			t.Fatalf("output %v; want sensor boiler-1 and t 25.08", l)
		}
		at, _ := l["at"].(float64)
		if at < float64(start.UnixMilli()) || at > float64(time.Now().UnixMilli()) {
			t.Fatalf("output %v: at is not the read time (between %d and now)", l, start.UnixMilli())
		}
	}

	// MQTT cannot write into a bus source's log, not even through "#".
	before := tn.logNext(LogMQTT)
	if err := tn.handleMQTT(context.Background(), []mqtt.Message{
		{Topic: bus.Topic("boiler", "room"), Payload: []byte(`{"time":1,"temperature":99}`)},
		{Topic: "x/y", Payload: []byte(`{"sensor":"s"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if got := tn.logNext(LogMQTT); got != before+1 {
		t.Errorf("the # source got %d messages; want 1 (x/y only)", got-before)
	}
	err := tn.DB().ReadLog(LogMQTT, 1, 1<<20, func(_ uint64, rec []byte) error {
		if strings.Contains(string(rec), `"temperature":99`) {
			return fmt.Errorf("an MQTT message reached the bus source's log: %q", rec)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if tn.bus.mqttRejected.Load() != 1 {
		t.Errorf("mqtt rejected %d; want 1", tn.bus.mqttRejected.Load())
	}

	dev.Unplug()
	eventually(t, 10*time.Second, func() error {
		st, err := tn.Status()
		if err != nil {
			return err
		}
		if len(st.Bus) != 1 || st.Bus[0].State != "failing" {
			return fmt.Errorf("bus status %+v; want the sensor failing", st.Bus)
		}
		for _, c := range st.Conditions {
			if strings.Contains(c, "bus sensor boiler/room (bme280, i2c bus 1 addr 0x76): failing") {
				return nil
			}
		}
		return fmt.Errorf("no condition for the failing sensor in %q", st.Conditions)
	})
	metrics := func() string {
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		tn.WriteMetrics(bw)
		bw.Flush()
		return b.String()
	}
	m := metrics()
	for _, want := range []string{
		`edged_bus_sensor_up{pipeline="boiler",source="room",device="bme280"} 0`,
		`edged_bus_mqtt_rejected_total 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `edged_bus_errors_total{pipeline="boiler",source="room",device="bme280"} 0`+"\n") ||
		!strings.Contains(m, `edged_bus_errors_total{pipeline="boiler",source="room",device="bme280"} `) {
		t.Errorf("metrics do not count the read error:\n%s", m)
	}
	dev.Replug() // the retry after 1 s finds it
	eventually(t, 10*time.Second, func() error {
		if st := tn.BusStatus(); st[0].State != "ok" {
			return fmt.Errorf("status %+v; want ok again", st[0])
		}
		return nil
	})

	// Deleting the pipeline stops its sensor.
	if _, err := tn.Delete("boiler"); err != nil {
		t.Fatal(err)
	}
	if st := tn.BusStatus(); len(st) != 0 {
		t.Errorf("after delete: %+v; want no sensors", st)
	}
}
