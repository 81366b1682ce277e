//go:build busfake

package main

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/bus/bustest"
)

// busHost serves emulated devices instead of the machine's buses (this
// binary was built with the tag busfake, for tests):
//
//	i2c bus 1:  bme280 at 0x76 and bmp280 at 0x77 (the datasheet example:
//	            25.08 °C, 1006.5327 hPa), ads1115 at 0x48 (AIN0..3 at
//	            0.5, 1, 2 and 3 V)
//	spi 0.0:    bme280
//	onewire w1: ds18b20 28-000001318252 at 25.0625 °C
//	gpio:       GPIO17 (high), GPIO27 (a pulse every 100 ms)
func busHost() bus.Host {
	fakeOnce.Do(func() {
		a := bustest.DatasheetADC
		i2c1 := bustest.NewI2CBus("i2c-1")
		i2c1.Attach(0x76, bustest.NewBMx280(false, bustest.DatasheetCalibration, a[0], a[1], a[2]))
		i2c1.Attach(0x77, bustest.NewBMx280(true, bustest.DatasheetCalibration, a[0], a[1], a[2]))
		i2c1.Attach(0x48, bustest.NewADS1115([4]float64{0.5, 1, 2, 3}))
		h := bustest.NewHost()
		h.I2C[1] = i2c1
		h.SPI["0.0"] = &bustest.SPIPort{Name: "spi0.0",
			Dev: bustest.NewBMx280(false, bustest.DatasheetCalibration, a[0], a[1], a[2])}
		addr, _ := bus.ParseOneWireAddr("28-000001318252")
		h.OneWire["w1"] = &bustest.OneWireBus{Name: "w1", Devs: []*bustest.DS18B20{bustest.NewDS18B20(addr, 0x0191)}}
		h.Pins["GPIO17"] = &gpiotest.Pin{N: "GPIO17", L: gpio.High}
		pulses := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level, 1)}
		h.Pins["GPIO27"] = pulses
		go func() {
			for range time.Tick(100 * time.Millisecond) {
				select {
				case pulses.EdgesChan <- gpio.High:
				default: // nobody counts
				}
			}
		}()
		fakeHost = h
	})
	return fakeHost
}

var (
	fakeOnce sync.Once
	fakeHost bus.Host
)
