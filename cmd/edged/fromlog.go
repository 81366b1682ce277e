package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgedio/edged/node"
	"github.com/edgedio/edged/storage"
)

// runBatchFromLog is `edged batch --from-log DATADIR --from T1 --to T2`:
// the pipeline runs over the input the node retained for the period, as a
// backfill does (node.RunBackfillOffline), and its outputs are printed as
// JSON lines ("_sink" first when the pipeline has several sinks).
func runBatchFromLog(ctx context.Context, file, dataDir, fromS, toS string, partial, fileLog bool, output string, stdout, stderr io.Writer) int {
	var errs []error
	parse := func(flag, v string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: want an RFC 3339 time such as 2026-12-06T10:00:00Z, got %q", flag, v))
		}
		return t
	}
	from, to := parse("from", fromS), parse("to", toS)
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 2
	}
	c, err := load(file)
	if err != nil {
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 1
	}
	path := filepath.Join(dataDir, "edged.db")
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "edged batch: --from-log: %v (want a node's data directory, holding edged.db)\n", err)
		return 1
	}
	opt := storage.DefaultOptions()
	opt.OpenTimeout = time.Second
	db, err := storage.Open(path, opt)
	if err != nil {
		fmt.Fprintf(stderr, "edged batch: --from-log: %v (is edged running on it? stop it, or copy the directory)\n", err)
		return 1
	}
	defer db.Close()
	out := stdout
	if output != "" {
		f, err := os.Create(output)
		if err != nil {
			fmt.Fprintf(stderr, "edged batch: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriterSize(out, 64<<10)
	several := len(c.Plan.Sinks()) > 1
	n := 0
	start := time.Now()
	res, err := node.RunBackfillOffline(ctx, db, c, from, to, partial, fileLog, func(sink string, data []byte) error {
		n++
		if several && len(data) > 1 && data[0] == '{' {
			w.WriteString(`{"_sink":` + strconv.Quote(sink))
			if len(data) > 2 {
				w.WriteByte(',')
			}
			data = data[1:]
		}
		w.Write(data)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	var ge *node.GapError
	switch {
	case errors.As(err, &ge):
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 1
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "edged batch: interrupted")
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "edged batch: %v\n", err)
		return 1
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "edged batch: %s to %s: %d log entries, %d outputs in %.2fs (%.0f entries/s)\n",
		res.From.Format(time.RFC3339Nano), res.To.Format(time.RFC3339Nano), res.Entries, n, secs, float64(res.Entries)/max(secs, 1e-9))
	for _, g := range res.Missing {
		fmt.Fprintf(stderr, "edged batch: partial: input log %q no longer held %s to %s\n", g.Log, g.From.Format(time.RFC3339Nano), g.To.Format(time.RFC3339Nano))
	}
	return 0
}
