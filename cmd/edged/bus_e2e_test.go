//go:build !nobus

package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const busE2EPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: boiler}
spec:
  interval: 200ms
  sources:
    - name: room
      eventTime: time
      watermark: 500ms
      bus:
        device: bme280
        i2c: {bus: "1", addr: 0x76}
        interval: 100ms
        fields: {sensor: boiler-1}
        calibrate: {temperature: {offset: -0.08}}
    - name: pipe
      bus:
        device: ds18b20
        onewire: {addr: 28-000001318252}
        interval: 1s
    - name: water
      bus:
        device: gpio
        gpio: {pin: GPIO27, mode: counter}
        interval: 300ms
  steps:
    - name: per-second
      input: room
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        aggregates:
          - n: count()
          - avg_temp: avg(temperature)
          - max_hpa: max(pressure)
  sinks:
    - {name: seconds, input: per-second, type: file, path: seconds.jsonl}
    - {name: pipe-temp, input: pipe, type: file, path: pipe.jsonl}
    - {name: water-count, input: water, type: file, path: water.jsonl}
`

// TestEndToEndBusSensors builds edged with the tag busfake (emulated
// sensors on the same drivers), runs it as a real process with a pipeline
// reading three sensors, and checks that one-second windows of the BME280's
// readings, the DS18B20's temperature and the pulse counter reach their file
// sinks; then restarts it and checks that the pulse count continues from
// where it was instead of restarting at 0.
func TestEndToEndBusSensors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "edged")
	if out, err := exec.Command("go", "build", "-tags", "busfake", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags busfake: %v\n%s", err, out)
	}
	pipes := filepath.Join(dir, "pipelines")
	os.MkdirAll(pipes, 0o755)
	os.WriteFile(filepath.Join(pipes, "boiler.yaml"), []byte(busE2EPipeline), 0o644)
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "edged.yaml")
	os.WriteFile(cfg, []byte("mqtt: {listen: \"\"}\nstorage: {sync: never}\n"), 0o644)

	var (
		check bytes.Buffer
		probe bytes.Buffer
	)
	cmd := exec.Command(bin, "check", filepath.Join(pipes, "boiler.yaml"))
	cmd.Stdout, cmd.Stderr = &check, &check
	if err := cmd.Run(); err != nil {
		t.Fatalf("edged check on the emulated buses: %v\n%s", err, check.String())
	}
	cmd = exec.Command(bin, "probe", "-i2c", "1")
	cmd.Stdout, cmd.Stderr = &probe, &probe
	if err := cmd.Run(); err != nil || !strings.Contains(probe.String(), "0x76  bme280 or bmp280") ||
		!strings.Contains(probe.String(), "0x48  ads1115") {
		t.Fatalf("edged probe -i2c 1: %v\n%s", err, probe.String())
	}

	run := func() (stop func() string, addr string) {
		addr = freeAddr(t)
		cmd := exec.Command(bin, "run", "-c", cfg, "--data-dir", data, "--pipelines-dir", pipes, "--api", addr)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return func() string {
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("edged exited with %v\n%s", err, stderr.String())
			}
			return stderr.String()
		}, addr
	}
	out := filepath.Join(data, "out")
	stop, addr := run()
	eventually(t, 30*time.Second, func() error {
		lines, err := fileLines(filepath.Join(out, "seconds.jsonl"))
		if err != nil {
			return err
		}
		if len(lines) < 2 {
			return fmt.Errorf("%d windows so far", len(lines))
		}
		for _, l := range lines {
			temp, _ := l["avg_temp"].(float64)
			hpa, _ := l["max_hpa"].(float64)
			if l["sensor"] != "boiler-1" || math.Abs(temp-25) > 1e-9 || math.Abs(hpa-1006.5327) > 0.001 {
				return fmt.Errorf("window %v: want sensor boiler-1, avg_temp 25 (25.08 - 0.08), max_hpa 1006.5327", l)
			}
		}
		// Full windows hold the ten readings of one second.
		if n := lines[1]["n"]; n != 10.0 {
			return fmt.Errorf("second window %v: want n 10 (a reading every 100 ms)", lines[1])
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		lines, err := fileLines(filepath.Join(out, "pipe.jsonl"))
		if err != nil || len(lines) == 0 {
			return fmt.Errorf("pipe temperature: %v, %d lines", err, len(lines))
		}
		if lines[0]["temperature"] != 25.0625 {
			return fmt.Errorf("pipe temperature %v; want 25.0625 (datasheet 0x0191)", lines[0])
		}
		return nil
	})
	var lastCount float64
	eventually(t, 30*time.Second, func() error {
		lines, err := fileLines(filepath.Join(out, "water.jsonl"))
		if err != nil || len(lines) < 3 {
			return fmt.Errorf("water: %v, %d lines", err, len(lines))
		}
		lastCount, _ = lines[len(lines)-1]["count"].(float64)
		if lastCount < 3 {
			return fmt.Errorf("count %v; want the pulses counted", lastCount)
		}
		return nil
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `edged_bus_sensor_up{pipeline="boiler",source="room",device="bme280"} 1`) {
		t.Errorf("metrics lack the sensor up:\n%s", body)
	}
	stop()

	countBefore := lastCount
	stop, _ = run()
	defer stop()
	eventually(t, 30*time.Second, func() error {
		lines, err := fileLines(filepath.Join(out, "water.jsonl"))
		if err != nil {
			return err
		}
		prev := 0.0
		for i, l := range lines {
			c := l["count"].(float64)
			if c < prev {
				return fmt.Errorf("count went back from %v to %v at line %d (restart)", prev, c, i+1)
			}
			prev = c
		}
		if prev <= countBefore {
			return fmt.Errorf("count %v; want it to go on past %v after the restart", prev, countBefore)
		}
		return nil
	})
}
