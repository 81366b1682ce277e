//go:build !nobus

package bus

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewirereg"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"

	// The Linux drivers only: the board-specific ones of periph.io/x/host
	// (bcm283x, allwinner, ...) would add their register maps to the binary
	// for features the kernel drivers already give.
	_ "periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/netlink"
	"periph.io/x/host/v3/sysfs"
)

// DefaultHost returns the process's host: periph.io's Linux drivers (I2C
// and SPI through /dev, GPIO through the character device, 1-Wire through
// the kernel's w1 netlink), initialized once on first use.
func DefaultHost() Host { return theHost }

var theHost = &periphHost{}

type periphHost struct {
	once sync.Once
	inv  Inventory
}

func (h *periphHost) init() {
	h.once.Do(func() {
		st, err := driverreg.Init()
		if err != nil {
			h.inv.Problems = append(h.inv.Problems, err.Error())
		}
		if st != nil {
			for _, f := range append(st.Failed, st.Skipped...) {
				h.inv.Problems = append(h.inv.Problems, fmt.Sprintf("%s: %v", f.D, f.Err))
			}
		}
		for _, r := range i2creg.All() {
			if r.Number >= 0 {
				h.inv.I2C = append(h.inv.I2C, r.Number)
			}
		}
		for _, r := range spireg.All() {
			h.inv.SPI = append(h.inv.SPI, strings.TrimPrefix(r.Name, "/dev/spidev"))
		}
		for _, r := range onewirereg.All() {
			h.inv.OneWire = append(h.inv.OneWire, r.Name)
		}
		h.inv.GPIO = len(gpioreg.All())
	})
}

func (h *periphHost) Inventory() Inventory {
	h.init()
	return h.inv
}

func (h *periphHost) OpenI2C(n int) (i2c.BusCloser, error) {
	h.init()
	name := fmt.Sprintf("/dev/i2c-%d", n)
	if _, err := os.Stat(name); err != nil {
		return nil, noBus(h, name)
	}
	return sysfs.NewI2C(n)
}

func (h *periphHost) OpenSPI(bus, cs int) (spi.PortCloser, error) {
	h.init()
	name := fmt.Sprintf("/dev/spidev%d.%d", bus, cs)
	if _, err := os.Stat(name); err != nil {
		return nil, noBus(h, name)
	}
	return sysfs.NewSPI(bus, cs)
}

func (h *periphHost) OpenOneWire(name string) (onewire.BusCloser, error) {
	h.init()
	if len(h.inv.OneWire) == 0 || (name != "" && !contains(h.inv.OneWire, name)) {
		return nil, noBus(h, "1-Wire bus "+name)
	}
	return onewirereg.Open(name)
}

func (h *periphHost) Pin(name string) (gpio.PinIO, error) {
	h.init()
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	return nil, noBus(h, "gpio pin "+name)
}
