package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// memWriter is a Writer that commits to memory: its lines and position are
// what a crash would leave.
type memWriter struct {
	mu    sync.Mutex
	lines []string
	pos   []byte
	fail  error // returned by Write while set
	calls int
}

func (w *memWriter) Write(_ context.Context, payloads [][]byte, pos []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return w.fail
	}
	w.calls++
	for _, p := range payloads {
		w.lines = append(w.lines, string(p))
	}
	if pos != nil {
		w.pos = slices.Clone(pos)
	}
	return nil
}

func (w *memWriter) Position() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *memWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lines)
}

// running is one Run of a Tail.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func startTail(t *testing.T, cfg TailConfig, w Writer) *running {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Millisecond
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- NewTail(cfg).Run(ctx, w) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func waitLines(t *testing.T, w *memWriter, want ...string) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := w.got(); !slices.Equal(got, want) {
			return fmt.Errorf("lines %q; want %q", got, want)
		}
		return nil
	})
}

func TestTailHoldsPartialLinesUntilComplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "one\r\ntw")
	w := &memWriter{}
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "one")
	appendFile(t, path, "o\n\nthree\nfo")
	waitLines(t, w, "one", "two", "three") // the blank line is skipped
	appendFile(t, path, "ur\n")
	waitLines(t, w, "one", "two", "three", "four")
}

func TestTailRestartNeitherLosesNorRepeats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "a\nb\npart")
	w := &memWriter{}
	r := startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "a", "b")
	r.stop()
	appendFile(t, path, "ial\nc\n")
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "a", "b", "partial", "c")
}

func TestTailFailedWriteIsRetriedFromPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "a\n")
	w := &memWriter{}
	r := startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "a")
	w.mu.Lock()
	w.fail = ErrBackpressure
	w.mu.Unlock()
	appendFile(t, path, "b\n")
	select {
	case err := <-r.done:
		if err == nil || !strings.Contains(err.Error(), "back-pressured") {
			t.Fatalf("Run: %v; want the Write error", err)
		}
		r.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return the Write error")
	}
	w.mu.Lock()
	w.fail = nil
	w.mu.Unlock()
	startTail(t, TailConfig{Path: path}, w) // what the node does after a backoff
	waitLines(t, w, "a", "b")
}

func TestTailFollowsRenameAndCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, "1\n2\n")
	w := &memWriter{}
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "1", "2")
	// logrotate: rename, the application still writes its last line to
	// the old file, then reopens the path.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", "3\n")
	appendFile(t, path, "4\n5\n")
	waitLines(t, w, "1", "2", "3", "4", "5")
}

func TestTailFollowsCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, "1\n2\n")
	w := &memWriter{}
	r := startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "1", "2")
	r.stop() // so that "3" is surely unread when the copy is taken
	appendFile(t, path, "3\n")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "4\n")
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "1", "2", "3", "4")
	// And while running: truncated to nothing, then longer than before.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "5-a-longer-line-than-before\n")
	waitLines(t, w, "1", "2", "3", "4", "5-a-longer-line-than-before")
}

func TestTailFindsTheRotatedFileAfterRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, "1\n")
	w := &memWriter{}
	r := startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "1")
	r.stop()
	// While edged is down: more lines, a rotation, lines in the new file.
	appendFile(t, path, "2\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "3\n")
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, "1", "2", "3")
}

func TestTailStartAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "old\nold too\nnew ")
	w := &memWriter{}
	// Step by hand: open (where startAt applies), then the new bytes.
	tl := &tailer{t: NewTail(TailConfig{Path: path, StartAt: "end"}), w: w, buf: make([]byte, 8)}
	if err := tl.open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer tl.f.Close()
	appendFile(t, path, "line\n")
	if err := tl.drain(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if got := w.got(); !slices.Equal(got, []string{"new line"}) {
		t.Fatalf("lines %q; want only the line completed after the start", got)
	}
}

func TestTailCutsOverlongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "abcdefghij\nxy\n")
	w := &memWriter{}
	startTail(t, TailConfig{Path: path, MaxLineBytes: 4}, w)
	waitLines(t, w, "abcd", "efgh", "ij", "xy")
}

func TestTailConfigValidate(t *testing.T) {
	err := (&TailConfig{Path: "rel/app.log", Poll: -1, StartAt: "middle", MaxLineBytes: -1}).Validate()
	for _, want := range []string{"file.path", "absolute", "file.poll", "file.startAt", "file.maxLineBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v; want it to name %s", err, want)
		}
	}
	if err := (&TailConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "file.path") {
		t.Errorf("empty path: %v", err)
	}
}

// TestTailLogsABacklogInFewWrites: a file that is already large is logged in
// writes of about a megabyte (one commit each), not one per read buffer.
func TestTailLogsABacklogInFewWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	var b strings.Builder
	var want []string
	for i := range 40000 {
		l := fmt.Sprintf(`{"sensor":"s%d","seq":%d,"temp":21.5,"note":"a line of some eighty bytes"}`, i%10, i)
		want = append(want, l)
		b.WriteString(l + "\n")
	}
	appendFile(t, path, b.String()) // 3.4 MB
	w := &memWriter{}
	startTail(t, TailConfig{Path: path}, w)
	waitLines(t, w, want...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls > 4 {
		t.Fatalf("%d writes for 3.4 MB; want at most 4", w.calls)
	}
}
