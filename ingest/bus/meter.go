//go:build !nobus

package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/devices/v3/ads1x15"
	"periph.io/x/devices/v3/bmxx80"
	"periph.io/x/devices/v3/ds18b20"
)

// meter is one opened sensor. read fills vals (one per Config.Measured
// field; a bool is 0 or 1). A meter is used by one goroutine.
type meter interface {
	read(vals []float64) error
	close() error
}

// openMeter opens the sensor of c on h. countFile is the file of a pulse
// counter's count.
func openMeter(h Host, c *Config, countFile string) (meter, error) {
	switch c.Device {
	case "bme280", "bmp280":
		return openBMxx80(h, c)
	case "ds18b20":
		return openDS18B20(h, c)
	case "ads1115":
		return openADS1115(h, c)
	case "gpio":
		if c.GPIO.Mode == "counter" {
			return openCounter(h, c, countFile)
		}
		return openLevel(h, c)
	}
	return nil, fmt.Errorf("unknown device %q", c.Device)
}

func openI2C(h Host, c *Config) (i2c.BusCloser, error) {
	n, err := I2CBusNumber(c.I2C.Bus)
	if err != nil {
		return nil, err
	}
	return h.OpenI2C(n)
}

// bmxx80Meter reads a BME280 or BMP280.
type bmxx80Meter struct {
	dev    *bmxx80.Dev
	closer interface{ Close() error }
	bme    bool
}

func openBMxx80(h Host, c *Config) (meter, error) {
	opts := bmxx80.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O4x, Humidity: bmxx80.O1x}
	var (
		dev    *bmxx80.Dev
		closer interface{ Close() error }
		err    error
	)
	if c.SPI != nil {
		bus, cs, perr := SPIPort(c.SPI.Port)
		if perr != nil {
			return nil, perr
		}
		var p spi.PortCloser
		if p, err = h.OpenSPI(bus, cs); err != nil {
			return nil, err
		}
		closer = p
		dev, err = bmxx80.NewSPI(p, &opts)
	} else {
		var b i2c.BusCloser
		if b, err = openI2C(h, c); err != nil {
			return nil, err
		}
		closer = b
		dev, err = bmxx80.NewI2C(b, uint16(c.addr()), &opts)
	}
	if err != nil {
		closer.Close()
		return nil, err
	}
	m := &bmxx80Meter{dev: dev, closer: closer, bme: strings.HasPrefix(dev.String(), "BME280")}
	if !strings.HasPrefix(dev.String(), strings.ToUpper(c.Device)) {
		m.close()
		found, _, _ := strings.Cut(dev.String(), "{")
		return nil, fmt.Errorf("found a %s, not a %s: set device: %s", found, c.Device, strings.ToLower(found))
	}
	return m, nil
}

func (m *bmxx80Meter) read(vals []float64) error {
	var e physic.Env
	if err := m.dev.Sense(&e); err != nil {
		return err
	}
	vals[0] = e.Temperature.Celsius()
	vals[1] = float64(e.Pressure) / float64(100*physic.Pascal) // hPa
	if m.bme {
		vals[2] = float64(e.Humidity) / float64(physic.PercentRH)
	}
	return nil
}

func (m *bmxx80Meter) close() error {
	return errors.Join(m.dev.Halt(), m.closer.Close())
}

// ds18b20Meter reads a DS18B20.
type ds18b20Meter struct {
	dev *ds18b20.Dev
	bus onewire.BusCloser
}

func openDS18B20(h Host, c *Config) (meter, error) {
	b, err := h.OpenOneWire(c.OneWire.Bus)
	if err != nil {
		return nil, err
	}
	var addr uint64
	if c.OneWire.Addr != "" {
		addr, _ = ParseOneWireAddr(c.OneWire.Addr)
	} else {
		found, err := b.Search(false)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("search the 1-Wire bus: %w", err)
		}
		var ids []string
		for _, a := range found {
			if byte(a) == byte(ds18b20.DS18B20) {
				ids = append(ids, OneWireID(uint64(a)))
				addr = uint64(a)
			}
		}
		if len(ids) != 1 {
			b.Close()
			return nil, fmt.Errorf("found %d DS18B20 on the bus (%s); set onewire.addr to one of them", len(ids), strings.Join(ids, ", "))
		}
	}
	res := c.OneWire.Resolution
	if res == 0 {
		res = 12
	}
	dev, err := ds18b20.New(b, onewire.Address(addr), res)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &ds18b20Meter{dev: dev, bus: b}, nil
}

func (m *ds18b20Meter) read(vals []float64) error {
	var e physic.Env
	if err := m.dev.Sense(&e); err != nil {
		return err
	}
	vals[0] = e.Temperature.Celsius()
	return nil
}

func (m *ds18b20Meter) close() error { return m.bus.Close() }

// ads1115Meter reads one channel of an ADS1115.
type ads1115Meter struct {
	pin ads1x15.PinADC
	bus i2c.BusCloser
}

func openADS1115(h Host, c *Config) (meter, error) {
	b, err := openI2C(h, c)
	if err != nil {
		return nil, err
	}
	dev, err := ads1x15.NewADS1115(b, &ads1x15.Opts{I2cAddress: uint16(c.addr())})
	if err != nil {
		b.Close()
		return nil, err
	}
	fs, _ := GainRange(c.Gain)
	// 128 samples/s (the chip's default): an 8 ms conversion.
	pin, err := dev.PinForChannel(ads1x15.Channel0+ads1x15.Channel(*c.Channel),
		physic.ElectricPotential(fs*float64(physic.Volt)), 128*physic.Hertz, ads1x15.BestQuality)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &ads1115Meter{pin: pin, bus: b}, nil
}

func (m *ads1115Meter) read(vals []float64) error {
	s, err := m.pin.Read()
	if err != nil {
		return err
	}
	vals[0] = float64(s.V) / float64(physic.Volt)
	return nil
}

func (m *ads1115Meter) close() error { return m.bus.Close() }

func pull(c *Config) gpio.Pull {
	switch c.GPIO.Pull {
	case "up":
		return gpio.PullUp
	case "down":
		return gpio.PullDown
	}
	return gpio.Float
}

// levelMeter reads a digital input's level.
type levelMeter struct{ pin gpio.PinIO }

func openLevel(h Host, c *Config) (meter, error) {
	p, err := h.Pin(c.GPIO.Pin)
	if err != nil {
		return nil, err
	}
	if err := p.In(pull(c), gpio.NoEdge); err != nil {
		return nil, err
	}
	return &levelMeter{pin: p}, nil
}

func (m *levelMeter) read(vals []float64) error {
	vals[0] = 0
	if m.pin.Read() == gpio.High {
		vals[0] = 1
	}
	return nil
}

func (m *levelMeter) close() error { return nil }

// counterMeter counts a pin's edges. Its count is the count file's value
// plus the edges seen since it was opened; read writes the count to the file
// before returning it, so a reported count is never lost.
type counterMeter struct {
	pin   gpio.PinIO
	file  string
	base  uint64        // count in the file when opened
	edges atomic.Uint64 // edges since opened
	saved uint64        // count last written
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// edgeWait bounds one wait for an edge, so that close stops the counting
// goroutine in time.
const edgeWait = 200 * time.Millisecond

func openCounter(h Host, c *Config, file string) (meter, error) {
	if file == "" {
		return nil, errors.New("BUG: a pulse counter without a count file")
	}
	base, err := loadCount(file)
	if err != nil {
		return nil, err
	}
	p, err := h.Pin(c.GPIO.Pin)
	if err != nil {
		return nil, err
	}
	edge := gpio.RisingEdge
	switch c.GPIO.Edge {
	case "falling":
		edge = gpio.FallingEdge
	case "both":
		edge = gpio.BothEdges
	}
	if err := p.In(pull(c), edge); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &counterMeter{pin: p, file: file, base: base, saved: base, stop: cancel}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for ctx.Err() == nil {
			if p.WaitForEdge(edgeWait) {
				m.edges.Add(1)
			}
		}
	}()
	return m, nil
}

func (m *counterMeter) read(vals []float64) error {
	n := m.base + m.edges.Load()
	if n != m.saved {
		if err := saveCount(m.file, n); err != nil {
			return err
		}
		m.saved = n
	}
	vals[0] = float64(n)
	return nil
}

func (m *counterMeter) close() error {
	m.stop()
	m.wg.Wait()
	var err error
	if n := m.base + m.edges.Load(); n != m.saved {
		err = saveCount(m.file, n)
		m.saved = n
	}
	return errors.Join(err, m.pin.Halt())
}
