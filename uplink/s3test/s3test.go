// Package s3test runs a real S3 server (versitygw with its posix backend)
// for tests. The binary is found on PATH, in $GOBIN, in $(go env
// GOPATH)/bin, or in ./.cache/bin of the module root; without it the test
// FAILS with the install command (`sudo bash scripts/test/install.sh`
// installs it into .cache/bin): `make test` cannot pass by skipping. Under
// -short (`make test-short`) the test is skipped instead, saying so.
//
// Install just it: GOBIN=$PWD/.cache/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
package s3test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
	"github.com/edgedio/edged/uplink/internal/s3"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // host:port, plain http
	Access   string
	Secret   string
	Dir      string // the posix backend's root

	t   testing.TB
	bin string
	cmd *exec.Cmd
}

// Binary returns the path of versitygw, or "" when absent.
func Binary() string { return testkit.Find(candidates()...) }

// candidates are the places versitygw is looked for, in order: PATH,
// $GOBIN, $(go env GOPATH)/bin, and .cache/bin of the working directory and
// of each of its parents (the repository root's, where
// scripts/test/install.sh puts it).
func candidates() []string {
	out := []string{"versitygw"}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if b, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(b))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, ".cache", "bin"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range dirs {
		out = append(out, filepath.Join(d, "versitygw"))
	}
	return out
}

// Start starts versitygw on a free loopback port with a fresh directory and
// stops it at the test's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testkit.Need(t, "versitygw (a real S3 server)",
		"GOBIN=$PWD/.cache/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (in the repository root)",
		candidates()...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: addr, Access: "edgedtest", Secret: "edgedtestsecret", Dir: t.TempDir(), t: t, bin: bin}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Stop kills the server (like a crash or a network cut) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and directory (after
// Stop) and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--access", s.Access, "--secret", s.Secret, "--port", s.Endpoint, "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("versitygw on %s not ready: %v", s.Endpoint, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// Client returns a client of edged's own S3 client package for the
// server (path style, us-east-1, the server's credentials).
func (s *Server) Client() *s3.Client {
	s.t.Helper()
	c, err := s3.New(s3.Config{Endpoint: s.Endpoint, Region: "us-east-1", PathStyle: true,
		AccessKey: s.Access, SecretKey: s.Secret})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Bucket creates a bucket and returns its name.
func (s *Server) Bucket(name string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client().CreateBucket(ctx, name); err != nil {
		s.t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// Objects reads every object of the bucket back: the contents by key.
func (s *Server) Objects(bucket string) map[string][]byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Client()
	out := map[string][]byte{}
	next := ""
	for {
		p, err := c.ListObjects(ctx, bucket, "", next, 0)
		if err != nil {
			s.t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range p.Objects {
			body, _, err := c.GetObject(ctx, bucket, o.Key)
			if err != nil {
				s.t.Fatalf("get %s/%s: %v", bucket, o.Key, err)
			}
			b, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				s.t.Fatalf("read %s/%s: %v", bucket, o.Key, err)
			}
			if int64(len(b)) != o.Size {
				s.t.Fatalf("read %s/%s: %d bytes; the listing says %d", bucket, o.Key, len(b), o.Size)
			}
			out[o.Key] = b
		}
		if p.Next == "" {
			return out
		}
		next = p.Next
	}
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s (dir %s)", s.Endpoint, s.Dir) }
