package bus

import (
	"errors"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/spi"
)

// ErrNoBus is wrapped by the errors of a Host when the bus or pin asked for
// does not exist on this machine.
var ErrNoBus = errors.New("no such bus")

// Host opens the buses and pins sensors are wired to. Its methods are safe
// for concurrent use; each Open returns a handle the caller closes.
type Host interface {
	// OpenI2C opens I2C bus number n (/dev/i2c-n).
	OpenI2C(n int) (i2c.BusCloser, error)
	// OpenSPI opens SPI port bus.cs (/dev/spidevBUS.CS).
	OpenSPI(bus, cs int) (spi.PortCloser, error)
	// OpenOneWire opens the named 1-Wire bus, or the first one for "".
	OpenOneWire(name string) (onewire.BusCloser, error)
	// Pin returns the named GPIO pin ("GPIO17" or "17").
	Pin(name string) (gpio.PinIO, error)
	// Inventory lists what the host found.
	Inventory() Inventory
}

// Inventory is what a Host found on this machine.
type Inventory struct {
	I2C     []int    `json:"i2c"`     // bus numbers
	SPI     []string `json:"spi"`     // "BUS.CS"
	OneWire []string `json:"onewire"` // bus names
	GPIO    int      `json:"gpioPins"`
	// Problems are the drivers that found nothing or failed to initialize
	// (no such bus, permissions, missing kernel modules), one line each.
	Problems []string `json:"problems,omitempty"`
}

// String lists the buses in one line, for error messages.
func (inv Inventory) String() string {
	var parts []string
	if len(inv.I2C) > 0 {
		s := make([]string, len(inv.I2C))
		for i, n := range inv.I2C {
			s[i] = fmt.Sprintf("/dev/i2c-%d", n)
		}
		parts = append(parts, "i2c "+strings.Join(s, ", "))
	}
	if len(inv.SPI) > 0 {
		parts = append(parts, "spi "+strings.Join(inv.SPI, ", "))
	}
	if len(inv.OneWire) > 0 {
		parts = append(parts, "onewire "+strings.Join(inv.OneWire, ", "))
	}
	if inv.GPIO > 0 {
		parts = append(parts, fmt.Sprintf("gpio %d pins", inv.GPIO))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// noBus returns the error for a missing bus, listing what was found.
func noBus(h Host, what string) error {
	return fmt.Errorf("%s: %w on this machine (buses found: %s)", what, ErrNoBus, h.Inventory())
}

// CheckHost reports, as a *KeyError, whether the bus c is wired to exists on
// h. It does not talk to the device (it may be unplugged for now).
func CheckHost(h Host, c *Config) error {
	inv := h.Inventory()
	miss := func(key, what string) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf("%s does not exist on this machine (buses found: %s)", what, inv)}
	}
	switch {
	case c.I2C != nil:
		n, err := I2CBusNumber(c.I2C.Bus)
		if err == nil && !contains(inv.I2C, n) {
			return miss("i2c.bus", fmt.Sprintf("/dev/i2c-%d", n))
		}
	case c.SPI != nil:
		b, cs, err := SPIPort(c.SPI.Port)
		if err == nil && !contains(inv.SPI, fmt.Sprintf("%d.%d", b, cs)) {
			return miss("spi.port", fmt.Sprintf("/dev/spidev%d.%d", b, cs))
		}
	case c.OneWire != nil:
		if len(inv.OneWire) == 0 || (c.OneWire.Bus != "" && !contains(inv.OneWire, c.OneWire.Bus)) {
			return miss("onewire.bus", "a 1-Wire bus "+c.OneWire.Bus)
		}
	case c.GPIO != nil:
		if _, err := h.Pin(c.GPIO.Pin); err != nil {
			return miss("gpio.pin", "pin "+c.GPIO.Pin)
		}
	}
	return nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
