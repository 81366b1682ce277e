package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BadInputGolden checks the exact messages a loader gives for every file of
// a catalogue of bad inputs (glob matches NAME.yaml; the messages are in
// NAME.golden): every problem of a file at once, each line starting with
// the file's name (FILE:LINE: key: message), and none naming a Go or YAML
// internal from internals. At least atLeast files must match (the whole
// catalogue, not a typo in the glob). With update it rewrites the golden
// files from what the loader says.
func BadInputGolden(t *testing.T, glob string, atLeast int, load func(path string) error, internals []string, update bool) {
	t.Helper()
	files, _ := filepath.Glob(glob)
	if len(files) < atLeast {
		t.Fatalf("found %d files matching %s; want the whole catalogue (%d or more)", len(files), glob, atLeast)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			err := load(f)
			if err == nil {
				t.Fatal("loading it succeeded; want errors")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(l, f+":") {
					t.Errorf("line %q does not start with the file name (FILE:LINE)", l)
				}
				for _, g := range internals {
					if strings.Contains(l, g) {
						t.Errorf("line %q names Go or YAML internals (%q)", l, g)
					}
				}
			}
		})
	}
}
