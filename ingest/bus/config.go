package bus

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is one sensor: the `bus:` block of a pipeline source. Exactly one of
// I2C, SPI, OneWire and GPIO is set, the one the device is wired to.
type Config struct {
	// Device is the driver: bme280, bmp280, ds18b20, ads1115 or gpio.
	Device string `yaml:"device"`
	// I2C is the I2C bus and address (bme280, bmp280, ads1115).
	I2C *I2C `yaml:"i2c"`
	// SPI is the SPI port (bme280, bmp280).
	SPI *SPI `yaml:"spi"`
	// OneWire is the 1-Wire bus and device address (ds18b20).
	OneWire *OneWire `yaml:"onewire"`
	// GPIO is the input pin (gpio).
	GPIO *GPIO `yaml:"gpio"`
	// Interval is how often the sensor is read (for a pulse counter: how often
	// its count is reported). It must be set, at least MinInterval.
	Interval time.Duration `yaml:"interval"`
	// Channel is the ads1115 input, 0 to 3 (single-ended, against GND).
	Channel *int `yaml:"channel"`
	// Gain is the ads1115 programmable gain: 2/3, 1 (default), 2, 4, 8 or 16,
	// for a full-scale range of 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 V.
	Gain string `yaml:"gain"`
	// Fields are constant string fields added to every reading (for example
	// the sensor's id or location).
	Fields map[string]string `yaml:"fields"`
	// Calibrate corrects measured fields: value*scale + offset, by field name.
	Calibrate map[string]Calibration `yaml:"calibrate"`
}

// I2C locates a device on an I2C bus.
type I2C struct {
	// Bus is the bus number ("1" for /dev/i2c-1); "I2C1" and "/dev/i2c-1"
	// are accepted too.
	Bus string `yaml:"bus"`
	// Addr is the 7-bit address; zero means the device's default (0x76 for
	// bme280/bmp280, 0x48 for ads1115).
	Addr int `yaml:"addr"`
}

// SPI locates a device on an SPI port.
type SPI struct {
	// Port is "BUS.CS", e.g. "0.0" for /dev/spidev0.0 ("SPI0.0" and
	// "/dev/spidev0.0" are accepted too).
	Port string `yaml:"port"`
}

// OneWire locates a device on a 1-Wire bus.
type OneWire struct {
	// Bus is the 1-Wire bus name; empty means the first one found.
	Bus string `yaml:"bus"`
	// Addr is the device id as Linux shows it under /sys/bus/w1/devices
	// ("28-0316a2794bff"). Empty means the only DS18B20 found on the bus.
	Addr string `yaml:"addr"`
	// Resolution is the DS18B20 resolution in bits, 9 to 12 (zero: 12). A
	// conversion takes 94 ms at 9 bits and 750 ms at 12.
	Resolution int `yaml:"resolution"`
}

// GPIO is a digital input.
type GPIO struct {
	// Pin is the pin name or number ("GPIO17" or "17").
	Pin string `yaml:"pin"`
	// Mode is level (default: the pin's level as the bool field "level") or
	// counter (edges counted into the number field "count", which survives
	// restarts).
	Mode string `yaml:"mode"`
	// Pull is the internal resistor: none (default), up or down.
	Pull string `yaml:"pull"`
	// Edge is the edge a counter counts: rising (default), falling or both.
	Edge string `yaml:"edge"`
}

// Calibration is a linear correction of one field: value*Scale + Offset.
type Calibration struct {
	// Offset is added after scaling.
	Offset float64 `yaml:"offset"`
	// Scale multiplies the raw value; nil means 1. Zero is an error.
	Scale *float64 `yaml:"scale"`
}

// MinInterval is the shortest poll interval.
const MinInterval = 10 * time.Millisecond

// KeyError is one problem of a Config, at a key path relative to the `bus:`
// block ("i2c.addr").
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return "bus." + e.Key + ": " + e.Msg }

// Validate checks c and returns every problem as joined *KeyError values. It
// checks what can be checked without the hardware; whether the bus exists is
// checked by CheckHost.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	d, ok := devices[c.Device]
	if !ok {
		if c.Device == "" {
			add("device", "required (one of %s)", strings.Join(Devices(), ", "))
		} else {
			add("device", "unknown device %q (want one of %s)", c.Device, strings.Join(Devices(), ", "))
		}
	}
	set := map[string]bool{"i2c": c.I2C != nil, "spi": c.SPI != nil, "onewire": c.OneWire != nil, "gpio": c.GPIO != nil}
	var given []string
	for _, k := range []string{"i2c", "spi", "onewire", "gpio"} {
		if set[k] {
			given = append(given, k)
			if ok && !slices.Contains(d.buses, k) {
				add(k, "a %s is not wired to %s (want %s)", c.Device, k, strings.Join(d.buses, " or "))
			}
		}
	}
	if ok && len(given) == 0 {
		add(d.buses[0], "required: where the %s is wired (%s)", c.Device, strings.Join(d.buses, " or "))
	}
	if len(given) > 1 {
		add(given[1], "set only one of %s", strings.Join(given, ", "))
	}
	switch {
	case c.Interval == 0:
		add("interval", "required: how often the sensor is read, e.g. 1s")
	case c.Interval < MinInterval:
		add("interval", "must be at least %s, got %s", MinInterval, c.Interval)
	}
	if c.I2C != nil {
		if _, err := I2CBusNumber(c.I2C.Bus); err != nil {
			add("i2c.bus", "%v", err)
		}
		if a := c.I2C.Addr; a != 0 {
			switch {
			case a < 0x03 || a > 0x77:
				add("i2c.addr", "0x%x is out of the 7-bit address range 0x03-0x77", a)
			case ok && len(d.addrs) > 0 && !slices.Contains(d.addrs, a):
				add("i2c.addr", "a %s answers at %s, not 0x%x", c.Device, hexList(d.addrs), a)
			}
		}
	}
	if c.SPI != nil {
		if _, _, err := SPIPort(c.SPI.Port); err != nil {
			add("spi.port", "%v", err)
		}
	}
	if c.OneWire != nil {
		if c.OneWire.Addr != "" {
			if _, err := ParseOneWireAddr(c.OneWire.Addr); err != nil {
				add("onewire.addr", "%v", err)
			}
		}
		if r := c.OneWire.Resolution; r != 0 && (r < 9 || r > 12) {
			add("onewire.resolution", "must be 9 to 12 bits, got %d", r)
		}
	}
	if g := c.GPIO; g != nil {
		if g.Pin == "" {
			add("gpio.pin", "required (e.g. GPIO17)")
		}
		switch g.Mode {
		case "", "level", "counter":
		default:
			add("gpio.mode", "unknown mode %q (want level or counter)", g.Mode)
		}
		switch g.Pull {
		case "", "none", "up", "down":
		default:
			add("gpio.pull", "unknown pull %q (want none, up or down)", g.Pull)
		}
		switch g.Edge {
		case "", "rising", "falling", "both":
			if g.Edge != "" && g.Mode != "counter" {
				add("gpio.edge", "only a counter counts edges (set mode: counter)")
			}
		default:
			add("gpio.edge", "unknown edge %q (want rising, falling or both)", g.Edge)
		}
	}
	if c.Device != "ads1115" {
		if c.Channel != nil {
			add("channel", "only an ads1115 has channels")
		}
		if c.Gain != "" {
			add("gain", "only an ads1115 has a gain")
		}
	} else {
		if c.Channel == nil {
			add("channel", "required: the input, 0 to 3")
		} else if *c.Channel < 0 || *c.Channel > 3 {
			add("channel", "must be 0 to 3, got %d", *c.Channel)
		}
		if _, err := GainRange(c.Gain); err != nil {
			add("gain", "%v", err)
		}
	}
	measured := c.Measured()
	for _, k := range sortedKeys(c.Fields) {
		switch {
		case !fieldRE.MatchString(k):
			add("fields."+k, "a field name is letters, digits and '_', starting with a letter")
		case k == "time" || slices.ContainsFunc(measured, func(f Field) bool { return f.Name == k }):
			add("fields."+k, "%q is a field the %s reports", k, c.Device)
		}
	}
	for _, k := range sortedKeys(c.Calibrate) {
		i := slices.IndexFunc(measured, func(f Field) bool { return f.Name == k })
		switch {
		case i < 0:
			add("calibrate."+k, "%q is not a number the %s reports (%s)", k, c.Device, numberNames(measured))
		case measured[i].Kind != "number":
			add("calibrate."+k, "%q is a %s; only numbers are calibrated", k, measured[i].Kind)
		}
		if s := c.Calibrate[k].Scale; s != nil && (*s == 0 || math.IsNaN(*s) || math.IsInf(*s, 0)) {
			add("calibrate."+k+".scale", "must be a non-zero number")
		}
	}
	return errors.Join(errs...)
}

var fieldRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func hexList(a []int) string {
	s := make([]string, len(a))
	for i, v := range a {
		s[i] = fmt.Sprintf("0x%x", v)
	}
	return strings.Join(s, " or ")
}

func numberNames(fs []Field) string {
	var s []string
	for _, f := range fs {
		if f.Kind == "number" {
			s = append(s, f.Name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

var (
	i2cNameRE = regexp.MustCompile(`^(?:/dev/i2c-|I2C|i2c)?([0-9]{1,3})$`)
	spiNameRE = regexp.MustCompile(`^(?:/dev/spidev|SPI|spi)?([0-9]{1,3})\.([0-9]{1,2})$`)
	owAddrRE  = regexp.MustCompile(`^([0-9a-fA-F]{2})-([0-9a-fA-F]{12})$`)
)

// I2CBusNumber parses an I2C bus name: "1", "I2C1" or "/dev/i2c-1".
func I2CBusNumber(name string) (int, error) {
	m := i2cNameRE.FindStringSubmatch(name)
	if m == nil {
		if name == "" {
			return 0, errors.New(`required: the bus number, e.g. "1" for /dev/i2c-1`)
		}
		return 0, fmt.Errorf(`%q is not an I2C bus (want a number such as "1" for /dev/i2c-1)`, name)
	}
	return strconv.Atoi(m[1])
}

// SPIPort parses an SPI port name: "0.0", "SPI0.0" or "/dev/spidev0.0".
func SPIPort(name string) (bus, cs int, err error) {
	m := spiNameRE.FindStringSubmatch(name)
	if m == nil {
		if name == "" {
			return 0, 0, errors.New(`required: BUS.CS, e.g. "0.0" for /dev/spidev0.0`)
		}
		return 0, 0, fmt.Errorf(`%q is not an SPI port (want BUS.CS such as "0.0" for /dev/spidev0.0)`, name)
	}
	bus, _ = strconv.Atoi(m[1])
	cs, _ = strconv.Atoi(m[2])
	return bus, cs, nil
}

// ParseOneWireAddr parses a 1-Wire device id as Linux names it ("28-" and
// 12 hex digits of serial number) into the 64-bit ROM code (family code in
// the low byte, CRC in the high byte) that periph.io addresses devices by.
func ParseOneWireAddr(s string) (uint64, error) {
	m := owAddrRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a 1-Wire device id (want FAMILY-SERIAL as in /sys/bus/w1/devices, e.g. 28-0316a2794bff)", s)
	}
	fam, _ := strconv.ParseUint(m[1], 16, 8)
	ser, _ := strconv.ParseUint(m[2], 16, 48)
	var rom [7]byte
	rom[0] = byte(fam)
	for i := range 6 {
		rom[1+i] = byte(ser >> (8 * i))
	}
	a := ser<<8 | fam | uint64(crc8(rom[:]))<<56
	return a, nil
}

// OneWireID formats a 64-bit ROM code the way Linux names the device.
func OneWireID(addr uint64) string {
	return fmt.Sprintf("%02x-%012x", byte(addr), (addr>>8)&(1<<48-1))
}

// crc8 is the Dallas/Maxim 1-Wire CRC (polynomial x^8+x^5+x^4+1).
func crc8(b []byte) byte {
	var crc byte
	for _, v := range b {
		for range 8 {
			mix := (crc ^ v) & 1
			crc >>= 1
			if mix != 0 {
				crc ^= 0x8c
			}
			v >>= 1
		}
	}
	return crc
}

// gains maps an ads1115 gain to its full-scale range in millivolts.
var gains = map[string]int{"2/3": 6144, "1": 4096, "2": 2048, "4": 1024, "8": 512, "16": 256}

// GainRange returns the full-scale range in volts of an ads1115 gain ("" is 1).
func GainRange(gain string) (float64, error) {
	if gain == "" {
		gain = "1"
	}
	mv, ok := gains[gain]
	if !ok {
		return 0, fmt.Errorf("unknown gain %q (want 2/3, 1, 2, 4, 8 or 16)", gain)
	}
	return float64(mv) / 1000, nil
}
