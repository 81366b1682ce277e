package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is the flag set of one edged command: help on -h/--help (exit 0,
// on stdout), flags shown as --flag, errors prefixed with the command.
type command struct {
	fs       *flag.FlagSet
	name     string // e.g. "batch"
	synopsis string // the usage line after "edged "
	about    string // one paragraph, or ""
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &command{fs: fs, name: name, synopsis: synopsis, about: about}
}

// parse parses args. It returns ok=false with the exit code when the
// command should stop: 0 after printing help, 2 after a usage error.
func (c *command) parse(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			c.usage(stdout)
			return 0, false
		}
	}
	if err := c.fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "edged %s: %v (see edged %s --help)\n", c.name, err, c.name)
		return 2, false
	}
	return 0, true
}

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: edged %s\n", c.synopsis)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", c.about)
	}
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	printFlags(w, c.fs)
}

// printFlags lists the flags of fs as --name, GNU style.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n      %s", line, strings.ReplaceAll(usage, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
