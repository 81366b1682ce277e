//go:build !busfake

package main

import "github.com/edgedio/edged/ingest/bus"

// busHost is the host sensors are read on: this machine's buses, opened on
// first use. Built with the tag busfake, it is an emulated one instead
// (busfake.go), for end-to-end tests on machines without sensors.
func busHost() bus.Host { return bus.DefaultHost() }
