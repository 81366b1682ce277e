package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InstallCommand installs every program the tests need on a Debian machine
// (mosquitto, versitygw, ...), skipping what is already there. It is the
// hint a test prints when such a program is missing.
const InstallCommand = "sudo bash scripts/test/install.sh"

// Need returns the path of the first of candidates that exists: a bare name
// is looked up on PATH, a path containing a slash is checked as is.
//
// It is how a test that needs a real server or tool (mosquitto, versitygw,
// chromium) finds it. `make test` must not pass by skipping such a test in
// silence, so when none of candidates exists the test FAILS, naming what is
// missing and how to install it: InstallCommand, or the narrower
// installLine (for example "sudo apt-get install -y mosquitto"). The only
// way to leave these tests out is explicit: under -short (`make
// test-short`) Need skips the test, whether the program exists or not, and
// says why.
func Need(t testing.TB, what, installLine string, candidates ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: not run under -short (make test-short); make test runs it", what)
		return ""
	}
	if p := Find(candidates...); p != "" {
		return p
	}
	t.Fatalf("%s not found (looked for %s).\nInstall everything the tests need with:\n\t%s\nor just this one with:\n\t%s\n"+
		"`make test-short` runs the tests that need no real server.",
		what, strings.Join(candidates, ", "), InstallCommand, installLine)
	return ""
}

// Find returns the first of candidates that exists (a bare name looked up
// on PATH, a path with a slash checked as a file), or "".
func Find(candidates ...string) string {
	for _, c := range candidates {
		if !strings.Contains(c, "/") {
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Clean(c)
		}
	}
	return ""
}
