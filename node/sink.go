package node

import (
	"context"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/sink"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edgedio/edged/pipeline"
)

// sinkFilePath is where a file sink of pipeline p writes: the spec's path
// (relative paths under outputDir), or outputDir/<pipeline>.<sink>.jsonl.
func sinkFilePath(outputDir, p string, sk *pipeline.Sink) string {
	if live, _, ok := strings.Cut(p, "@"); ok {
		// A backfill (NAME@ID) writes beside the live files, in a
		// directory of its own.
		return filepath.Join(outputDir, "backfill", p, filepath.Base(sinkFilePath(outputDir, live, sk)))
	}
	switch {
	case sk.Path == "":
		return filepath.Join(outputDir, p+"."+sk.Name+".jsonl")
	case filepath.IsAbs(sk.Path):
		return sk.Path
	}
	return filepath.Join(outputDir, sk.Path)
}

// spoolSink drains the spool of one pipeline's sink into its writer.
type spoolSink struct {
	name     string // its spool: SinkName(pipeline, sink)
	pipeline string
	sink     string
	wake     chan struct{}
	cancel   context.CancelFunc // ends its delivery loop

	mu      sync.Mutex
	w       sink.Writer // nil while the pipeline's new version replaces it
	kind    string
	lastErr string
	sent    uint64
	errs    uint64
}

// SinkName is how a pipeline's sink is named in storage (its spool), status
// and logs: "pipeline/sink". Two pipelines' sinks never share a spool.
func SinkName(pipeline, sink string) string { return runner.SpoolName(pipeline, sink) }

func (s *spoolSink) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// retryDelay is how long a sink waits after a failed delivery.
const retryDelay = time.Second
