//go:build nobus

package bus

import (
	"errors"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/spi"
)

// DefaultHost returns a host without buses: this edged was built with the
// tag nobus, which leaves periph.io's Linux drivers out of the binary.
func DefaultHost() Host { return noHost{} }

var errNoBusSupport = errors.New("this edged was built without local-bus support (build tag nobus)")

type noHost struct{}

func (noHost) OpenI2C(int) (i2c.BusCloser, error)            { return nil, errNoBusSupport }
func (noHost) OpenSPI(int, int) (spi.PortCloser, error)      { return nil, errNoBusSupport }
func (noHost) OpenOneWire(string) (onewire.BusCloser, error) { return nil, errNoBusSupport }
func (noHost) Pin(string) (gpio.PinIO, error)                { return nil, errNoBusSupport }
func (noHost) Inventory() Inventory {
	return Inventory{Problems: []string{errNoBusSupport.Error()}}
}

// meter is one opened sensor (see meter.go); without bus support none opens.
type meter interface {
	read(vals []float64) error
	close() error
}

func openMeter(Host, *Config, string) (meter, error) { return nil, errNoBusSupport }
