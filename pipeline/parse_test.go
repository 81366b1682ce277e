package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSpecsNameEveryProblem parses every file in testdata/bad and checks that
// the error lists each message given by the file's "# want:" lines, with file,
// line and key path.
func TestBadSpecsNameEveryProblem(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad specs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, l := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(l, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			_, err = Parse(f, data)
			if err == nil {
				t.Fatalf("Parse succeeded; want errors %q", wants)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
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
	if err == nil || !strings.Contains(err.Error(), "x.yaml:7: one pipeline per file") {
		t.Fatalf("got %v; want a second-document error at line 7", err)
	}
}
