package bus

import (
	"fmt"
	"sort"
	"strings"
)

// Field is one field of a sensor's readings.
type Field struct {
	Name string
	// Kind is number, bool, string or time (the pipeline's field types).
	Kind string
}

// device describes one supported driver.
type device struct {
	buses  []string // where it can be wired, the first is the usual one
	addrs  []int    // valid I2C addresses, the first is the default
	fields []Field  // what a reading reports (gpio: by mode, see Measured)
}

var devices = map[string]device{
	"bme280": {buses: []string{"i2c", "spi"}, addrs: []int{0x76, 0x77},
		fields: []Field{{"temperature", "number"}, {"pressure", "number"}, {"humidity", "number"}}},
	"bmp280": {buses: []string{"i2c", "spi"}, addrs: []int{0x76, 0x77},
		fields: []Field{{"temperature", "number"}, {"pressure", "number"}}},
	"ds18b20": {buses: []string{"onewire"}, fields: []Field{{"temperature", "number"}}},
	"ads1115": {buses: []string{"i2c"}, addrs: []int{0x48, 0x49, 0x4a, 0x4b},
		fields: []Field{{"voltage", "number"}}},
	"gpio": {buses: []string{"gpio"}},
}

// Devices returns the supported device names, sorted.
func Devices() []string {
	names := make([]string, 0, len(devices))
	for n := range devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Units documents the unit of each measured field name.
var Units = map[string]string{
	"temperature": "degrees Celsius",
	"pressure":    "hectopascals",
	"humidity":    "percent relative humidity",
	"voltage":     "volts",
	"level":       "true when the pin is high",
	"count":       "edges counted since the count file was created",
}

// Measured returns the fields the sensor of c measures (not "time" nor the
// constant Fields), in a fixed order. An unknown device has none.
func (c *Config) Measured() []Field {
	if c.Device == "gpio" {
		if c.GPIO != nil && c.GPIO.Mode == "counter" {
			return []Field{{"count", "number"}}
		}
		return []Field{{"level", "bool"}}
	}
	return devices[c.Device].fields
}

// Schema returns every field of the sensor's readings: "time" (the read
// time, unix milliseconds), the measured fields, then the constant fields in
// name order.
func (c *Config) Schema() []Field {
	out := append([]Field{{"time", "time"}}, c.Measured()...)
	for _, k := range sortedKeys(c.Fields) {
		out = append(out, Field{k, "string"})
	}
	return out
}

// addr returns the configured I2C address or the device's default.
func (c *Config) addr() int {
	if c.I2C != nil && c.I2C.Addr != 0 {
		return c.I2C.Addr
	}
	if a := devices[c.Device].addrs; len(a) > 0 {
		return a[0]
	}
	return 0
}

// Where names the sensor's bus and address for logs and status, e.g.
// "i2c bus 1 addr 0x76".
func (c *Config) Where() string {
	var b strings.Builder
	switch {
	case c.I2C != nil:
		fmt.Fprintf(&b, "i2c bus %s addr %#x", c.I2C.Bus, c.addr())
	case c.SPI != nil:
		b.WriteString("spi port " + c.SPI.Port)
	case c.OneWire != nil:
		b.WriteString("onewire")
		if c.OneWire.Bus != "" {
			b.WriteString(" bus " + c.OneWire.Bus)
		}
		if c.OneWire.Addr != "" {
			b.WriteString(" addr " + c.OneWire.Addr)
		}
	case c.GPIO != nil:
		b.WriteString("gpio pin " + c.GPIO.Pin)
	}
	return b.String()
}
