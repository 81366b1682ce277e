//go:build !nobus

package bus_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/bus/bustest"
)

// openLog is an I2C bus that records when each chip-id read (the first
// transaction of opening a BMx280) was attempted.
type openLog struct {
	i2c.BusCloser
	mu    sync.Mutex
	t0    time.Time
	tries map[uint16][]time.Duration
}

func (o *openLog) Tx(addr uint16, w, r []byte) error {
	if len(w) == 1 && w[0] == 0xD0 {
		o.mu.Lock()
		o.tries[addr] = append(o.tries[addr], time.Since(o.t0))
		o.mu.Unlock()
	}
	return o.BusCloser.Tx(addr, w, r)
}

func (o *openLog) attempts(addr uint16) []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.tries[addr])
}

func secs(ds []time.Duration) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = int(d / time.Second)
	}
	return out
}

// TestBackoffAndResume checks, on a fake clock, that a missing sensor is
// retried after 1, 2, 4, ... seconds up to one minute, that its failures
// never delay the other sensor on the same bus, that each failure is
// counted and logged with the device and address, and that once plugged
// in it resumes by itself, with readings stamped at their read time.
func TestBackoffAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := bustest.DatasheetADC
		missing := bustest.NewBMx280(false, bustest.DatasheetCalibration, a[0], a[1], a[2])
		missing.Unplug()
		steady := bustest.NewBMx280(true, bustest.DatasheetCalibration, a[0], a[1], a[2])
		b := bustest.NewI2CBus("i2c-1")
		b.Attach(0x76, missing)
		b.Attach(0x77, steady)
		ol := &openLog{BusCloser: b, t0: time.Now(), tries: map[uint16][]time.Duration{}}
		h := bustest.NewHost()
		h.I2C[1] = ol
		var logs bytes.Buffer
		var logMu sync.Mutex
		log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
		c := newCollector()
		p := bus.NewPoller(h, []bus.Sensor{
			{Pipeline: "p", Source: "flaky", Config: bus.Config{Device: "bme280", I2C: &bus.I2C{Bus: "1"}, Interval: 10 * time.Second}},
			{Pipeline: "p", Source: "steady", Config: bus.Config{Device: "bmp280", I2C: &bus.I2C{Bus: "1", Addr: 0x77}, Interval: 10 * time.Second}},
		}, c, bus.Options{Logger: log})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()

		time.Sleep(190 * time.Second)
		synctest.Wait()
		if got, want := secs(ol.attempts(0x76)), []int{0, 1, 3, 7, 15, 31, 63, 123, 183}; !slices.Equal(got, want) {
			t.Errorf("open attempts at %v s; want %v (backoff 1 s doubling up to 1 min)", got, want)
		}
		st := p.Status()
		if st[0].State != "failing" || st[0].Errors != 9 || st[0].RetryIn != bus.Duration(time.Minute) || !strings.Contains(st[0].LastError, "NACK") {
			t.Errorf("flaky status %+v; want failing, 9 errors, retry in 1m, a NACK", st[0])
		}
		if st[1].State != "ok" || st[1].Reads != 19 {
			t.Errorf("steady status %+v; want ok with 19 reads (0 s to 180 s)", st[1])
		}
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		if !strings.Contains(out, `msg="bus sensor failing" pipeline=p source=flaky device=bme280 where="i2c bus 1 addr 0x76"`) {
			t.Errorf("the failure log does not name the device and address:\n%s", out)
		}

		missing.Replug()
		time.Sleep(70 * time.Second) // the next try is at 243 s
		synctest.Wait()
		var flaky []int64
		for _, r := range c.readings() {
			if r.topic == "$bus/p/flaky" {
				flaky = append(flaky, int64(r.f["time"].(float64))-ol.t0.UnixMilli())
			}
		}
		if want := []int64{243000, 253000}; !slices.Equal(flaky, want) {
			t.Errorf("flaky readings at %v ms; want %v (resumed at the next try, then every interval, stamped at read time)", flaky, want)
		}
		if st := p.Status()[0]; st.State != "ok" || st.LastError != "" || st.Errors != 9 {
			t.Errorf("after recovery: %+v; want ok, errors still counted", st)
		}
		cancel()
		<-done
	})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// countInFile decodes a count file the way its format is documented: 8
// bytes little-endian and their CRC-32.
func countInFile(t *testing.T, file string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("count file: %v", err)
		return 0
	}
	if len(b) != 12 || crc32.ChecksumIEEE(b[:8]) != binary.LittleEndian.Uint32(b[8:]) {
		t.Errorf("count file % x does not check out", b)
	}
	return binary.LittleEndian.Uint64(b[:8])
}

// TestPulseCountSurvivesRestart counts rising edges, checks that every
// reported count was in the count file before the reading was handed on,
// and that a new poller (a restarted edged) continues from it.
func TestPulseCountSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		file := bus.CountFile(dir, "p", "water")
		pin := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level, 16)}
		h := bustest.NewHost()
		h.Pins["GPIO17"] = pin
		cfg := bus.Config{Device: "gpio", GPIO: &bus.GPIO{Pin: "GPIO17", Mode: "counter", Pull: "up"},
			Interval: time.Minute, Calibrate: map[string]bus.Calibration{"count": {Scale: ptr(0.5)}}}
		run := func(edgesBefore int, wantCounts ...float64) {
			t.Helper()
			c := newCollector()
			c.fn = func(_ string, payload []byte) {
				var r struct{ Count float64 }
				json.Unmarshal(payload, &r)
				if r.Count == 0 {
					return // nothing counted yet: no file needed
				}
				if n := countInFile(t, file); float64(n)*0.5 != r.Count {
					t.Errorf("reading %s handed on before its count reached the file (file has %d)", payload, n)
				}
			}
			p := bus.NewPoller(h, []bus.Sensor{{Pipeline: "p", Source: "water", Config: cfg}}, c, bus.Options{StateDir: dir})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			synctest.Wait() // first reading at start
			for range edgesBefore {
				pin.EdgesChan <- gpio.High
				synctest.Wait()
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			cancel()
			<-done
			var got []float64
			for _, r := range c.readings() {
				got = append(got, num(t, r, "count"))
			}
			if !slices.Equal(got, wantCounts) {
				t.Errorf("counts %v; want %v", got, wantCounts)
			}
		}
		run(6, 0, 3) // six edges, scale 0.5
		run(4, 3, 5) // restarted: continues from 6 edges
		if n := countInFile(t, file); n != 10 {
			t.Errorf("count file holds %d; want 10", n)
		}

		// A corrupt count file stops the counter rather than restart at 0.
		if err := os.WriteFile(file, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		c := newCollector()
		p := bus.NewPoller(h, []bus.Sensor{{Pipeline: "p", Source: "water", Config: cfg}}, c, bus.Options{StateDir: dir})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		synctest.Wait()
		st := p.Status()[0]
		cancel()
		<-done
		if len(c.readings()) != 0 || st.State != "failing" || !strings.Contains(st.LastError, "is corrupt") {
			t.Errorf("corrupt count file: readings %v, status %+v; want none and failing", c.readings(), st)
		}
	})
}

// TestLevelInput reads a digital input's level as a bool.
func TestLevelInput(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO4", L: gpio.Low}
	h := bustest.NewHost()
	h.Pins["GPIO4"] = pin
	got, _ := poll(t, h, bus.Config{Device: "gpio", GPIO: &bus.GPIO{Pin: "GPIO4", Pull: "down"}, Interval: time.Hour}, 1)
	if got[0].f["level"] != false {
		t.Fatalf("got %s; want level false", got[0].raw)
	}
	got, _ = poll(t, h, bus.Config{Device: "gpio", GPIO: &bus.GPIO{Pin: "GPIO4", Pull: "up"}, Interval: time.Hour}, 1)
	if got[0].f["level"] != true {
		t.Fatalf("got %s; want level true (pulled up)", got[0].raw)
	}
}

func ptr[T any](v T) *T { return &v }
