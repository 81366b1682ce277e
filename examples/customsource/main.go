// Command customsource is a program that embeds an edged node with an input
// of its own: a meter that prints one reading per line ("METER KWH", as a
// serial-port meter would), here appended to a file. The source (meterSource)
// implements source.Source; the node runs it under the name "meter", and the
// pipeline below reads it with `custom: meter`, sums each meter's readings
// per batch of 3 and writes them to a file sink.
//
// The source passes the byte offset after each line as its position, which
// the node commits with the line: stopped at any point (kill -9 included)
// and started again, it resumes after the last committed line, so no
// reading is lost or counted twice.
//
//	go run ./examples/customsource -readings /tmp/meter.txt -data /tmp/meter-data
//	echo "m1 1.5" >> /tmp/meter.txt
//	cat /tmp/meter-data/out/kwh.jsonl
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/edgedio/edged/ingest/source"
	"github.com/edgedio/edged/node"
)

// meterPipeline reads the custom source "meter".
const meterPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: meters}
spec:
  interval: 200ms
  sources:
    - name: readings
      custom: meter
      key: [meter]
      fields: [{name: meter, type: string}, {name: kwh, type: number}]
  steps:
    - name: per-meter
      input: readings
      reduceByKey: {key: meter, value: kwh, func: sum}
  sinks:
    - {name: raw, input: readings, type: file, path: readings.jsonl}
    - {name: kwh, input: per-meter, type: file, path: kwh.jsonl}
`

// meterSource reads "METER KWH" lines from a file that grows, as a serial
// port delivers them, and writes each as a JSON payload. Its position is
// the byte offset after the last line written.
type meterSource struct {
	path string
	poll time.Duration
}

// Run implements source.Source: from the committed position, every complete
// line is written with the offset after it; at the end of the file it
// waits for more. A line that is not "METER KWH" is written as it is, so
// the pipeline dead-letters it with the reason.
func (m meterSource) Run(ctx context.Context, w source.Writer) error {
	f, err := os.Open(m.path)
	if err != nil {
		return err // the node logs it and runs the source again after a backoff
	}
	defer f.Close()
	var off int64
	if p := w.Position(); p != nil {
		if off, err = strconv.ParseInt(string(p), 10, 64); err != nil {
			return fmt.Errorf("position %q: %w", p, err)
		}
	}
	r := bufio.NewReader(io.NewSectionReader(f, off, 1<<62))
	var pend []byte
	for {
		line, err := r.ReadBytes('\n')
		pend = append(pend, line...)
		if err == io.EOF {
			// A partial line stays in pend until its newline arrives.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(m.poll):
			}
			r.Reset(io.NewSectionReader(f, off+int64(len(pend)), 1<<62))
			continue
		}
		if err != nil {
			return err
		}
		off += int64(len(pend))
		payload := toJSON(bytes.TrimSpace(pend))
		pend = pend[:0]
		// Returns nil once the reading and the offset are durable: a
		// real meter would be acknowledged here.
		if err := w.Write(ctx, [][]byte{payload}, strconv.AppendInt(nil, off, 10)); err != nil {
			return err
		}
	}
}

// toJSON turns "m1 2.5" into {"meter":"m1","kwh":2.5}.
func toJSON(line []byte) []byte {
	f := bytes.Fields(line)
	if len(f) != 2 {
		return line
	}
	kwh, err := strconv.ParseFloat(string(f[1]), 64)
	if err != nil {
		return line
	}
	b, _ := json.Marshal(map[string]any{"meter": string(f[0]), "kwh": kwh})
	return b
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "customsource:", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the node until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("customsource", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readings := fs.String("readings", "meter.txt", "the `file` the meter's lines are appended to")
	data := fs.String("data", "meter-data", "the node's data `dir` (storage, pipelines, out/)")
	api := fs.String("api", "127.0.0.1:0", "API listen `address`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = *data
	cfg.PipelinesDir = filepath.Join(*data, "pipelines")
	cfg.API.Listen = *api
	cfg.MQTT.Listen = "" // no embedded MQTT broker: the meter is the only input
	if err := os.MkdirAll(cfg.PipelinesDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.PipelinesDir, "meters.yaml"), []byte(meterPipeline), 0o644); err != nil {
		return err
	}
	n, err := node.New(cfg,
		node.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))),
		node.WithSource("meter", meterSource{path: *readings, poll: 100 * time.Millisecond}))
	if err != nil {
		return err
	}
	return n.Run(ctx)
}
