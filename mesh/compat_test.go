package mesh

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// startWith runs a mesh node with the given partition count and returns it
// with its log.
func startWith(t *testing.T, name string, partitions int, join []string) (*Node, *syncBuffer) {
	t.Helper()
	var buf syncBuffer
	cfg := Config{Name: name, Bind: "127.0.0.1:0", Key: key1, Join: join, JoinRetry: 200 * time.Millisecond}
	n, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testkit.Eventually(t, 5*time.Second, func() error {
		if r, _ := n.Ready(); !r {
			return fmt.Errorf("%s not ready", name)
		}
		return nil
	})
	return n, &buf
}

// TestMemberWithAnotherPartitionCountCannotJoinAndSaysWhy: a node whose
// epochs.partitions differs from the mesh's is refused; it says why in its
// log and Incompatible (status), emits nothing (so it never doubles the
// site's windows), and the mesh does not count it as a member.
func TestMemberWithAnotherPartitionCountCannotJoinAndSaysWhy(t *testing.T) {
	a, _ := startWith(t, "a", 16, nil)
	b, blog := startWith(t, "b", 8, []string{addr(t, a)})
	testkit.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(b.Incompatible(), "epochs.partitions") {
			return fmt.Errorf("b.Incompatible() = %q", b.Incompatible())
		}
		return nil
	})
	if !strings.Contains(blog.String(), "cannot join") || !strings.Contains(blog.String(), "epochs.partitions") {
		t.Errorf("b's log does not say why it cannot join:\n%s", blog.String())
	}
	for _, c := range b.Claims("p", 8) {
		if c.Emit {
			t.Errorf("incompatible b emits partition %d", c.Partition)
		}
	}
	// The mesh does not count it either.
	testkit.Eventually(t, 2*time.Second, func() error {
		for _, m := range a.Members() {
			if m.Name == "b" {
				return fmt.Errorf("a counts b as a member: %+v", a.Members())
			}
		}
		return nil
	})
	if got := len(a.Claims("p", 16)); got != 16 {
		t.Errorf("a holds %d of 16 partitions; want all (b is not a member)", got)
	}
}

// TestAnotherProtocolVersionIsIncompatible: metadata of another mesh
// protocol version (2: before pipeline sets and snapshots by identity; none:
// a release before versions) is refused, naming
// the member and what to do.
func TestAnotherProtocolVersionIsIncompatible(t *testing.T) {
	n, err := New(Config{Name: "a"}, Options{Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range []string{`{"v":1,"n":8}`, `{"v":2,"n":8}`, `{"n":8}`, ``} {
		err := n.compatible("old", []byte(md))
		if err == nil || !strings.Contains(err.Error(), "member old") || !strings.Contains(err.Error(), "same edged release") {
			t.Errorf("metadata %q: %v", md, err)
		}
	}
	if err := n.compatible("ok", []byte(fmt.Sprintf(`{"v":%d,"n":8}`, ProtocolVersion))); err != nil {
		t.Errorf("compatible member refused: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUnreachableSeedMeansAOneNodeMesh: a node whose seeds do not answer
// keeps processing as a one-node mesh (it owns and emits every partition),
// says so in its log and Ready, and is not mistaken for an incompatible
// one.
func TestUnreachableSeedMeansAOneNodeMesh(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	n, log := startWith(t, "lonely", 8, []string{dead})
	if _, alone := n.Ready(); !alone {
		t.Fatal("a node whose seed is unreachable does not say it is alone")
	}
	if n.Incompatible() != "" {
		t.Errorf("unreachable seed reported as incompatible: %q", n.Incompatible())
	}
	if !strings.Contains(log.String(), "one-node mesh") {
		t.Errorf("log does not say it processes as a one-node mesh:\n%s", log.String())
	}
	emit := 0
	for _, c := range n.Claims("p", 8) {
		if c.Emit {
			emit++
		}
	}
	if emit != 8 {
		t.Errorf("alone, it emits %d of 8 partitions; want all", emit)
	}
}
