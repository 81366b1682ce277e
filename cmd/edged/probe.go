package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/edgedio/edged/ingest/bus"
)

// runProbe implements `edged probe`: it lists the buses this machine has
// and scans I2C buses for device addresses, to help wire sensors up.
func runProbe(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("probe", "probe [--i2c N|all] [--json]",
		"Lists the buses this machine has (I2C, SPI, GPIO, 1-Wire) and scans I2C buses for device addresses.")
	fs := cmd.fs
	scan := fs.String("i2c", "", "scan I2C bus `N` (\"1\" for /dev/i2c-1; \"all\" for every bus) for device addresses")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := cmd.parse(args, stdout, stderr); !ok {
		return code
	}
	h := busHost()
	inv := h.Inventory()
	type found struct {
		Addr    int      `json:"addr"`
		Devices []string `json:"devices,omitempty"`
	}
	scans := map[int][]found{}
	var buses []int
	switch *scan {
	case "":
	case "all":
		buses = inv.I2C
	default:
		n, err := bus.I2CBusNumber(*scan)
		if err != nil {
			fmt.Fprintf(stderr, "edged probe: --i2c: %v\n", err)
			return 2
		}
		buses = []int{n}
	}
	code := 0
	for _, n := range buses {
		b, err := h.OpenI2C(n)
		if err != nil {
			fmt.Fprintf(stderr, "edged probe: %v\n", err)
			code = 1
			continue
		}
		scans[n] = []found{}
		for _, a := range bus.ScanI2C(b) {
			scans[n] = append(scans[n], found{a, bus.DevicesAt(a)})
		}
		b.Close()
	}
	if *asJSON {
		out := struct {
			bus.Inventory
			Scan map[int][]found `json:"scan,omitempty"`
		}{inv, scans}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return code
	}
	fmt.Fprintf(stdout, "buses: %s\n", inv)
	for _, p := range inv.Problems {
		fmt.Fprintf(stdout, "  not available: %s\n", p)
	}
	for _, n := range buses {
		fs, ok := scans[n]
		if !ok {
			continue
		}
		fmt.Fprintf(stdout, "i2c bus %d:", n)
		if len(fs) == 0 {
			fmt.Fprint(stdout, " no device answered")
		}
		fmt.Fprintln(stdout)
		for _, f := range fs {
			fmt.Fprintf(stdout, "  0x%02x", f.Addr)
			if len(f.Devices) > 0 {
				fmt.Fprintf(stdout, "  %s", strings.Join(f.Devices, " or "))
			}
			fmt.Fprintln(stdout)
		}
	}
	fmt.Fprintf(stdout, "devices edged reads: %s\n", strings.Join(bus.Devices(), ", "))
	return code
}
