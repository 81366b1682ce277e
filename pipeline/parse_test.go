package pipeline

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// TestBadSpecsGolden checks the exact messages edged check gives for every
// file of the catalogue testdata/bad (NAME.yaml, messages in NAME.golden):
// every problem of a file at once, each as FILE:LINE: key.path: message in
// the user's words. go test ./pipeline -run TestBadSpecsGolden -update
// rewrites the golden files.
func TestBadSpecsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 15 {
		t.Fatalf("found %d bad specs; want the whole catalogue", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadAndCompile(f)
			if err == nil {
				t.Fatal("LoadAndCompile succeeded; want errors")
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
					t.Errorf("line %q does not start with the file name", l)
				}
				for _, g := range []string{"pipeline.", "time.Duration", "engine.", "[]", "!!", "unmarshal"} {
					if strings.Contains(l, g) {
						t.Errorf("line %q names Go or YAML internals (%q)", l, g)
					}
				}
			}
		})
	}
}

func TestParseOneDocumentOnly(t *testing.T) {
	doc := "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: a}\nspec:\n  sources: [{name: in, fields: [{name: v, type: number}]}]\n  sinks: [{name: out}]\n"
	if _, err := Parse("x.yaml", []byte(doc)); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	_, err := Parse("x.yaml", []byte(doc+"---\n"+doc))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:7: a second YAML document") {
		t.Fatalf("got %v; want a second-document error at line 7", err)
	}
}
