// Package bustest emulates the devices of package bus at the register level
// (BME280/BMP280 over I2C and SPI, DS18B20 over 1-Wire, ADS1115 over I2C)
// and provides a Host serving them, for tests and for edged binaries built
// with the tag busfake. Unlike periph.io's playback buses, an emulated
// device answers any sequence of reads, so a sensor can be polled for as
// long as a test runs, unplugged (Unplug) and plugged back.
package bustest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/edgedio/edged/ingest/bus"
)

// ErrNACK is what an I2C device that is absent or unplugged answers.
var ErrNACK = errors.New("bustest: no acknowledge from the device (NACK)")

// Plug is embedded by every emulated device: Unplug makes it stop
// answering, as a sensor whose wire came loose.
type Plug struct{ gone atomic.Bool }

// Unplug makes the device stop answering.
func (p *Plug) Unplug() { p.gone.Store(true) }

// Replug makes the device answer again.
func (p *Plug) Replug() { p.gone.Store(false) }

// Present reports whether the device answers.
func (p *Plug) Present() bool { return !p.gone.Load() }

// RegDevice is a device with 8-bit registers: a write of [reg, v, reg, v,
// ...] sets registers, a write of [reg] followed by a read reads from reg on.
type RegDevice interface {
	Present() bool
	WriteRegs(w []byte)
	ReadRegs(reg byte, r []byte)
}

// I2CBus is an emulated I2C bus with devices at addresses. It implements
// i2c.BusCloser and counts its transactions.
type I2CBus struct {
	Name string
	mu   sync.Mutex
	devs map[uint16]RegDevice
	Txs  atomic.Int64
}

// NewI2CBus returns a bus with no devices.
func NewI2CBus(name string) *I2CBus { return &I2CBus{Name: name, devs: map[uint16]RegDevice{}} }

// Attach places d at addr.
func (b *I2CBus) Attach(addr uint16, d RegDevice) {
	b.mu.Lock()
	b.devs[addr] = d
	b.mu.Unlock()
}

// Addrs returns the addresses of the devices that answer.
func (b *I2CBus) Addrs() []uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []uint16
	for a, d := range b.devs {
		if d.Present() {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (b *I2CBus) String() string { return b.Name }

// Tx implements i2c.Bus.
func (b *I2CBus) Tx(addr uint16, w, r []byte) error {
	b.Txs.Add(1)
	b.mu.Lock()
	d := b.devs[addr]
	b.mu.Unlock()
	if d == nil || !d.Present() {
		return fmt.Errorf("%s addr %#x: %w", b.Name, addr, ErrNACK)
	}
	if len(r) > 0 && len(w) <= 1 {
		reg := byte(0)
		if len(w) == 1 {
			reg = w[0]
		}
		d.ReadRegs(reg, r)
		return nil
	}
	if len(r) > 0 {
		return errors.New("bustest: a read must follow a one-byte register write")
	}
	d.WriteRegs(w)
	return nil
}

// SetSpeed implements i2c.Bus.
func (b *I2CBus) SetSpeed(physic.Frequency) error { return nil }

// Close implements io.Closer; the bus stays usable (it is the hardware).
func (b *I2CBus) Close() error { return nil }

// BMx280 emulates a Bosch BME280 (or, with BMP280 true, a BMP280): its chip
// id, calibration words and raw ADC registers. Measurements complete
// instantly (the status register never shows "measuring").
type BMx280 struct {
	Plug
	mu   sync.Mutex
	regs [256]byte
}

// Calibration is a BMx280's factory calibration (the dig_ words).
type Calibration struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1                             uint8
	H2                             int16
	H3                             uint8
	H4, H5                         int16
	H6                             int8
}

// DatasheetCalibration is the worked example of the BMP280 datasheet
// (section 3.12, "Calculating pressure and temperature") with humidity words
// of a real BME280. With DatasheetADC it reads 25.08 °C and 100653.27 Pa.
var DatasheetCalibration = Calibration{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
	H1: 75, H2: 362, H3: 0, H4: 313, H5: 50, H6: 30,
}

// DatasheetADC is the datasheet example's raw temperature and pressure and
// a raw humidity.
var DatasheetADC = [3]int32{519888, 415148, 30000}

// NewBMx280 returns an emulated BME280 (bmp280 false) or BMP280.
func NewBMx280(bmp280 bool, cal Calibration, adcT, adcP, adcH int32) *BMx280 {
	d := &BMx280{}
	d.regs[0xD0] = 0x60
	if bmp280 {
		d.regs[0xD0] = 0x58
	}
	c := d.regs[0x88:]
	le16 := func(off int, v uint16) { binary.LittleEndian.PutUint16(c[off:], v) }
	le16(0, cal.T1)
	le16(2, uint16(cal.T2))
	le16(4, uint16(cal.T3))
	for i, p := range []uint16{cal.P1, uint16(cal.P2), uint16(cal.P3), uint16(cal.P4), uint16(cal.P5),
		uint16(cal.P6), uint16(cal.P7), uint16(cal.P8), uint16(cal.P9)} {
		le16(6+2*i, p)
	}
	d.regs[0xA1] = cal.H1
	binary.LittleEndian.PutUint16(d.regs[0xE1:], uint16(cal.H2))
	d.regs[0xE3] = cal.H3
	d.regs[0xE4] = byte(cal.H4 >> 4)
	d.regs[0xE5] = byte(cal.H4&0xF) | byte(cal.H5&0xF)<<4
	d.regs[0xE6] = byte(cal.H5 >> 4)
	d.regs[0xE7] = byte(cal.H6)
	d.SetADC(adcT, adcP, adcH)
	return d
}

// SetADC sets the raw temperature, pressure (20 bits) and humidity (16 bits)
// the next measurement reads.
func (d *BMx280) SetADC(t, p, h int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	put20 := func(reg int, v int32) {
		d.regs[reg], d.regs[reg+1], d.regs[reg+2] = byte(v>>12), byte(v>>4), byte(v<<4)
	}
	put20(0xF7, p)
	put20(0xFA, t)
	d.regs[0xFD], d.regs[0xFE] = byte(h>>8), byte(h)
}

// WriteRegs implements RegDevice.
func (d *BMx280) WriteRegs(w []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 0; i+1 < len(w); i += 2 {
		if w[i] >= 0xF2 { // control registers only; the rest is read-only
			d.regs[w[i]] = w[i+1]
		}
	}
}

// ReadRegs implements RegDevice.
func (d *BMx280) ReadRegs(reg byte, r []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range r {
		r[i] = d.regs[(int(reg)+i)&0xFF]
	}
}

// Reg returns one register (tests check what the driver wrote).
func (d *BMx280) Reg(reg byte) byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.regs[reg]
}

// SPIPort wires a RegDevice to an SPI port with the Bosch SPI protocol:
// bit 7 of the first byte set reads from that register, clear writes
// register|0x80. It implements spi.PortCloser.
type SPIPort struct {
	Name string
	Dev  RegDevice
}

func (p *SPIPort) String() string                    { return p.Name }
func (p *SPIPort) Close() error                      { return nil }
func (p *SPIPort) LimitSpeed(physic.Frequency) error { return nil }

// Connect implements spi.Port.
func (p *SPIPort) Connect(physic.Frequency, spi.Mode, int) (spi.Conn, error) {
	return &spiConn{p}, nil
}

type spiConn struct{ p *SPIPort }

func (c *spiConn) String() string      { return c.p.Name }
func (c *spiConn) Duplex() conn.Duplex { return conn.Full }
func (c *spiConn) TxPackets([]spi.Packet) error {
	return errors.New("bustest: TxPackets is not emulated")
}

func (c *spiConn) Tx(w, r []byte) error {
	if !c.p.Dev.Present() {
		return errors.New("bustest: SPI device does not answer (MISO stuck)")
	}
	if len(w) == 0 {
		return nil
	}
	if w[0]&0x80 != 0 && len(r) == len(w) {
		r[0] = 0
		c.p.Dev.ReadRegs(w[0], r[1:])
		return nil
	}
	ww := append([]byte(nil), w...)
	for i := 0; i < len(ww); i += 2 {
		ww[i] |= 0x80
	}
	c.p.Dev.WriteRegs(ww)
	return nil
}

// ADS1115 emulates a TI ADS1115: a write of [0x01, hi, lo] sets the config
// register, a read of register 0x00 returns the conversion of the channel
// the config selects, scaled by its gain, from the voltages in Volts.
type ADS1115 struct {
	Plug
	mu     sync.Mutex
	config uint16
	volts  [4]float64
}

// NewADS1115 returns an ADS1115 whose inputs AIN0..AIN3 are at volts.
func NewADS1115(volts [4]float64) *ADS1115 { return &ADS1115{config: 0x8583, volts: volts} }

// SetVolts changes the input voltages.
func (d *ADS1115) SetVolts(v [4]float64) { d.mu.Lock(); d.volts = v; d.mu.Unlock() }

// Config returns the config register last written.
func (d *ADS1115) Config() uint16 { d.mu.Lock(); defer d.mu.Unlock(); return d.config }

// WriteRegs implements RegDevice.
func (d *ADS1115) WriteRegs(w []byte) {
	if len(w) == 3 && w[0] == 0x01 {
		d.mu.Lock()
		d.config = uint16(w[1])<<8 | uint16(w[2])
		d.mu.Unlock()
	}
}

// fullScale is the datasheet's table 3 (PGA bits 11:9 -> FSR in volts).
var fullScale = [8]float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256}

// ReadRegs implements RegDevice: register 0x00 is the conversion, any
// other the config.
func (d *ADS1115) ReadRegs(reg byte, r []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b [2]byte
	if reg != 0x00 {
		binary.BigEndian.PutUint16(b[:], d.config)
	} else {
		mux := (d.config >> 12) & 7
		var v float64
		if mux >= 4 {
			v = d.volts[mux-4]
		}
		code := int64(v / fullScale[(d.config>>9)&7] * 32768)
		code = max(min(code, 32767), -32768)
		binary.BigEndian.PutUint16(b[:], uint16(int16(code)))
	}
	copy(r, b[:])
}

// DS18B20 is an emulated DS18B20 at a 64-bit ROM address.
type DS18B20 struct {
	Plug
	Addr   onewire.Address
	mu     sync.Mutex
	raw    int16 // temperature register, 1/16 °C
	config byte
	// BadCRC makes the scratchpad's CRC wrong (noise on the wire).
	BadCRC atomic.Bool
}

// NewDS18B20 returns a DS18B20 at addr (as bus.ParseOneWireAddr gives it)
// reading raw (the temperature register: 1/16 °C two's complement; the
// datasheet's table 1 lists 0x0191 for +25.0625 °C).
func NewDS18B20(addr uint64, raw int16) *DS18B20 {
	return &DS18B20{Addr: onewire.Address(addr), raw: raw, config: 0x7F}
}

// SetRaw changes the temperature register.
func (d *DS18B20) SetRaw(raw int16) { d.mu.Lock(); d.raw = raw; d.mu.Unlock() }

func (d *DS18B20) scratchpad() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := []byte{byte(d.raw), byte(uint16(d.raw) >> 8), 0x4B, 0x46, d.config, 0xFF, 0x0C, 0x10, 0}
	s[8] = onewire.CalcCRC(s[:8])
	if d.BadCRC.Load() {
		s[8] ^= 0xFF
	}
	return s
}

// OneWireBus is an emulated 1-Wire bus. It implements onewire.BusCloser.
type OneWireBus struct {
	Name string
	Devs []*DS18B20
}

func (b *OneWireBus) String() string { return b.Name }
func (b *OneWireBus) Close() error   { return nil }

// Search implements onewire.Bus.
func (b *OneWireBus) Search(bool) ([]onewire.Address, error) {
	var out []onewire.Address
	for _, d := range b.Devs {
		if d.Present() {
			out = append(out, d.Addr)
		}
	}
	return out, nil
}

// Tx implements onewire.Bus: Match ROM (0x55) then Read Scratchpad (0xBE),
// Convert T (0x44), Write Scratchpad (0x4E) or Copy Scratchpad (0x48);
// Skip ROM (0xCC) then Convert T.
func (b *OneWireBus) Tx(w, r []byte, _ onewire.Pullup) error {
	if len(w) >= 2 && w[0] == 0xCC {
		return nil
	}
	if len(w) < 10 || w[0] != 0x55 {
		return fmt.Errorf("bustest: unsupported 1-Wire transaction % x", w)
	}
	addr := onewire.Address(binary.LittleEndian.Uint64(w[1:9]))
	var d *DS18B20
	for _, x := range b.Devs {
		if x.Addr == addr && x.Present() {
			d = x
		}
	}
	if d == nil {
		// Nobody drives the bus: the master reads all ones.
		for i := range r {
			r[i] = 0xFF
		}
		return nil
	}
	switch w[9] {
	case 0xBE:
		copy(r, d.scratchpad())
	case 0x4E:
		if len(w) >= 13 {
			d.mu.Lock()
			d.config = w[12]
			d.mu.Unlock()
		}
	case 0x44, 0x48:
	default:
		return fmt.Errorf("bustest: unsupported DS18B20 command %#x", w[9])
	}
	return nil
}

// Host serves emulated buses and pins by name. The zero value has none; add
// them to the maps before use.
type Host struct {
	I2C     map[int]i2c.BusCloser
	SPI     map[string]spi.PortCloser // "BUS.CS"
	OneWire map[string]onewire.BusCloser
	Pins    map[string]gpio.PinIO
	// Opens counts the successful opens (a sensor reopened after a failure
	// opens again).
	Opens atomic.Int64
}

// NewHost returns an empty Host.
func NewHost() *Host {
	return &Host{I2C: map[int]i2c.BusCloser{}, SPI: map[string]spi.PortCloser{}, OneWire: map[string]onewire.BusCloser{},
		Pins: map[string]gpio.PinIO{}}
}

func (h *Host) noBus(what string) error {
	return fmt.Errorf("%s: %w on this machine (buses found: %s)", what, bus.ErrNoBus, h.Inventory())
}

// OpenI2C implements bus.Host.
func (h *Host) OpenI2C(n int) (i2c.BusCloser, error) {
	b := h.I2C[n]
	if b == nil {
		return nil, h.noBus(fmt.Sprintf("/dev/i2c-%d", n))
	}
	h.Opens.Add(1)
	return b, nil
}

// OpenSPI implements bus.Host.
func (h *Host) OpenSPI(b, cs int) (spi.PortCloser, error) {
	p := h.SPI[fmt.Sprintf("%d.%d", b, cs)]
	if p == nil {
		return nil, h.noBus(fmt.Sprintf("/dev/spidev%d.%d", b, cs))
	}
	h.Opens.Add(1)
	return p, nil
}

// OpenOneWire implements bus.Host.
func (h *Host) OpenOneWire(name string) (onewire.BusCloser, error) {
	if name == "" {
		names := h.Inventory().OneWire
		if len(names) > 0 {
			name = names[0]
		}
	}
	b := h.OneWire[name]
	if b == nil {
		return nil, h.noBus("1-Wire bus " + name)
	}
	h.Opens.Add(1)
	return b, nil
}

// Pin implements bus.Host.
func (h *Host) Pin(name string) (gpio.PinIO, error) {
	p := h.Pins[name]
	if p == nil {
		return nil, h.noBus("gpio pin " + name)
	}
	h.Opens.Add(1)
	return p, nil
}

// Inventory implements bus.Host.
func (h *Host) Inventory() bus.Inventory {
	var inv bus.Inventory
	for n := range h.I2C {
		inv.I2C = append(inv.I2C, n)
	}
	sort.Ints(inv.I2C)
	for n := range h.SPI {
		inv.SPI = append(inv.SPI, n)
	}
	sort.Strings(inv.SPI)
	for n := range h.OneWire {
		inv.OneWire = append(inv.OneWire, n)
	}
	sort.Strings(inv.OneWire)
	inv.GPIO = len(h.Pins)
	return inv
}

var _ bus.Host = (*Host)(nil)
