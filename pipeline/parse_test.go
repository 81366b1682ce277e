package pipeline

import (
	"flag"
	"strings"
	"testing"

	"github.com/edgedio/edged/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// TestBadSpecsGolden checks the exact messages edged check gives for every
// file of the catalogue testdata/bad (NAME.yaml, messages in NAME.golden):
// every problem of a file at once, each as FILE:LINE: key.path: message in
// the user's words. go test ./pipeline -run TestBadSpecsGolden -update
// rewrites the golden files.
func TestBadSpecsGolden(t *testing.T) {
	testkit.BadInputGolden(t, "testdata/bad/*.yaml", 15, func(f string) error {
		_, err := LoadAndCompile(f)
		return err
	}, []string{"pipeline.", "time.Duration", "engine.", "[]", "!!", "unmarshal"}, *update)
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
