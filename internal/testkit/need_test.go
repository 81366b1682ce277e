package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of ending
// the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(f string, args ...any)   { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)    { r.skip = fmt.Sprintf(f, args...) }
func (r *recorder) Fatal(args ...any)              { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)               { r.skip = fmt.Sprint(args...) }
func (r *recorder) Logf(format string, a ...any)   {}
func (r *recorder) Errorf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }

// TestNeedFailsWithInstallHintWhenMissing protects `make test` from passing
// by skipping: a missing server is a failure that says how to install it,
// and only -short turns it into a skip.
func TestNeedFailsWithInstallHintWhenMissing(t *testing.T) {
	r := &recorder{TB: t}
	missing := filepath.Join(t.TempDir(), "no-such-server")
	got := Need(r, "no-such-server (a test server)", "sudo apt-get install -y no-such-server", "no-such-server-xyz", missing)
	if testing.Short() {
		if r.skip == "" || r.fatal != "" || !strings.Contains(r.skip, "-short") {
			t.Fatalf("under -short: skip %q, fatal %q; want an explicit skip", r.skip, r.fatal)
		}
		return
	}
	if got != "" || r.skip != "" {
		t.Fatalf("got %q, skip %q; want a failure", got, r.skip)
	}
	for _, want := range []string{"no-such-server (a test server) not found", missing, InstallCommand,
		"sudo apt-get install -y no-such-server", "make test-short"} {
		if !strings.Contains(r.fatal, want) {
			t.Errorf("failure message lacks %q:\n%s", want, r.fatal)
		}
	}
}

func TestNeedFindsPathAndPATH(t *testing.T) {
	if testing.Short() {
		t.Skip("Need always skips under -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	if got := Need(r, "fake", "none", "no-such-server-xyz", bin); got != bin || r.fatal != "" {
		t.Fatalf("Need by path = %q (fatal %q); want %s", got, r.fatal, bin)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if got := Need(r, "fake", "none", "fake-server"); got != bin || r.fatal != "" {
		t.Fatalf("Need on PATH = %q (fatal %q); want %s", got, r.fatal, bin)
	}
}
