// Command edgectl manages a fleet of edged nodes through their HTTP API.
//
// This first version only reports its version; the node API and the fleet
// commands (nodes, pipelines, query, uplink, dead letters, sim) arrive with the
// daemon.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/edgedio/edged/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, "usage: edgectl version")
		return 0
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "edgectl", version.Version)
		return 0
	}
	fmt.Fprintf(stderr, "edgectl: unknown command %q (try edgectl help)\n", args[0])
	return 2
}
