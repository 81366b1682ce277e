//go:build !nobus

package bus_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
	"periph.io/x/conn/v3/spi/spitest"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/bus/bustest"
	"github.com/edgedio/edged/internal/testkit"
)

// reading is one decoded payload with its topic.
type reading struct {
	topic string
	raw   string
	f     map[string]any
}

// collector is a Handler that keeps what it gets.
type collector struct {
	mu   sync.Mutex
	got  []reading
	fn   func(topic string, payload []byte) // called before keeping, may be nil
	wake chan struct{}
}

func newCollector() *collector { return &collector{wake: make(chan struct{}, 1)} }

func (c *collector) HandleReading(_ context.Context, topic string, payload []byte) error {
	if c.fn != nil {
		c.fn(topic, payload)
	}
	r := reading{topic: topic, raw: string(payload)}
	if err := json.Unmarshal(payload, &r.f); err != nil {
		panic("payload is not JSON: " + string(payload))
	}
	c.mu.Lock()
	c.got = append(c.got, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) readings() []reading {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]reading(nil), c.got...)
}

// waitFor waits (on real time) until n readings arrived.
func (c *collector) waitFor(t *testing.T, n int) []reading {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := c.readings(); len(got) >= n {
			return got
		}
		select {
		case <-c.wake:
		case <-deadline:
			t.Fatalf("got %d readings; want %d", len(c.readings()), n)
		}
	}
}

// poll runs one sensor until it produced n readings, then stops it.
func poll(t *testing.T, h bus.Host, cfg bus.Config, n int) ([]reading, []bus.SensorStatus) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	p := bus.NewPoller(h, []bus.Sensor{{Pipeline: "p", Source: "s", Config: cfg}}, c, bus.Options{StateDir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	got := c.waitFor(t, n)
	cancel()
	<-done
	return got, p.Status()
}

func num(t *testing.T, r reading, field string) float64 {
	t.Helper()
	v, ok := r.f[field].(float64)
	if !ok {
		t.Fatalf("reading %s: field %q is %v; want a number", r.raw, field, r.f[field])
	}
	return v
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s: got %v; want %v (±%v)", what, got, want, tol)
	}
}

// le16 lays out calibration words little-endian, as the BMx280 stores them.
func le16(words ...int) []byte {
	b := make([]byte, 2*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(w)))
	}
	return b
}

// TestBMP280DatasheetExampleI2C plays back, byte for byte, a BMP280 on I2C
// holding the calibration and raw readings of the datasheet's worked example
// (BST-BMP280-DS001 section 3.12): 25.08 °C and 100653.27 Pa.
func TestBMP280DatasheetExampleI2C(t *testing.T) {
	cal := append(le16(27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000), 0, 0)
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x58}}, // chip id: BMP280
		{Addr: 0x77, W: []byte{0x88}, R: cal},          // dig_T1..dig_P9
		// ctrl_meas sleep (osrs_t x1, osrs_p x4), config (t_sb 1 s), ctrl_meas again.
		{Addr: 0x77, W: []byte{0xF4, 0x2C, 0xF5, 0xA0, 0xF4, 0x2C}},
		{Addr: 0x77, W: []byte{0xF4, 0x2D}},         // forced mode: one measurement
		{Addr: 0x77, W: []byte{0xF3}, R: []byte{0}}, // status: idle
		// press 0x655AC0>>4 = 415148, temp 0x7EED00>>4 = 519888.
		{Addr: 0x77, W: []byte{0xF7}, R: []byte{0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00}},
	}}
	h := bustest.NewHost()
	h.I2C[1] = pb
	got, _ := poll(t, h, bus.Config{Device: "bmp280", I2C: &bus.I2C{Bus: "1", Addr: 0x77}, Interval: time.Hour}, 1)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	r := got[0]
	if r.topic != "$bus/p/s" {
		t.Errorf("topic %q; want $bus/p/s", r.topic)
	}
	near(t, "temperature", num(t, r, "temperature"), 25.08, 0.005)
	near(t, "pressure hPa", num(t, r, "pressure"), 1006.5327, 0.001)
	if _, ok := r.f["humidity"]; ok {
		t.Errorf("a BMP280 reports no humidity: %s", r.raw)
	}
}

// bme280Humidity is the datasheet's floating-point compensation
// (BST-BME280-DS002 section 8.1), independent of the driver's integer code.
func bme280Humidity(c bustest.Calibration, adcT, adcH int32) float64 {
	v1 := (float64(adcT)/16384 - float64(c.T1)/1024) * float64(c.T2)
	d := float64(adcT)/131072 - float64(c.T1)/8192
	tFine := v1 + d*d*float64(c.T3)
	h := tFine - 76800
	h = (float64(adcH) - (float64(c.H4)*64 + float64(c.H5)/16384*h)) *
		(float64(c.H2) / 65536 * (1 + float64(c.H6)/67108864*h*(1+float64(c.H3)/67108864*h)))
	h *= 1 - float64(c.H1)*h/524288
	return min(max(h, 0), 100)
}

// TestBME280OverSPI reads an emulated BME280 through the SPI protocol
// (read bit 7 set, writes with bit 7 cleared), checks all three values and
// that the driver configured the humidity oversampling.
func TestBME280OverSPI(t *testing.T) {
	a := bustest.DatasheetADC
	dev := bustest.NewBMx280(false, bustest.DatasheetCalibration, a[0], a[1], a[2])
	h := bustest.NewHost()
	h.SPI["0.1"] = &bustest.SPIPort{Name: "spi0.1", Dev: dev}
	got, _ := poll(t, h, bus.Config{Device: "bme280", SPI: &bus.SPI{Port: "SPI0.1"}, Interval: time.Hour}, 1)
	r := got[0]
	near(t, "temperature", num(t, r, "temperature"), 25.08, 0.005)
	near(t, "pressure hPa", num(t, r, "pressure"), 1006.5327, 0.001)
	want := bme280Humidity(bustest.DatasheetCalibration, a[0], a[2])
	near(t, "humidity", num(t, r, "humidity"), want, 0.05)
	if dev.Reg(0xF2) != 1 {
		t.Errorf("ctrl_hum = %#x; want 1 (humidity oversampling x1)", dev.Reg(0xF2))
	}
}

// TestBMP280SPIPlayback plays a BMP280 over SPI back byte for byte (the
// Bosch 4-wire protocol: a read sends the register with bit 7 set and reads
// one byte later).
func TestBMP280SPIPlayback(t *testing.T) {
	cal := append(le16(27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000), 0, 0)
	pad := func(n int) []byte { return make([]byte, n) }
	pb := &spitest.Playback{Playback: conntest.Playback{Ops: []conntest.IO{
		{W: append([]byte{0xD0}, pad(1)...), R: []byte{0, 0x58}},
		{W: append([]byte{0x88}, pad(26)...), R: append([]byte{0}, cal...)},
		{W: []byte{0x74, 0x2C, 0x75, 0xA0, 0x74, 0x2C}, R: nil}, // writes: bit 7 cleared
		{W: []byte{0x74, 0x2D}},
		{W: []byte{0xF3, 0}, R: []byte{0, 0}},
		{W: append([]byte{0xF7}, pad(6)...), R: []byte{0, 0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00}},
	}}}
	h := bustest.NewHost()
	h.SPI["0.0"] = pb
	got, _ := poll(t, h, bus.Config{Device: "bmp280", SPI: &bus.SPI{Port: "0.0"}, Interval: time.Hour}, 1)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	near(t, "temperature", num(t, got[0], "temperature"), 25.08, 0.005)
	near(t, "pressure hPa", num(t, got[0], "pressure"), 1006.5327, 0.001)
}

// TestWrongChipIsNamed: a bmp280 declared as bme280 fails with a message
// that says what was found.
func TestWrongChipIsNamed(t *testing.T) {
	b := bustest.NewI2CBus("i2c-1")
	b.Attach(0x76, bustest.NewBMx280(true, bustest.DatasheetCalibration, 519888, 415148, 0))
	h := bustest.NewHost()
	h.I2C[1] = b
	st := failOnce(t, h, bus.Config{Device: "bme280", I2C: &bus.I2C{Bus: "1"}, Interval: time.Second})
	if want := "found a BMP280, not a bme280: set device: bmp280"; st.LastError != want {
		t.Fatalf("got %q; want %q", st.LastError, want)
	}
}

// failOnce runs a sensor until its first error and returns its status.
func failOnce(t *testing.T, h bus.Host, cfg bus.Config) bus.SensorStatus {
	t.Helper()
	p := bus.NewPoller(h, []bus.Sensor{{Pipeline: "p", Source: "s", Config: cfg}}, newCollector(), bus.Options{StateDir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var st bus.SensorStatus
	testkit.Eventually(t, 10*time.Second, func() error {
		if st = p.Status()[0]; st.Errors == 0 {
			return errors.New("the sensor has not failed yet")
		}
		return nil
	})
	return st
}

// ds18b20Spad is a scratchpad as the DS18B20 datasheet lays it out: the
// temperature LSB and MSB, TH, TL, the configuration (0x7F: 12 bits),
// three reserved bytes and the CRC.
func ds18b20Spad(raw uint16) []byte {
	s := []byte{byte(raw), byte(raw >> 8), 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10, 0}
	s[8] = onewire.CalcCRC(s[:8])
	return s
}

// TestDS18B20DatasheetValues plays back a DS18B20 answering the datasheet's
// table 1 values: 0x0191 is +25.0625 °C and 0xFF5E is -10.125 °C.
func TestDS18B20DatasheetValues(t *testing.T) {
	for _, tc := range []struct {
		raw  uint16
		want float64
	}{{0x0191, 25.0625}, {0xFF5E, -10.125}, {0x07D0, 125}, {0xFC90, -55}} {
		addr := []byte{0x28, 0x52, 0x82, 0x31, 0x01, 0x00, 0x00, 0x7a} // 28-000001318252, LSB first
		match := func(cmd byte) []byte { return append(append([]byte{0x55}, addr...), cmd) }
		pb := &onewiretest.Playback{Ops: []onewiretest.IO{
			{W: match(0xBE), R: ds18b20Spad(tc.raw), Pull: onewire.WeakPullup}, // New: read the configuration
			{W: match(0x44), Pull: onewire.StrongPullup},                       // convert T, parasite power
			{W: match(0xBE), R: ds18b20Spad(tc.raw), Pull: onewire.WeakPullup},
		}}
		h := bustest.NewHost()
		h.OneWire["w1"] = pb
		got, _ := poll(t, h, bus.Config{Device: "ds18b20", OneWire: &bus.OneWire{Addr: "28-000001318252"}, Interval: time.Hour}, 1)
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
		near(t, "temperature", num(t, got[0], "temperature"), tc.want, 1e-9)
	}
}

// TestDS18B20CRCErrorIsCountedAndRetried: a scratchpad with a bad CRC is a
// read error (never a reading), and the sensor resumes once the line is
// clean. The one DS18B20 on the bus is found without an address.
func TestDS18B20CRCErrorIsCountedAndRetried(t *testing.T) {
	a, _ := bus.ParseOneWireAddr("28-0316a2794bff")
	d := bustest.NewDS18B20(a, 0x0191)
	d.BadCRC.Store(true)
	h := bustest.NewHost()
	h.OneWire["w1"] = &bustest.OneWireBus{Name: "w1", Devs: []*bustest.DS18B20{d}}
	cfg := bus.Config{Device: "ds18b20", OneWire: &bus.OneWire{Resolution: 9}, Interval: time.Hour}
	st := failOnce(t, h, cfg)
	if st.State != "failing" || st.LastError != "ds18b20: incorrect scratchpad CRC" {
		t.Fatalf("status %+v; want failing with the CRC error", st)
	}
	d.BadCRC.Store(false)
	c := newCollector()
	p := bus.NewPoller(h, []bus.Sensor{{Pipeline: "p", Source: "s", Config: cfg}}, c,
		bus.Options{BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	got := c.waitFor(t, 1)
	cancel()
	<-done
	near(t, "temperature", num(t, got[0], "temperature"), 25.0625, 1e-9)
}

// TestADS1115ChannelGainAndCalibration plays back an ADS1115 read of AIN1
// at gain 2 (±2.048 V): the config word follows the datasheet's register
// map (OS=1, MUX=101, PGA=010, MODE=1, DR=100 (128 SPS), COMP_QUE=11:
// 0xD583), and the code 0x4000 is half of full scale, 1.024 V; scale 2 and
// offset 0.5 make it 2.548.
func TestADS1115ChannelGainAndCalibration(t *testing.T) {
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x49, W: []byte{0x01, 0xD5, 0x83}},
		{Addr: 0x49, W: []byte{0x00}, R: []byte{0x40, 0x00}},
	}}
	h := bustest.NewHost()
	h.I2C[1] = pb
	ch := 1
	scale := 2.0
	got, _ := poll(t, h, bus.Config{Device: "ads1115", I2C: &bus.I2C{Bus: "/dev/i2c-1", Addr: 0x49}, Channel: &ch, Gain: "2",
		Interval: time.Hour, Calibrate: map[string]bus.Calibration{"voltage": {Offset: 0.5, Scale: &scale}},
		Fields: map[string]string{"sensor": "tank-level"}}, 1)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	near(t, "voltage", num(t, got[0], "voltage"), 2.548, 1e-9)
	if got[0].f["sensor"] != "tank-level" {
		t.Errorf("constant field: got %s", got[0].raw)
	}
}

// TestADS1115Emulated reads every channel and gain of the emulated chip.
func TestADS1115Emulated(t *testing.T) {
	dev := bustest.NewADS1115([4]float64{0.1, 1.5, 3.3, 5.0})
	b := bustest.NewI2CBus("i2c-1")
	b.Attach(0x48, dev)
	h := bustest.NewHost()
	h.I2C[1] = b
	for _, tc := range []struct {
		ch   int
		gain string
		want float64
	}{{0, "16", 0.1}, {1, "2", 1.5}, {2, "1", 3.3}, {3, "2/3", 5.0}, {3, "1", 4.096 * 32767 / 32768}} {
		ch := tc.ch
		got, _ := poll(t, h, bus.Config{Device: "ads1115", I2C: &bus.I2C{Bus: "1"}, Channel: &ch, Gain: tc.gain, Interval: time.Hour}, 1)
		fs, _ := bus.GainRange(tc.gain)
		near(t, "voltage", num(t, got[0], "voltage"), tc.want, fs/32768)
	}
}

func TestScanI2C(t *testing.T) {
	b := bustest.NewI2CBus("i2c-1")
	b.Attach(0x48, bustest.NewADS1115([4]float64{}))
	gone := bustest.NewBMx280(true, bustest.DatasheetCalibration, 0, 0, 0)
	gone.Unplug()
	b.Attach(0x76, gone)
	b.Attach(0x77, bustest.NewBMx280(false, bustest.DatasheetCalibration, 0, 0, 0))
	if got := bus.ScanI2C(b); !slices.Equal(got, []int{0x48, 0x77}) {
		t.Fatalf("got %#x; want [0x48 0x77]", got)
	}
}
