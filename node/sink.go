package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/runner"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgedio/edged/pipeline"
)

// Publisher publishes one MQTT message; the mqtt sink type delivers through
// it. The ingest/mqtt package implements it with its client or embedded
// broker. Publish must return nil only once the message is handed to the
// broker as its QoS requires (at QoS 1: acknowledged by the broker); it may
// block and must honour ctx. It is called from one goroutine per sink and
// must not retain payload after returning.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error

// Publish implements Publisher.
func (f PublisherFunc) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return f(ctx, topic, payload, qos, retain)
}

// delivery is one spooled output handed to a sink.
type delivery struct {
	id   string
	data []byte // the output record as a JSON object
}

// sinkWriter delivers outputs of one (pipeline, sink). deliver returns nil
// once every output in ds is delivered durably (as far as the sink type
// allows); on error none of them is acknowledged and all are retried, so a
// sink must tolerate re-delivery of outputs it already wrote (file sinks skip
// them by id, see fileSink).
type sinkWriter interface {
	deliver(ctx context.Context, ds []delivery) error
	close() error
}

// withID returns data (a JSON object) with "_id" as its first member.
func withID(dst []byte, id string, data []byte) []byte {
	dst = append(dst, `{"_id":`...)
	dst = strconv.AppendQuote(dst, id)
	body := bytes.TrimSpace(data)
	if len(body) > 2 {
		dst = append(dst, ',')
		dst = append(dst, body[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return dst
}

// writerSink writes JSON lines to an io.Writer (stdout).
type writerSink struct {
	mu  *sync.Mutex // shared by every sink writing to the same writer
	w   io.Writer
	buf []byte
}

func (s *writerSink) deliver(_ context.Context, ds []delivery) error {
	s.buf = s.buf[:0]
	for _, d := range ds {
		s.buf = withID(s.buf, d.id, d.data)
		s.buf = append(s.buf, '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(s.buf)
	return err
}

func (s *writerSink) close() error { return nil }

// mqttSink publishes each output with its id through a Publisher, to a
// topic rendered from the sink's template (record fields such as {sensor}).
type mqttSink struct {
	pub    Publisher
	topic  sinkTopic
	qos    byte
	retain bool
	buf    []byte
	tbuf   []byte
}

func (s *mqttSink) deliver(ctx context.Context, ds []delivery) error {
	if s.pub == nil {
		return fmt.Errorf("no MQTT publisher is configured (mqtt.brokers and mqtt.listen are empty); outputs stay spooled")
	}
	for _, d := range ds {
		var err error
		if s.tbuf, err = s.topic.render(s.tbuf[:0], d.data); err != nil {
			return fmt.Errorf("output %s: %w", d.id, err)
		}
		s.buf = withID(s.buf[:0], d.id, d.data)
		if err := s.pub.Publish(ctx, string(s.tbuf), s.buf, s.qos, s.retain); err != nil {
			return err
		}
	}
	return nil
}

func (s *mqttSink) close() error { return nil }

// fileSink appends JSON lines with "_id" to one file, rotated by size. The
// file is fsynced before deliver returns, so an acknowledged output is on
// disk. A crash between the fsync and the spool acknowledgement re-delivers
// outputs already written: fileSink remembers, per pipeline and partition,
// the last output id it wrote (read back from the file's tail on open) and
// skips outputs at or before it. The spool delivers each partition's outputs
// in order, so this makes re-delivery idempotent, also when several
// pipelines or partitions write one file. A write that fails (a full disk)
// is cut off again, so the file never keeps a torn line.
type fileSink struct {
	path     string
	maxBytes int64
	f        *os.File
	size     int64
	last     map[string]engine.OutputID // by pipeline/partition
	buf      []byte
}

// tailScan is how much of a file's end open reads to learn the last ids:
// more than one delivery batch of lines.
const tailScan = 4 << 20

func openFileSink(path string, maxBytes int64) (*fileSink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink %q: %w", path, err)
	}
	s := &fileSink{path: path, maxBytes: maxBytes, last: map[string]engine.OutputID{}}
	if err := trimTornLine(path); err != nil {
		return nil, fmt.Errorf("file sink %q: %w", path, err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	// The current file may have just been rotated: read the newest rotated
	// file first, then the current one.
	if olds := rotated(path); len(olds) > 0 {
		scanIDs(olds[len(olds)-1], s.last)
	}
	scanIDs(path, s.last)
	return s, nil
}

func partKey(id engine.OutputID) string { return id.Pipeline + "/" + strconv.Itoa(id.Partition) }

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// trimTornLine cuts a last line without its newline (a crash mid-write)
// off the file; its output is still in the spool and is written again.
func trimTornLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	const chunk = 64 << 10
	end := st.Size()
	buf := make([]byte, chunk)
	for end > 0 {
		off := max(end-chunk, 0)
		k, err := f.ReadAt(buf[:end-off], off)
		if err != nil && err != io.EOF {
			return err
		}
		if i := bytes.LastIndexByte(buf[:k], '\n'); i >= 0 {
			cut := off + int64(i) + 1
			if cut == st.Size() {
				return nil
			}
			return f.Truncate(cut)
		}
		end = off
	}
	return f.Truncate(0)
}

// rotated returns the rotated files of path, oldest first.
func rotated(path string) []string {
	m, _ := filepath.Glob(path + ".*")
	sort.Slice(m, func(i, j int) bool { return rotSeq(m[i]) < rotSeq(m[j]) })
	return m
}

func rotSeq(p string) int {
	n, _ := strconv.Atoi(p[strings.LastIndexByte(p, '.')+1:])
	return n
}

// scanIDs records in last the highest output id per pipeline/partition
// among the complete lines of the last tailScan bytes of a file.
func scanIDs(path string, last map[string]engine.OutputID) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return
	}
	off := max(st.Size()-tailScan, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return
	}
	if off > 0 { // the first line is partial
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	for len(buf) > 0 {
		end := bytes.IndexByte(buf, '\n')
		if end < 0 {
			return // a torn last line
		}
		if id, ok := lineID(buf[:end]); ok {
			k := partKey(id)
			if old, seen := last[k]; !seen || old.Before(id) {
				last[k] = id
			}
		}
		buf = buf[end+1:]
	}
}

// lineID parses the "_id" a line starts with.
func lineID(line []byte) (engine.OutputID, bool) {
	const pfx = `{"_id":`
	if !bytes.HasPrefix(line, []byte(pfx)) {
		return engine.OutputID{}, false
	}
	q := line[len(pfx):]
	for i := 1; i < len(q); i++ {
		if q[i] == '\\' {
			i++
			continue
		}
		if q[i] == '"' {
			s, err := strconv.Unquote(string(q[:i+1]))
			if err != nil {
				return engine.OutputID{}, false
			}
			id, err := engine.ParseOutputID(s)
			return id, err == nil
		}
	}
	return engine.OutputID{}, false
}

func (s *fileSink) deliver(_ context.Context, ds []delivery) error {
	s.buf = s.buf[:0]
	var wrote map[string]engine.OutputID
	for _, d := range ds {
		id, err := engine.ParseOutputID(d.id)
		if err == nil {
			k := partKey(id)
			last, seen := s.last[k]
			if w, ok := wrote[k]; ok {
				last, seen = w, true
			}
			if seen && !last.Before(id) {
				continue // written before a crash; acknowledged now
			}
			if wrote == nil {
				wrote = map[string]engine.OutputID{}
			}
			wrote[k] = id
		}
		s.buf = withID(s.buf, d.id, d.data)
		s.buf = append(s.buf, '\n')
	}
	if len(s.buf) == 0 {
		return nil
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(len(s.buf)) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if err := s.write(); err != nil {
		// Cut off what part of the write reached the file (a full disk):
		// the outputs stay in the spool and are written whole later.
		if terr := os.Truncate(s.path, s.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("undo the partial write: %w", terr))
		}
		return fmt.Errorf("file sink %q: %w", s.path, err)
	}
	s.size += int64(len(s.buf))
	for k, id := range wrote {
		s.last[k] = id
	}
	return nil
}

func (s *fileSink) write() error {
	if _, err := s.f.Write(s.buf); err != nil {
		return err
	}
	return s.f.Sync()
}

// rotate renames the current file to path.N (N one more than the newest) and
// starts a new one.
func (s *fileSink) rotate() error {
	n := 1
	if olds := rotated(s.path); len(olds) > 0 {
		n = rotSeq(olds[len(olds)-1]) + 1
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(s.path, s.path+"."+strconv.Itoa(n)); err != nil {
		return fmt.Errorf("file sink: rotate: %w", err)
	}
	return s.open()
}

func (s *fileSink) close() error { return s.f.Close() }

// sinkFilePath is where a file sink of pipeline p writes: the spec's path
// (relative paths under outputDir), or outputDir/<pipeline>.<sink>.jsonl.
func sinkFilePath(outputDir, p string, sk *pipeline.Sink) string {
	switch {
	case sk.Path == "":
		return filepath.Join(outputDir, p+"."+sk.Name+".jsonl")
	case filepath.IsAbs(sk.Path):
		return sk.Path
	}
	return filepath.Join(outputDir, sk.Path)
}

// confine checks that a file sink's path is inside one of the directories
// edged may write to, and says which they are when it is not.
func confine(path string, dirs ...string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		ad, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(ad, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil
		}
	}
	return fmt.Errorf("path %q is outside the directories edged may use for files (%s); add its directory to sinks.allowedDirs in the node config", path, strings.Join(slices.DeleteFunc(slices.Clone(dirs), func(s string) bool { return s == "" }), ", "))
}

// spoolSink drains the spool of one pipeline's sink into its writer.
type spoolSink struct {
	name     string // its spool: SinkName(pipeline, sink)
	pipeline string
	sink     string
	wake     chan struct{}
	cancel   context.CancelFunc // ends its delivery loop

	mu      sync.Mutex
	w       sinkWriter // nil while the pipeline's new version replaces it
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
