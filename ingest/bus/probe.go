package bus

import (
	"periph.io/x/conn/v3/i2c"
)

// ScanI2C returns the 7-bit addresses (0x03 to 0x77) at which a device
// acknowledges a one-byte read, as `i2cdetect -r` does. A read is harmless
// for the sensors this package drives; a few write-only devices do not show.
func ScanI2C(b i2c.Bus) []int {
	var found []int
	var buf [1]byte
	for a := 0x03; a <= 0x77; a++ {
		if b.Tx(uint16(a), nil, buf[:]) == nil {
			found = append(found, a)
		}
	}
	return found
}

// DevicesAt returns the supported devices that can answer at I2C address
// addr, e.g. [bme280 bmp280] for 0x76.
func DevicesAt(addr int) []string {
	var out []string
	for _, name := range Devices() {
		if contains(devices[name].addrs, addr) {
			out = append(out, name)
		}
	}
	return out
}
