package source

import (
	"context"
	"errors"
	"strings"
)

// Source reads input from outside edged into the node's input log.
//
// Run reads and calls w.Write until ctx ends, then returns nil; it returns
// an error only on a failure, after which the node logs it and calls Run
// again after a backoff (1 s, doubling up to 1 min) with the same Writer. A
// Run that returns nil before ctx ends is finished and not called again.
// Run is never called twice at the same time for one Source. Run must not
// hold w after it returns.
type Source interface {
	Run(ctx context.Context, w Writer) error
}

// Func adapts a function to Source.
type Func func(ctx context.Context, w Writer) error

// Run calls f(ctx, w).
func (f Func) Run(ctx context.Context, w Writer) error { return f(ctx, w) }

// Writer appends a source's payloads to the node's durable input log.
// Its methods are safe for concurrent use.
type Writer interface {
	// Write appends payloads, in order, to the input log, and with them
	// pos, the source's position after them (nil keeps the previous one),
	// in one transaction. It blocks until that transaction is committed
	// (durably: the group commit's fsync) and returns nil only then; the
	// source may then acknowledge the payloads upstream. Concurrent calls
	// share one group commit; each call is all or nothing, and positions
	// are committed in the order of the commits, so a source that uses
	// positions writes from one goroutine.
	//
	// Write does not retain payloads or pos after it returns. An empty
	// payload is logged as such (the pipeline's decoder decides what it
	// means). An error wrapping ErrBackpressure means the disk budget is
	// full: nothing was written; stop reading, and write again later.
	// An error wrapping ErrUnread means no pipeline reads this source:
	// nothing was written (the payloads would be read by no one).
	Write(ctx context.Context, payloads [][]byte, pos []byte) error
	// Position returns the position committed by the last Write that
	// carried one, across restarts of the source and of the node; nil if
	// there is none. The caller must not modify it.
	Position() []byte
}

// Errors that Write wraps.
var (
	// ErrBackpressure: the node's disk budget is full; nothing was written.
	ErrBackpressure = errors.New("input back-pressured: the disk budget is full")
	// ErrUnread: no running pipeline reads the source; nothing was written.
	ErrUnread = errors.New("no pipeline reads this source")
	// ErrNotReady: the node is starting or stopping; nothing was written.
	ErrNotReady = errors.New("the node is not ready")
)

// TopicPrefix begins the input-log topics of the sources that are not MQTT
// or local buses: "$src/custom/NAME" for a source registered under NAME,
// "$src/http/PIPELINE/SOURCE" for HTTP push and "$src/file/PIPELINE/SOURCE"
// for a file tail.
const TopicPrefix = "$src/"

// Topic returns the input-log topic of a source of kind ("custom", "http"
// or "file") named by the parts.
func Topic(kind string, parts ...string) string {
	return TopicPrefix + kind + "/" + strings.Join(parts, "/")
}

// Reserved reports whether topic (or topic filter) lies under TopicPrefix.
func Reserved(topic string) bool { return strings.HasPrefix(topic, TopicPrefix) }
