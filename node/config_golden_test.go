package node

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// TestBadConfigsGolden checks the exact messages edged gives for every file
// of the catalogue testdata/bad (NAME.yaml, messages in NAME.golden): every
// problem at once, each line FILE:LINE: key: message, no Go type names.
// go test ./node -run TestBadConfigsGolden -update rewrites the golden files.
func TestBadConfigsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 5 {
		t.Fatalf("found %d bad configs; want the whole catalogue", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadConfig(f)
			if err == nil {
				t.Fatal("LoadConfig succeeded; want errors")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
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
					t.Errorf("line %q does not start with FILE:LINE", l)
				}
				for _, g := range []string{"node.", "uplink.Config", "time.Duration", "!!", "unmarshal", "Config"} {
					if strings.Contains(l, g) {
						t.Errorf("line %q names Go or YAML internals (%q)", l, g)
					}
				}
			}
		})
	}
}
