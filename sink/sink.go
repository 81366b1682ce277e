package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
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

// BatchPublisher is a Publisher that can have a whole batch in flight at
// once (ingest/mqtt.Publisher): PublishBatch returns nil once every
// payloads[i] is delivered to topics[i] as the QoS requires. The MQTT writer
// uses it when the Publisher has it.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, topics []string, payloads [][]byte, qos byte, retain bool) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error

// Publish implements Publisher.
func (f PublisherFunc) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return f(ctx, topic, payload, qos, retain)
}

// Delivery is one spooled output handed to a sink.
type Delivery struct {
	ID   string
	Data []byte // the output record as a JSON object
}

// Writer delivers the outputs of one pipeline's sink. Deliver returns nil
// once every output in ds is delivered durably (as far as the sink type
// allows); on error none of them is acknowledged and all are retried, so a
// sink must tolerate re-Delivery of outputs it already wrote (File skips
// them by id). Deliver is called from one goroutine at a time and does not
// retain ds; Close releases the writer.
type Writer interface {
	Deliver(ctx context.Context, ds []Delivery) error
	Close() error
}

// WithID returns data (a JSON object) with "_id" as its first member.
func WithID(dst []byte, id string, data []byte) []byte {
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

// Stdout writes JSON lines to an io.Writer (stdout): NewStdout.
type Stdout struct {
	mu  *sync.Mutex // shared by every sink writing to the same writer
	w   io.Writer
	buf []byte
}

// NewStdout returns a writer of JSON lines to w; mu serialises the sinks
// that share w.
func NewStdout(mu *sync.Mutex, w io.Writer) *Stdout { return &Stdout{mu: mu, w: w} }

// Deliver writes ds as JSON lines with their "_id".
func (s *Stdout) Deliver(_ context.Context, ds []Delivery) error {
	s.buf = s.buf[:0]
	for _, d := range ds {
		s.buf = WithID(s.buf, d.ID, d.Data)
		s.buf = append(s.buf, '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(s.buf)
	return err
}

// Close does nothing: the writer belongs to the caller.
func (s *Stdout) Close() error { return nil }

// MQTT publishes each output with its id through a Publisher, to a
// topic rendered from the sink's template (record fields such as {sensor}).
type MQTT struct {
	pub    Publisher
	topic  Topic
	qos    byte
	retain bool
	buf    []byte
	tbuf   []byte
}

// NewMQTT returns a writer that publishes each output through pub to the
// topic rendered from t.
func NewMQTT(pub Publisher, t Topic, qos byte, retain bool) *MQTT {
	return &MQTT{pub: pub, topic: t, qos: qos, retain: retain}
}

// Deliver publishes ds one by one, each with its "_id".
func (s *MQTT) Deliver(ctx context.Context, ds []Delivery) error {
	if s.pub == nil {
		return fmt.Errorf("no MQTT publisher is configured (mqtt.brokers and mqtt.listen are empty); outputs stay spooled")
	}
	if bp, ok := s.pub.(BatchPublisher); ok {
		topics, payloads := make([]string, len(ds)), make([][]byte, len(ds))
		s.buf = s.buf[:0]
		for i, d := range ds {
			var err error
			if s.tbuf, err = s.topic.Render(s.tbuf[:0], d.Data); err != nil {
				return fmt.Errorf("output %s: %w", d.ID, err)
			}
			topics[i] = string(s.tbuf)
			start := len(s.buf)
			s.buf = WithID(s.buf, d.ID, d.Data)
			payloads[i] = s.buf[start:len(s.buf):len(s.buf)]
		}
		return bp.PublishBatch(ctx, topics, payloads, s.qos, s.retain)
	}
	for _, d := range ds {
		var err error
		if s.tbuf, err = s.topic.Render(s.tbuf[:0], d.Data); err != nil {
			return fmt.Errorf("output %s: %w", d.ID, err)
		}
		s.buf = WithID(s.buf[:0], d.ID, d.Data)
		if err := s.pub.Publish(ctx, string(s.tbuf), s.buf, s.qos, s.retain); err != nil {
			return err
		}
	}
	return nil
}

// Close does nothing: the Publisher belongs to the caller.
func (s *MQTT) Close() error { return nil }

// File appends JSON lines with "_id" to one file, rotated by size. The
// file is fsynced before deliver returns, so an acknowledged output is on
// disk. A crash between the fsync and the spool acknowledgement re-delivers
// outputs already written: File remembers, per pipeline and partition,
// the last output id it wrote (read back from the file's tail on open) and
// skips outputs at or before it. The spool delivers each partition's outputs
// in order, so this makes re-Delivery idempotent, also when several
// pipelines or partitions write one file. A write that fails (a full disk)
// is cut off again, so the file never keeps a torn line.
type File struct {
	path     string
	maxBytes int64
	f        *os.File
	size     int64
	last     map[string]engine.OutputID // by pipeline/partition
	buf      []byte
}

// tailScan is how much of a file's end open reads to learn the last ids:
// more than one Delivery batch of lines.
const tailScan = 4 << 20

// OpenFile opens (creating) the file sink at path, rotated past maxBytes
// (0: never), and learns the last ids it wrote.
func OpenFile(path string, maxBytes int64) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink %q: %w", path, err)
	}
	s := &File{path: path, maxBytes: maxBytes, last: map[string]engine.OutputID{}}
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

func (s *File) open() error {
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

// Deliver appends the outputs not yet written, fsyncs, and cuts off a
// failed partial write.
func (s *File) Deliver(_ context.Context, ds []Delivery) error {
	s.buf = s.buf[:0]
	var wrote map[string]engine.OutputID
	for _, d := range ds {
		id, err := engine.ParseOutputID(d.ID)
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
		s.buf = WithID(s.buf, d.ID, d.Data)
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

func (s *File) write() error {
	if _, err := s.f.Write(s.buf); err != nil {
		return err
	}
	return s.f.Sync()
}

// rotate renames the current file to path.N (N one more than the newest) and
// starts a new one.
func (s *File) rotate() error {
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

// Close closes the file.
func (s *File) Close() error { return s.f.Close() }

// Confine checks that a file sink's path is inside one of the directories
// edged may write to, and says which they are when it is not.
func Confine(path string, dirs ...string) error {
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

// Topic is an mqtt sink's topic template after {pipeline} and {sink}
// were substituted: the remaining {field} placeholders take the output
// record's field values.
type Topic struct {
	parts  []string // literal text and field names, alternating (literal first)
	static bool
}

func ParseTopic(tmpl string) (Topic, error) {
	var t Topic
	rest := tmpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("topic %q: unclosed '{'", tmpl)
		}
		name := rest[i+1 : i+j]
		if name == "" || strings.ContainsAny(name, "{/+#") {
			return t, fmt.Errorf("topic %q: bad field name %q", tmpl, name)
		}
		t.parts = append(t.parts, rest[:i], name)
		rest = rest[i+j+1:]
	}
	t.static = len(t.parts) == 1
	if strings.ContainsAny(strings.Join(t.literals(), ""), "+#") {
		return t, fmt.Errorf("topic %q: a publish topic must not contain '+' or '#'", tmpl)
	}
	return t, nil
}

func (t Topic) literals() []string {
	var out []string
	for i := 0; i < len(t.parts); i += 2 {
		out = append(out, t.parts[i])
	}
	return out
}

// render returns the topic for one output (a JSON object). A missing or
// null field renders as "_"; '/', '+' and '#' in values become '_', so a
// value never adds a level or a wildcard.
func (t Topic) Render(dst []byte, data []byte) ([]byte, error) {
	if t.static {
		return append(dst, t.parts[0]...), nil
	}
	// The raw value of each field of the template (the last member of that
	// name wins, as in encoding/json).
	var small [8][]byte
	vals := small[:0]
	if n := len(t.parts) / 2; n > len(small) {
		vals = make([][]byte, n)
	} else {
		vals = small[:n]
	}
	err := topMembers(data, func(key, raw []byte) {
		if bytes.IndexByte(key, '\\') >= 0 {
			k, err := unquote(append(append([]byte{'"'}, key...), '"'))
			if err != nil {
				return
			}
			key = []byte(k)
		}
		for i := 1; i < len(t.parts); i += 2 {
			if string(key) == t.parts[i] {
				vals[i/2] = raw
			}
		}
	})
	if err != nil {
		return dst, fmt.Errorf("topic fields: output is %w", err)
	}
	for i, part := range t.parts {
		if i%2 == 0 {
			dst = append(dst, part...)
			continue
		}
		raw := vals[i/2]
		var v []byte
		switch {
		case raw == nil || string(raw) == "null":
		case raw[0] != '"':
			v = raw
		case bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw):
			v = raw[1 : len(raw)-1]
		default:
			s, err := unquote(raw)
			if err != nil {
				return dst, err
			}
			v = []byte(s)
		}
		if len(v) == 0 {
			v = []byte{'_'}
		}
		for k := 0; k < len(v); k++ {
			switch c := v[k]; c {
			case '/', '+', '#', 0:
				dst = append(dst, '_')
			default:
				dst = append(dst, c)
			}
		}
	}
	return dst, nil
}

// DiskBytes is the size of the sink's file and its rotations, for the disk
// budget.
func (s *File) DiskBytes() int64 {
	n := s.size
	for _, r := range rotated(s.path) {
		if fi, err := os.Stat(r); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Log writes each output as one log line.
type Log struct {
	log            *slog.Logger
	pipeline, sink string
}

// NewLog returns a writer that logs each output at info level.
func NewLog(log *slog.Logger, pipeline, sink string) *Log {
	return &Log{log: log, pipeline: pipeline, sink: sink}
}

// Deliver logs ds.
func (s *Log) Deliver(_ context.Context, ds []Delivery) error {
	for _, d := range ds {
		s.log.Info("output", "pipeline", s.pipeline, "sink", s.sink, "id", d.ID, "data", string(d.Data))
	}
	return nil
}

// Close does nothing.
func (s *Log) Close() error { return nil }
