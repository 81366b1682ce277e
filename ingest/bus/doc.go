// Package bus reads sensors wired to the gateway's own buses (I2C, SPI,
// 1-Wire, GPIO) through periph.io and hands each reading to a Handler as a
// JSON payload under a reserved topic ("$bus/<pipeline>/<source>"), so that
// readings enter the same durable input log as MQTT messages and keep its
// exactly-once and replay guarantees.
//
// # Devices
//
// A pipeline source declares its sensor in a Config (the `bus:` block of the
// source): bme280 and bmp280 (I2C or SPI), ds18b20 (1-Wire), ads1115 (I2C,
// one channel and a gain) and gpio (a digital input read as a level, or its
// edges counted for pulse meters). Devices lists them with the fields each
// reports; every reading also carries "time", the moment it was read (unix
// milliseconds), and the constant fields of Config.Fields.
//
// # Errors and recovery
//
// A sensor that cannot be opened or read is retried with a backoff from 1 s
// up to 1 min; it never stops the other sensors, and one that comes back
// resumes by itself. Each error is counted, logged with the device and its
// address, and visible in Poller.Status.
//
// # Pulse counts
//
// A gpio sensor in counter mode keeps its count in a small checksummed file
// (Options.StateDir). The file is written before the reading that reports the
// count is handed on, so a count that reached the input log is never reported
// lower after a restart.
//
// # Host
//
// Host opens buses and pins by name. DefaultHost initializes periph.io's
// Linux drivers once per process; on a machine without a requested bus the
// error lists the buses that were found (see Inventory). The bustest package
// emulates the devices at the register level and serves them from a Host of
// its own, for tests (edged built with the tag busfake uses it too).
package bus
