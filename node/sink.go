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

	// ack is the acknowledgement of a full batch committing in the
	// background while the next batch is read and delivered (nil when none).
	// Only the sink's drain (one goroutine at a time) touches the field.
	ack *pendingAck

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

// pendingAck is a spool acknowledgement committing in the background: its
// ids are still in the spool until done is closed, so reads skip them.
type pendingAck struct {
	ids  map[string]struct{}
	done chan struct{}
	err  error // set before done is closed
}

// finishAck waits for the acknowledgement in flight, if any, and returns
// its error (its entries are then read and delivered again: at least once).
func (s *spoolSink) finishAck() error {
	a := s.ack
	if a == nil {
		return nil
	}
	<-a.done
	s.ack = nil
	return a.err
}

func (s *spoolSink) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// retryDelay is how long a sink waits after a failed delivery.
const retryDelay = time.Second
