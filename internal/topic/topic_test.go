package topic

import (
	"strings"
	"testing"
)

func TestTopicTemplateFilterAndMatch(t *testing.T) {
	tests := []struct {
		tmpl, filter, topic string
		match               bool
		fields              string // "name=value,..." in order
	}{
		{"sensors/{site}/{sensor}/temp", "sensors/+/+/temp", "sensors/berlin/s1/temp", true, "site=berlin,sensor=s1"},
		{"sensors/{site}/{sensor}/temp", "sensors/+/+/temp", "sensors/berlin/s1/hum", false, ""},
		{"sensors/{site}/{sensor}/temp", "sensors/+/+/temp", "sensors/berlin/temp", false, ""},
		{"sensors/{site}/{sensor}/temp", "sensors/+/+/temp", "sensors/berlin/s1/temp/x", false, ""},
		{"sensors/{site}/{sensor}/temp", "sensors/+/+/temp", "sensors//s1/temp", true, "site=,sensor=s1"},
		{"sensors/{site}/{rest...}", "sensors/+/#", "sensors/b/x/y/z", true, "site=b,rest=x/y/z"},
		{"sensors/{site}/{rest...}", "sensors/+/#", "sensors/b", true, "site=b,rest="},
		{"sensors/+/{kind}", "sensors/+/{kind}", "sensors/a/temp", true, "kind=temp"},
		{"a/#", "a/#", "a", true, ""},
		{"a/#", "a/#", "b/c", false, ""},
		{"{x}/y", "+/y", "$SYS/y", false, ""},
		{"$share/g/sensors/{id}", "$share/g/sensors/+", "sensors/7", true, "id=7"},
		{"plain/topic", "plain/topic", "plain/topic", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl+"~"+tc.topic, func(t *testing.T) {
			tt, err := ParseTemplate(tc.tmpl)
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			want := tc.filter
			if strings.Contains(want, "{") {
				want = strings.ReplaceAll(want, "{kind}", "+")
			}
			if tt.Filter() != want {
				t.Errorf("got filter %q; want %q", tt.Filter(), want)
			}
			if err := ValidateFilter(tt.Filter()); err != nil {
				t.Errorf("filter %q does not validate: %v", tt.Filter(), err)
			}
			var got []string
			ok := tt.Match(tc.topic, func(n, v string) { got = append(got, n+"="+v) })
			if ok != tc.match || strings.Join(got, ",") != tc.fields {
				t.Errorf("Match(%q) = %v, fields %q; want %v, %q", tc.topic, ok, strings.Join(got, ","), tc.match, tc.fields)
			}
		})
	}
}

func TestParseTopicTemplateRejects(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{"", "empty"},
		{"a/{rest...}/b", "must be the last level"},
		{"a/#/b", "must be the last level"},
		{"a/t{x}", "must be the whole level"},
		{"a/{}", "bad field name"},
		{"{x}/{x}", "captured twice"},
		{"$share/g", "want $share/GROUP/TEMPLATE"},
	}
	for _, tc := range tests {
		_, err := ParseTemplate(tc.tmpl)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTemplate(%q) = %v; want an error containing %q", tc.tmpl, err, tc.want)
		}
	}
}

func TestTopicTemplateMatchDoesNotAllocate(t *testing.T) {
	tt, err := ParseTemplate("sensors/{site}/{sensor}/{rest...}")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fn := func(name, value string) { n += len(value) }
	allocs := testing.AllocsPerRun(100, func() {
		if !tt.Match("sensors/berlin/s17/temp/c", fn) {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per Match; want 0", allocs)
	}
}

func BenchmarkTopicTemplateMatch(b *testing.B) {
	tt, _ := ParseTemplate("sensors/{site}/{sensor}/temp")
	var n int
	fn := func(name, value string) { n += len(value) }
	b.ReportAllocs()
	for b.Loop() {
		tt.Match("sensors/berlin/s17/temp", fn)
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		f, topic string
		want     bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a/b/c", true},
		{"a/#", "a", true},
		{"#", "x/y", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"$share/g/a/+", "a/b", true},
		{"a/b/c", "a/b", false},
		{"a", "a/b", false},
	}
	for _, tt := range tests {
		if got := MatchFilter(tt.f, tt.topic); got != tt.want {
			t.Errorf("MatchFilter(%q, %q) = %v; want %v", tt.f, tt.topic, got, tt.want)
		}
	}
}
