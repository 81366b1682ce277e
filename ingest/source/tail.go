package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TailConfig is a file source: the `file:` block of a pipeline source,
// which follows a growing file (a log) line by line.
type TailConfig struct {
	// Path is the file to follow (an absolute path).
	Path string `yaml:"path"`
	// Poll is how often the file is checked for new lines and for rotation.
	// Zero means DefaultPoll.
	Poll time.Duration `yaml:"poll"`
	// StartAt is where a file with no committed position is read from:
	// "beginning" (the default: every line already in it) or "end" (only
	// lines written from now on).
	StartAt string `yaml:"startAt"`
	// MaxLineBytes bounds a line: a longer one is handed on in pieces of
	// this size. Zero means DefaultMaxLineBytes.
	MaxLineBytes int `yaml:"maxLineBytes"`
}

// Defaults of TailConfig.
const (
	// DefaultPoll: new lines reach the log within a second, and an idle
	// file costs one stat a second.
	DefaultPoll = time.Second
	// DefaultMaxLineBytes: far above any sane log line, small enough that
	// a file without newlines cannot exhaust a gateway's memory.
	DefaultMaxLineBytes = 1 << 20
)

// Validate reports every problem of c, naming its key under `file:`.
func (c *TailConfig) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("file.path: the file to follow is required"))
	case !filepath.IsAbs(c.Path):
		errs = append(errs, fmt.Errorf("file.path: %q must be an absolute path", c.Path))
	}
	if c.Poll < 0 {
		errs = append(errs, errors.New("file.poll: must not be negative"))
	}
	switch c.StartAt {
	case "", "beginning", "end":
	default:
		errs = append(errs, fmt.Errorf("file.startAt: %q (want beginning or end)", c.StartAt))
	}
	if c.MaxLineBytes < 0 {
		errs = append(errs, errors.New("file.maxLineBytes: must not be negative"))
	}
	return errors.Join(errs...)
}

// Tail is the file source: it follows TailConfig.Path and writes each
// complete line (without its "\n" or "\r\n"; blank lines are skipped) as
// one payload.
//
//   - Position: the offset after the last line written, and a fingerprint
//     of the file's first bytes, commit with the lines (Writer.Write), so
//     a restart continues after the last committed line: none is lost or
//     written twice.
//   - Partial lines: bytes after the last newline are held until the line
//     is complete (or the file is rotated away, or they exceed
//     MaxLineBytes).
//   - Rotation by rename and create (logrotate's default): the renamed file
//     is read to its end, then the new file from its start. After a
//     restart, the renamed file is found in the same directory by its
//     fingerprint (a name that begins with the file's name, such as
//     app.log.1), and its rest is read first.
//   - Rotation by copy and truncate (copytruncate): a file shorter than
//     the position, or whose first bytes changed, is read from its start.
//     Lines written between logrotate's copy and its truncation are lost;
//     that is copytruncate's own race.
type Tail struct {
	cfg TailConfig
}

// NewTail returns the file source of cfg (which Validate accepted).
func NewTail(cfg TailConfig) *Tail {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	return &Tail{cfg: cfg}
}

// fpMax is how many of a file's first bytes identify it.
const fpMax = 256

// tailPos is a Tail's committed position.
type tailPos struct {
	off   int64  // after the last line written
	fpLen int    // bytes hashed, min(off, fpMax)
	fp    uint64 // FNV-1a of the first fpLen bytes
}

func (p tailPos) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(p.off))
	b = binary.AppendUvarint(b, uint64(p.fpLen))
	return binary.BigEndian.AppendUint64(b, p.fp)
}

func decodeTailPos(b []byte) (tailPos, bool) {
	off, k := binary.Uvarint(b)
	if k <= 0 {
		return tailPos{}, false
	}
	n, j := binary.Uvarint(b[k:])
	if j <= 0 || len(b[k+j:]) != 8 || n > fpMax || n > off || off > math.MaxInt64 {
		return tailPos{}, false
	}
	return tailPos{off: int64(off), fpLen: int(n), fp: binary.BigEndian.Uint64(b[k+j:])}, true
}

// fingerprint hashes the first n bytes of f; ok is false when f is shorter.
func fingerprint(f *os.File, n int) (uint64, bool) {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0, false
	}
	h := fnv.New64a()
	h.Write(buf)
	return h.Sum64(), true
}

// matches reports whether f is the file p was taken in (as far as its
// first bytes tell) and still holds at least p.off bytes.
func (p tailPos) matches(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Size() < p.off {
		return false
	}
	fp, ok := fingerprint(f, p.fpLen)
	return ok && fp == p.fp
}

// tailer is one Run's state.
type tailer struct {
	t    *Tail
	w    Writer
	f    *os.File
	head []byte // the file's first bytes read so far (up to fpMax)
	off  int64  // committed: after the last complete line written
	read int64  // bytes read into pend: pend holds [off, read)
	pend []byte
	buf  []byte
	recs [][]byte
}

// Run follows the file until ctx ends. It returns an error when the file
// cannot be opened or read, or a Write fails; the node runs it again after
// a backoff, and it resumes from the committed position.
func (t *Tail) Run(ctx context.Context, w Writer) error {
	tl := &tailer{t: t, w: w, buf: make([]byte, 64<<10)}
	defer func() {
		if tl.f != nil {
			tl.f.Close()
		}
	}()
	if err := tl.open(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()
	for {
		// Rotation first: a truncated file must not be read at the old
		// offset.
		if err := tl.checkRotation(ctx); err != nil {
			return err
		}
		if err := tl.drain(ctx, false); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// open opens the file where the committed position says: the same file at
// its offset; or, when it was rotated away, the rest of the rotated file
// first; or a new file from its start (or its end, the first time, with
// startAt: end).
func (tl *tailer) open(ctx context.Context) error {
	f, err := os.Open(tl.t.cfg.Path)
	if err != nil {
		return err
	}
	tl.f = f
	raw := tl.w.Position()
	p, ok := decodeTailPos(raw)
	switch {
	case raw == nil:
		if tl.t.cfg.StartAt == "end" {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			// Start after the last complete line.
			tl.off = fi.Size()
			if tl.off > 0 {
				b := make([]byte, 1)
				for tl.off > 0 {
					if _, err := f.ReadAt(b, tl.off-1); err != nil {
						return err
					}
					if b[0] == '\n' {
						break
					}
					tl.off--
				}
			}
		}
	case !ok:
		return fmt.Errorf("%s: the committed position is unreadable; it is kept, and the file is not read", tl.t.cfg.Path)
	case p.matches(f):
		tl.off = p.off
	default:
		if old := tl.findRotated(p); old != nil {
			// Read the rotated file's rest, then the new file from 0.
			tl.f, tl.off = old, p.off
			if err := tl.loadHead(); err != nil {
				return err
			}
			tl.read = tl.off
			if err := tl.drain(ctx, true); err != nil {
				f.Close()
				return err
			}
			old.Close()
			tl.f = f
		}
		tl.off = 0
	}
	tl.read = tl.off
	return tl.loadHead()
}

// loadHead reads the current file's first bytes up to min(off, fpMax).
func (tl *tailer) loadHead() error {
	n := int(min(tl.off, fpMax))
	tl.head = make([]byte, n, fpMax)
	if n > 0 {
		if _, err := tl.f.ReadAt(tl.head, 0); err != nil {
			return fmt.Errorf("%s: %w", tl.t.cfg.Path, err)
		}
	}
	return nil
}

// findRotated looks in the file's directory for the file p was taken in,
// under another name that begins with the file's name (app.log.1,
// app.log-20240101); nil if there is none.
func (tl *tailer) findRotated(p tailPos) *os.File {
	dir, base := filepath.Split(tl.t.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n != base && strings.HasPrefix(n, base) && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names) // app.log.1 before app.log.2: the newest first
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if p.matches(f) {
			return f
		}
		f.Close()
	}
	return nil
}

// drain reads the current file to its end and writes its complete lines,
// in Writes of up to flushBytes; final (the file was rotated away) writes
// a partial last line too.
func (tl *tailer) drain(ctx context.Context, final bool) error {
	max := tl.t.cfg.MaxLineBytes
	cut := 0 // pend[:cut] is cut into tl.recs, not yet written
	for {
		n, err := tl.f.ReadAt(tl.buf, tl.read)
		if n > 0 {
			if len(tl.head) < fpMax && tl.read == int64(len(tl.head)) {
				tl.head = append(tl.head, tl.buf[:min(n, fpMax-len(tl.head))]...)
			}
			tl.read += int64(n)
			// The queued lines may point into pend's old array: it stays
			// valid (and unchanged) until they are written.
			tl.pend = append(tl.pend, tl.buf[:n]...)
		}
		for {
			rest := tl.pend[cut:]
			if i := bytes.IndexByte(rest, '\n'); i >= 0 && i <= max {
				tl.add(bytes.TrimSuffix(rest[:i], []byte("\r")))
				cut += i + 1
			} else if len(rest) >= max {
				tl.add(rest[:max])
				cut += max
			} else {
				break
			}
		}
		end := n == 0 || err != nil
		if final && errors.Is(err, io.EOF) && cut < len(tl.pend) {
			tl.add(tl.pend[cut:])
			cut = len(tl.pend)
		}
		if cut > 0 && (end || cut >= flushBytes) {
			if err := tl.flush(ctx, tl.off+int64(cut)); err != nil {
				return err
			}
			tl.pend = append(tl.pend[:0], tl.pend[cut:]...)
			cut = 0
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", tl.t.cfg.Path, err)
		}
		if end {
			return nil
		}
	}
}

// flushBytes is how many bytes of lines one Write carries at most (plus a
// read buffer): a backlog is logged in few commits, with bounded memory.
const flushBytes = 1 << 20

// add queues one line (blank ones are skipped).
func (tl *tailer) add(line []byte) {
	if len(line) > 0 {
		tl.recs = append(tl.recs, line)
	}
}

// flush writes the queued lines with the position off, durably.
func (tl *tailer) flush(ctx context.Context, off int64) error {
	p := tailPos{off: off, fpLen: int(min(off, int64(len(tl.head))))}
	h := fnv.New64a()
	h.Write(tl.head[:p.fpLen])
	p.fp = h.Sum64()
	if err := tl.w.Write(ctx, tl.recs, p.encode()); err != nil {
		return err
	}
	clear(tl.recs)
	tl.recs = tl.recs[:0]
	tl.off = off
	return nil
}

// checkRotation switches to a new file at the path (rename and create) or
// rereads a truncated one (copytruncate).
func (tl *tailer) checkRotation(ctx context.Context) error {
	cur, err := tl.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", tl.t.cfg.Path, err)
	}
	fi, err := os.Stat(tl.t.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // between the rename and the create: wait
	}
	if err != nil {
		return err
	}
	if !os.SameFile(cur, fi) {
		// Renamed away: whatever was appended to it before the switch.
		if err := tl.drain(ctx, true); err != nil {
			return err
		}
		f, err := os.Open(tl.t.cfg.Path)
		if err != nil {
			return err
		}
		tl.f.Close()
		tl.f, tl.off, tl.read, tl.pend, tl.head = f, 0, 0, tl.pend[:0], tl.head[:0]
		// The new file's position commits with its first lines.
		return nil
	}
	p := tailPos{off: tl.read, fpLen: len(tl.head)}
	h := fnv.New64a()
	h.Write(tl.head)
	p.fp = h.Sum64()
	if fi.Size() < tl.read || !p.matches(tl.f) {
		// Truncated (and perhaps written again). Lines appended after the
		// last read and before the truncation are in logrotate's copy, if
		// it can be found: read its rest first. Then the file from 0.
		if old := tl.findRotated(p); old != nil {
			f := tl.f
			tl.f = old
			err := tl.drain(ctx, true)
			tl.f = f
			old.Close()
			if err != nil {
				return err
			}
		}
		tl.off, tl.read, tl.pend, tl.head = 0, 0, tl.pend[:0], tl.head[:0]
	}
	return nil
}
