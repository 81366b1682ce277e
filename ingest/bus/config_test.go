package bus

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func intp(v int) *int           { return &v }
func floatp(v float64) *float64 { return &v }

func TestValidateNamesTheKey(t *testing.T) {
	good := func() Config {
		return Config{Device: "bme280", I2C: &I2C{Bus: "1", Addr: 0x76}, Interval: time.Second}
	}
	tests := []struct {
		name   string
		mod    func(c *Config)
		key    string
		substr string
	}{
		{"unknown device", func(c *Config) { c.Device = "bme680" }, "device", `unknown device "bme680"`},
		{"no device", func(c *Config) { c.Device = "" }, "device", "required"},
		{"address out of range", func(c *Config) { c.I2C.Addr = 0x80 }, "i2c.addr", "out of the 7-bit address range"},
		{"address the device does not use", func(c *Config) { c.I2C.Addr = 0x48 }, "i2c.addr", "answers at 0x76 or 0x77"},
		{"bad bus name", func(c *Config) { c.I2C.Bus = "one" }, "i2c.bus", `"one" is not an I2C bus`},
		{"no bus", func(c *Config) { c.I2C.Bus = "" }, "i2c.bus", "required"},
		{"zero interval", func(c *Config) { c.Interval = 0 }, "interval", "required"},
		{"tiny interval", func(c *Config) { c.Interval = time.Millisecond }, "interval", "at least 10ms"},
		{"wrong bus for the device", func(c *Config) { c.I2C = nil; c.OneWire = &OneWire{} }, "onewire", "not wired to onewire"},
		{"two buses", func(c *Config) { c.SPI = &SPI{Port: "0.0"} }, "spi", "set only one of i2c, spi"},
		{"no bus block", func(c *Config) { c.I2C = nil }, "i2c", "required: where the bme280 is wired"},
		{"bad spi port", func(c *Config) { c.I2C = nil; c.SPI = &SPI{Port: "0"} }, "spi.port", "BUS.CS"},
		{"channel on a bme280", func(c *Config) { c.Channel = intp(1) }, "channel", "only an ads1115"},
		{"ads1115 channel out of range", func(c *Config) {
			c.Device, c.I2C.Addr, c.Channel = "ads1115", 0x48, intp(4)
		}, "channel", "0 to 3"},
		{"ads1115 without channel", func(c *Config) { c.Device, c.I2C.Addr = "ads1115", 0x48 }, "channel", "required"},
		{"ads1115 gain", func(c *Config) {
			c.Device, c.I2C.Addr, c.Channel, c.Gain = "ads1115", 0x48, intp(0), "3"
		}, "gain", `unknown gain "3"`},
		{"calibrate unknown field", func(c *Config) {
			c.Calibrate = map[string]Calibration{"voltage": {Offset: 1}}
		}, "calibrate.voltage", "not a number the bme280 reports (temperature, pressure, humidity)"},
		{"calibrate zero scale", func(c *Config) {
			c.Calibrate = map[string]Calibration{"temperature": {Scale: floatp(0)}}
		}, "calibrate.temperature.scale", "non-zero"},
		{"constant field shadows a reading", func(c *Config) { c.Fields = map[string]string{"humidity": "x"} }, "fields.humidity", "reports"},
		{"bad constant field name", func(c *Config) { c.Fields = map[string]string{"a-b": "x"} }, "fields.a-b", "letters"},
		{"gpio without pin", func(c *Config) { c.Device, c.I2C, c.GPIO = "gpio", nil, &GPIO{} }, "gpio.pin", "required"},
		{"gpio edge on a level input", func(c *Config) {
			c.Device, c.I2C, c.GPIO = "gpio", nil, &GPIO{Pin: "GPIO17", Edge: "rising"}
		}, "gpio.edge", "only a counter"},
		{"gpio mode", func(c *Config) {
			c.Device, c.I2C, c.GPIO = "gpio", nil, &GPIO{Pin: "GPIO17", Mode: "pwm"}
		}, "gpio.mode", `unknown mode "pwm"`},
		{"onewire address", func(c *Config) {
			c.Device, c.I2C, c.OneWire = "ds18b20", nil, &OneWire{Addr: "28-xyz"}
		}, "onewire.addr", "not a 1-Wire device id"},
		{"onewire resolution", func(c *Config) {
			c.Device, c.I2C, c.OneWire = "ds18b20", nil, &OneWire{Resolution: 8}
		}, "onewire.resolution", "9 to 12"},
	}
	base := good()
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("got no error")
			}
			var found bool
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ke *KeyError
				if errors.As(e, &ke) && ke.Key == tc.key && strings.Contains(ke.Msg, tc.substr) {
					found = true
				}
			}
			if !found {
				t.Fatalf("got %v; want an error at %s containing %q", err, tc.key, tc.substr)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{Device: "ads1115", I2C: &I2C{Bus: "x", Addr: 0x90}, Gain: "5"}
	err := c.Validate()
	for _, key := range []string{"i2c.bus", "i2c.addr", "interval", "channel", "gain"} {
		if err == nil || !strings.Contains(err.Error(), "bus."+key+":") {
			t.Errorf("got %v; want a problem at bus.%s", err, key)
		}
	}
}

func TestOneWireAddr(t *testing.T) {
	// periph.io's documented example: family 0x28, serial 0x000001318252,
	// CRC 0x7a (the Maxim CRC-8 of the first seven bytes).
	a, err := ParseOneWireAddr("28-000001318252")
	if err != nil {
		t.Fatal(err)
	}
	if a != 0x7a00000131825228 {
		t.Fatalf("got %#x; want 0x7a00000131825228", a)
	}
	if got := OneWireID(a); got != "28-000001318252" {
		t.Fatalf("OneWireID got %s", got)
	}
}

func TestCountFile(t *testing.T) {
	f := t.TempDir() + "/c.count"
	if n, err := loadCount(f); err != nil || n != 0 {
		t.Fatalf("missing file: got %d, %v; want 0, nil", n, err)
	}
	if err := saveCount(f, 1234567); err != nil {
		t.Fatal(err)
	}
	if n, err := loadCount(f); err != nil || n != 1234567 {
		t.Fatalf("got %d, %v; want 1234567", n, err)
	}
}

func TestSchema(t *testing.T) {
	c := Config{Device: "gpio", GPIO: &GPIO{Pin: "GPIO5", Mode: "counter"}, Fields: map[string]string{"site": "a", "meter": "m"}}
	var got []string
	for _, f := range c.Schema() {
		got = append(got, f.Name+":"+f.Kind)
	}
	if want := "time:time count:number meter:string site:string"; strings.Join(got, " ") != want {
		t.Fatalf("got %v; want %s", got, want)
	}
}

func TestDevicesAt(t *testing.T) {
	if got := strings.Join(DevicesAt(0x76), " "); got != "bme280 bmp280" {
		t.Errorf("0x76: got %q", got)
	}
	if got := DevicesAt(0x10); len(got) != 0 {
		t.Errorf("0x10: got %q; want none", got)
	}
}
