package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestUnknownCommandFailsWithUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("exit code %d; want 2", code)
	}
	if !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr %q does not name the command", errb.String())
	}
}

func TestVersionPrintsStampedVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "edgectl ") {
		t.Fatalf("got %d %q; want 0 and the version", code, out.String())
	}
}

func TestMain(m *testing.M) {
	// Never read the config of the user running the tests.
	os.Setenv("EDGECTL_CONFIG", filepath.Join(os.TempDir(), "edgectl-test-no-such-config.yaml"))
	os.Unsetenv("EDGED_API")
	os.Unsetenv("EDGED_TOKEN")
	os.Exit(m.Run())
}

// Every command and subcommand answers -h and --help with exit 0 (help was
// asked for; it is not a usage error).
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, c := range allCommands() {
		lines := [][]string{{c}}
		for _, sub := range subcommands[c] {
			lines = append(lines, []string{c, sub})
		}
		for _, l := range lines {
			for _, h := range []string{"-h", "--help"} {
				var out, errb bytes.Buffer
				if code := run(append(slices.Clone(l), h), &out, &errb); code != 0 {
					t.Errorf("edgectl %s %s: exit %d; want 0 (stderr %q)", strings.Join(l, " "), h, code, errb.String())
				}
			}
		}
	}
}
