// Command edged is the edge stream processor daemon.
//
//	edged run [-c edged.yaml] [--data-dir D] [--pipelines-dir P] [--input FILE] [--api ADDR]
//	edged -check-config [-c edged.yaml] [--data-dir D] [--pipelines-dir P]
//	edged batch -f PIPELINE.yaml --input FILE [--format jsonl|csv] [--order arrival|event-time] [--output FILE] [--dead-letter FILE]
//	edged batch -f PIPELINE.yaml --from-log DATADIR --from T1 --to T2 [--partial] [--output FILE]
//	edged check [--offline] PIPELINE.yaml...
//	edged probe [-i2c N|all] [-json]
//	edged version
//
// run starts the daemon (see package node). With no config file it runs on
// node.DefaultConfig: the API on 127.0.0.1:8080 and the example pipelines
// embedded in the binary. Its data directory is, in order: --data-dir, the
// config's dataDir, /var/lib/edged when it is writable, else
// $XDG_STATE_HOME/edged (~/.local/state/edged), else ./edged-data. SIGTERM and
// SIGINT drain (the running epochs finish, sinks deliver what is spooled,
// storage closes); SIGHUP reloads the pipelines directory.
//
// check validates and compiles pipeline files; unless --offline, the buses
// their bus sources name must exist on this machine. probe lists this
// machine's buses and scans I2C buses for device addresses.
//
// batch runs a pipeline over a recorded file with the same plan the daemon runs
// over a stream, so a pipeline can be tested on yesterday's data before it is
// shipped to the fleet. Records go in in the file's order (arrival order, like
// `edged run --input FILE`), or sorted by event time with --order event-time.
// With --from-log it runs over the input a node's data directory retained
// (inputLog.retain) for a period, as a backfill does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgedio/edged/node"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/internal/version"
	"github.com/edgedio/edged/pipeline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  edged run [-c edged.yaml] [--data-dir D] [--pipelines-dir P] [--input FILE] [--api ADDR]
  edged -check-config [-c edged.yaml] [--data-dir D] [--pipelines-dir P]
  edged batch -f PIPELINE.yaml --input FILE [--format jsonl|csv] [--order arrival|event-time] [--output FILE] [--dead-letter FILE]
  edged batch -f PIPELINE.yaml --from-log DATADIR --from T1 --to T2 [--partial] [--output FILE]
  edged check [--offline] PIPELINE.yaml...
  edged probe [-i2c N|all] [-json]
  edged version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runDaemon(ctx, args[1:], stdout, stderr, false)
	case "-check-config", "--check-config", "check-config":
		return runDaemon(ctx, args[1:], stdout, stderr, true)
	case "batch":
		return runBatch(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "probe":
		return runProbe(args[1:], stdout, stderr)
	case "version":
		c := newCommand("version", "version", "Prints the version of edged.")
		if code, ok := c.parse(args[1:], stdout, stderr); !ok {
			return code
		}
		fmt.Fprintln(stdout, "edged", version.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "edged: unknown command %q\n%s", args[0], usage)
	return 2
}

// load parses, validates and compiles a pipeline file, reporting every
// problem at once.
func load(file string) (*pipeline.Compiled, error) {
	return pipeline.LoadAndCompile(file)
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("check", "check [--offline] PIPELINE.yaml...",
		"Parses, validates and compiles each pipeline file and reports every problem of a file at once,\neach as FILE:LINE: key.path: message.")
	offline := cmd.fs.Bool("offline", false, "do not check that the buses of bus sources exist on this machine")
	cfgFile := cmd.fs.String("c", "", "node config `file` whose directories and limits apply (default: the built-in defaults)")
	if code, ok := cmd.parse(args, stdout, stderr); !ok {
		return code
	}
	cfg := node.DefaultConfig()
	if *cfgFile != "" {
		var err error
		if cfg, err = node.LoadConfig(*cfgFile); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
	}
	files := cmd.fs.Args()
	if len(files) == 0 {
		fmt.Fprintln(stderr, "edged check: no pipeline file given (see edged check --help)")
		return 2
	}
	code := 0
	loaded := make([]*pipeline.Compiled, len(files))
	errs := make([]error, len(files))
	var all []*pipeline.Compiled
	for i, f := range files {
		loaded[i], errs[i] = load(f)
		if loaded[i] != nil {
			all = append(all, loaded[i])
		}
	}
	// History tables: every table read is written by one of the pipelines
	// checked together (or in the config's pipelines directory), with the
	// key columns the reader names. Each problem goes with its file.
	var tableErrs []error
	if err := pipeline.CheckTables(withDirPipelines(cfg, *cfgFile != "", all)); err != nil {
		tableErrs = err.(interface{ Unwrap() []error }).Unwrap()
	}
	for i, f := range files {
		c, err := loaded[i], errs[i]
		if err == nil {
			// Everything apply checks beyond compiling: topics, sink
			// topics, file-sink paths.
			if cerr := node.CheckPipeline(cfg, c); cerr != nil {
				err = fmt.Errorf("%s: %w", f, cerr)
			}
			var mine []error
			for _, te := range tableErrs {
				if strings.HasPrefix(te.Error(), f+":") {
					mine = append(mine, te)
				}
			}
			if len(mine) > 0 {
				err = errors.Join(append([]error{err}, mine...)...)
			}
		}
		if err == nil && !*offline {
			if err = c.Spec.CheckBuses(func(bc *bus.Config) error { return bus.CheckHost(busHost(), bc) }); err != nil {
				err = fmt.Errorf("%w\n(edged check --offline skips this machine's buses)", err)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", f)
	}
	return code
}

// withDirPipelines adds to cs the pipelines of the config's pipelines
// directory (when a config was given and the directory loads) that are not
// among cs by name: the node would run them beside cs.
func withDirPipelines(cfg node.Config, given bool, cs []*pipeline.Compiled) []*pipeline.Compiled {
	if !given {
		return cs
	}
	dir := cfg.PipelinesDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "pipelines")
	}
	names := map[string]bool{}
	for _, c := range cs {
		names[c.Plan.Name()] = true
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	for _, f := range files {
		if c, err := load(f); err == nil && !names[c.Plan.Name()] {
			cs = append(cs, c)
		}
	}
	return cs
}

func runBatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("batch", "batch -f PIPELINE.yaml (--input FILE | --from-log DATADIR --from T1 --to T2) [flags]",
		"Runs a pipeline over a recorded file, or over the input a node retained in its data directory,\nwith the plan the daemon runs over a stream.")
	fs := cmd.fs
	file := fs.String("f", "", "pipeline spec `file` (YAML)")
	input := fs.String("input", "", "recorded input `file` (JSON Lines, CSV, SenML or raw lines); - for stdin")
	format := fs.String("format", "", "input format: json (JSON Lines), csv, senml (a pack per line) or raw (a payload per line) (default: the source's format; csv for a .csv file)")
	order := fs.String("order", pipeline.OrderArrival, "`order` records go in: arrival (the file's order, in epochs of --epoch-records lines, as edged run --input cuts them) or event-time (sorted, one interval of event time per epoch)")
	epochRecords := fs.Int("epoch-records", 0, "lines per epoch in arrival order (default 65536, edged run's epochs.maxRecords)")
	received := fs.String("received", "", "RFC 3339 `time` the input's messages were received; SenML relative times count from it")
	output := fs.String("output", "", "output `file` (JSON Lines); default stdout")
	dead := fs.String("dead-letter", "", "write rejected input and records to this `file` (JSON Lines)")
	source := fs.String("source", "", "the pipeline source the input feeds (default: the first)")
	fromLog := fs.String("from-log", "", "run over the input log retained in this node data `directory` (stop edged first, or copy the directory)")
	fromT := fs.String("from", "", "with --from-log: RFC 3339 start `time` (rounded down to the pipeline's interval)")
	toT := fs.String("to", "", "with --from-log: RFC 3339 end `time` (rounded up to the pipeline's interval)")
	partial := fs.Bool("partial", false, "with --from-log: run even if the log no longer holds part of the period")
	fileLog := fs.Bool("file-log", false, "with --from-log: the first source reads the log of edged run --input")
	if code, ok := cmd.parse(args, stdout, stderr); !ok {
		return code
	}
	if *file == "" || (*input == "") == (*fromLog == "") {
		fmt.Fprintln(stderr, "edged batch: -f and one of --input or --from-log are required (see edged batch --help)")
		return 2
	}
	if *fromLog != "" {
		return runBatchFromLog(ctx, *file, *fromLog, *fromT, *toT, *partial, *fileLog, *output, stdout, stderr)
	}
	c, err := load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 1
	}
	in := io.Reader(os.Stdin)
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			fmt.Fprintf(stderr, "edged batch: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	if *format == "" && len(*input) > 4 && (*input)[len(*input)-4:] == ".csv" {
		*format = "csv"
	}
	var receivedMs int64
	if *received != "" {
		t, err := time.Parse(time.RFC3339Nano, *received)
		if err != nil {
			fmt.Fprintf(stderr, "edged batch: --received: want an RFC 3339 time, got %q\n", *received)
			return 2
		}
		receivedMs = t.UnixMilli()
	}
	out := stdout
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(stderr, "edged batch: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	var dlw io.Writer
	if *dead != "" {
		f, err := os.Create(*dead)
		if err != nil {
			fmt.Fprintf(stderr, "edged batch: %v\n", err)
			return 1
		}
		defer f.Close()
		dlw = f
	}
	enc := json.NewEncoder(dlw)
	st, err := pipeline.RunBatch(ctx, c, pipeline.BatchOptions{
		Input: in, Format: *format, Source: *source, Output: out, Received: receivedMs, Order: *order, EpochLines: *epochRecords,
		DeadLetter: func(dl pipeline.DeadLetter) {
			if dlw == nil {
				return
			}
			enc.Encode(struct {
				Step   string `json:"step,omitempty"`
				Line   int    `json:"line,omitempty"`
				Raw    string `json:"raw"`
				Reason string `json:"reason"`
			}{dl.Step, dl.Line, string(dl.Raw), dl.Reason.Error()})
		},
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "edged batch: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "edged batch: %d records, %d undecodable, %d rejected by steps, %d epochs, %d outputs\n",
		st.Records, st.Invalid, st.DeadLetters, st.Epochs, st.Outputs)
	return 0
}
