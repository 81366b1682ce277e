package yamlcheck

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Size time.Duration `yaml:"size"`
}

type outer struct {
	Name   string            `yaml:"name"`
	Count  int               `yaml:"count"`
	Ratio  float64           `yaml:"ratio"`
	On     bool              `yaml:"on"`
	Wait   *time.Duration    `yaml:"wait"`
	Items  []inner           `yaml:"items"`
	Labels map[string]string `yaml:"labels"`
	Flat   `yaml:",inline"`
}

// Flat is inlined into outer.
type Flat struct {
	Extra string `yaml:"extra"`
}

func TestDecodeReportsEveryProblemInUserWords(t *testing.T) {
	doc := `name: a
cuont: 3
count: 2.5
ratio: x
on: yes please
wait: 5
items:
  - size: fast
  - sise: 1s
labels: [a]
extra: ok
`
	var v outer
	errs := Decode("f.yaml", []byte(doc), &v)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`f.yaml:2: cuont: unknown key "cuont" (did you mean "count"?); valid keys: count, extra, items, labels, name, on, ratio, wait`,
		`f.yaml:3: count: "2.5" is not a whole number`,
		`f.yaml:4: ratio: "x" is not a number`,
		`f.yaml:5: on: "yes please" is not true or false`,
		`f.yaml:6: wait: "5" is not a duration: a number needs a unit; use e.g. 500ms, 10s, 1m, 1h30m`,
		`f.yaml:8: items[0].size: "fast" is not a duration; use e.g. 500ms, 10s, 1m, 1h30m`,
		`f.yaml:9: items[1].sise: unknown key "sise" (did you mean "size"?); valid keys: size`,
		`f.yaml:10: labels: must be a mapping (key: value), not a list`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v.Name != "a" || v.Extra != "ok" {
		t.Errorf("the values that fit were not decoded: %+v", v)
	}
	if errs[1].Suggest != "" || errs[0].Suggest != "count" {
		t.Errorf("suggestions %q, %q", errs[0].Suggest, errs[1].Suggest)
	}
}

func TestDecodeSyntaxAndEmpty(t *testing.T) {
	var v outer
	if errs := Decode("f.yaml", []byte("# nothing\n"), &v); len(errs) != 0 {
		t.Errorf("empty document: %v", errs)
	}
	errs := Decode("f.yaml", []byte("name: [a\n"), &v)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "f.yaml:") || !strings.Contains(errs[0].Error(), "not valid YAML") {
		t.Errorf("syntax error: %v", errs)
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"filter", "window", "aggregate", "interval", "keyBy"}
	for word, want := range map[string]string{
		"fliter": "filter", "windw": "window", "intervall": "interval", "keyby": "keyBy",
		"aggregat": "aggregate", "bogus": "", "x": "",
	} {
		if got := Suggest(word, cands); got != want {
			t.Errorf("Suggest(%q) = %q; want %q", word, got, want)
		}
	}
}
