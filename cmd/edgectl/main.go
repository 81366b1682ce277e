// Command edgectl manages a fleet of edged nodes through their HTTP API.
//
// It reports its version, runs the MQTT load generator (edgectl sim) and
// shows or flushes a node's uplink (edgectl uplink status|flush); the other
// fleet commands (nodes, pipelines, query, dead letters) are to come.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgedio/edged/internal/version"
)

const usage = `usage: edgectl COMMAND [flags]

commands:
  version   print the version
  sim       publish synthetic sensor readings to an MQTT broker (edgectl sim -h)
  uplink    status|flush of a node's uplink sinks (edgectl uplink -h)
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "edgectl", version.Version)
		return 0
	case "sim":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return cmdSim(ctx, args[1:], stdout, stderr)
	case "uplink":
		return cmdUplink(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "edgectl: unknown command %q (try edgectl help)\n", args[0])
	return 2
}
