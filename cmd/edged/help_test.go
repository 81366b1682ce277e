package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryCommandAnswersHelp: -h and --help exit 0 on every command, print
// the usage on stdout, and show long flags as --flag.
func TestEveryCommandAnswersHelp(t *testing.T) {
	singleDashLong := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`)
	for _, cmd := range [][]string{{}, {"run"}, {"-check-config"}, {"batch"}, {"check"}, {"probe"}, {"version"}} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != 0 {
				t.Errorf("edged %s: exit %d; want 0 (stderr %q)", strings.Join(args, " "), code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "usage:") {
				t.Errorf("edged %s: stdout %q lacks the usage", strings.Join(args, " "), stdout.String())
			}
			if m := singleDashLong.FindString(stdout.String()); m != "" {
				t.Errorf("edged %s: flag shown as %q; want --flag", strings.Join(args, " "), strings.TrimSpace(m))
			}
		}
	}
}

// TestFlagErrorsNameTheCommand: a usage error names the command and exits 2.
func TestFlagErrorsNameTheCommand(t *testing.T) {
	for _, cmd := range []string{"run", "batch", "check", "probe", "version", "-check-config"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{cmd, "--bogus"}, &stdout, &stderr); code != 2 {
			t.Errorf("edged %s --bogus: exit %d; want 2", cmd, code)
		}
		if !strings.HasPrefix(stderr.String(), "edged "+cmd+": ") {
			t.Errorf("edged %s --bogus: stderr %q lacks the command prefix", cmd, stderr.String())
		}
	}
}

// TestCheckConfigChecksThePipelinesItWouldLoad: without a pipelines
// directory, -check-config checks the embedded examples and says so; with
// one, a bad pipeline in it fails the check with every problem of the file.
func TestCheckConfigChecksThePipelinesItWouldLoad(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-check-config", "--data-dir", dir}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "pipelines ok: the embedded examples") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the embedded examples checked", code, stdout.String(), stderr.String())
	}
	pipes := filepath.Join(dir, "pipes")
	if err := os.Mkdir(pipes, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: t}\nspec:\n  intervall: 2s\n  sources: [{name: in, fields: [{name: v, type: number}]}]\n  steps:\n    - {name: s, filter: v > \"x\"}\n  sinks: [{name: out, input: s}]\n"
	if err := os.WriteFile(filepath.Join(pipes, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"-check-config", "--data-dir", dir, "--pipelines-dir", pipes}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d; want 1 (stdout %q)", code, stdout.String())
	}
	for _, want := range []string{"bad.yaml:5: spec.intervall: unknown key", "bad.yaml:8: spec.steps[0]: step \"s\""} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
