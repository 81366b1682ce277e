package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/edgedio/edged/configs"
	"github.com/edgedio/edged/node"
	"github.com/edgedio/edged/pipeline"
)

// runDaemon implements `edged run` and `edged -check-config`.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer, checkOnly bool) int {
	name := "run"
	cmd := newCommand("run", "run [-c edged.yaml] [--data-dir D] [--pipelines-dir P] [--input FILE] [--api ADDR]",
		"Starts the daemon. SIGTERM and SIGINT drain and stop it; SIGHUP reloads the pipelines directory.")
	if checkOnly {
		name = "-check-config"
		cmd = newCommand("-check-config", "-check-config [-c edged.yaml] [--data-dir D] [--pipelines-dir P]",
			"Validates the config and every pipeline edged would load, reports every problem at once and exits.")
	}
	fs := cmd.fs
	cfgFile := fs.String("c", "", "config `file` (edged.yaml); default: built-in defaults")
	dataDir := fs.String("data-dir", "", "data `dir` (overrides dataDir)")
	pipesDir := fs.String("pipelines-dir", "", "pipelines `dir` (overrides pipelinesDir)")
	input := fs.String("input", "", "append the lines of this JSON Lines `file` to the first pipeline's first source")
	api := fs.String("api", "", "API listen `address` (overrides api.listen)")
	outDir := fs.String("output-dir", "", "file sink `dir` (overrides outputDir)")
	virtual := fs.Bool("virtual-time", false, "run epochs back to back with processing time epoch*interval (replay, crash tests)")
	epochRecords := fs.Int("epoch-records", 0, "max input records per epoch and source (overrides epochs.maxRecords)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this `file` (benchmarks)")
	if code, ok := cmd.parse(args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edged %s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
	cfg := node.DefaultConfig()
	dataDirSet := false
	if *cfgFile != "" {
		var err error
		if cfg, err = node.LoadConfig(*cfgFile); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		dataDirSet = cfg.DataDir != node.DefaultConfig().DataDir
	}
	if *dataDir != "" {
		cfg.DataDir, dataDirSet = *dataDir, true
	}
	if !dataDirSet {
		cfg.DataDir = fallbackDataDir(cfg.DataDir)
	}
	if *pipesDir != "" {
		cfg.PipelinesDir = *pipesDir
	}
	if *api != "" {
		cfg.API.Listen = *api
	}
	if *outDir != "" {
		cfg.OutputDir = *outDir
	}
	if *epochRecords > 0 {
		cfg.Epochs.MaxRecords = *epochRecords
	}
	if *virtual {
		cfg.Epochs.Virtual = true
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return 1
	}
	if checkOnly {
		return checkPipelines(cfg, stdout, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "edged: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "edged: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	level, _ := node.ParseLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if lim := cfg.MemoryLimit(); lim > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(lim)
	}
	opts := []node.Option{node.WithLogger(log), node.WithStdout(stdout), node.WithBusHost(busHost())}
	if *input != "" {
		opts = append(opts, node.WithInputFile(*input))
	}
	n, err := node.New(cfg, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := n.Reload(); err != nil {
					log.Error("reload failed; pipelines unchanged", "err", err)
				}
			}
		}
	}()
	if err := n.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "edged: %v\n", err)
		return 1
	}
	return 0
}

// fallbackDataDir returns def when it can be created and written, else
// $XDG_STATE_HOME/edged (default ~/.local/state/edged), else ./edged-data.
func fallbackDataDir(def string) string {
	if writable(def) {
		return def
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		if home, err := os.UserHomeDir(); err == nil {
			state = filepath.Join(home, ".local", "state")
		}
	}
	if state != "" {
		if d := filepath.Join(state, "edged"); writable(d) {
			return d
		}
	}
	return "edged-data"
}

func writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// checkPipelines checks the pipelines `edged run` would load with cfg: those
// of the pipelines directory, or, when it does not exist yet, the embedded
// examples it would be seeded with. It says which, and reports every problem.
func checkPipelines(cfg node.Config, stdout, stderr io.Writer) int {
	dir := cfg.PipelinesDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "pipelines")
	}
	// Only the default directory is seeded; a configured one must exist
	// (LoadPipelines below says so).
	if _, err := os.Stat(dir); cfg.PipelinesDir == "" && errors.Is(err, fs.ErrNotExist) {
		files, _ := fs.Glob(configs.Pipelines, "pipelines/*.yaml")
		var errs []error
		for _, f := range files {
			raw, err := fs.ReadFile(configs.Pipelines, f)
			if err == nil {
				_, err = pipeline.ParseAndCompile("(embedded) "+f, raw)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "config ok; %d pipelines ok: the embedded examples (%s does not exist yet; edged run seeds it with them)\n", len(files), dir)
		return 0
	}
	if _, err := node.LoadPipelines(dir); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	fmt.Fprintf(stdout, "config ok; %d pipelines ok in %s: %s\n", len(files), dir, strings.Join(files, ", "))
	return 0
}
