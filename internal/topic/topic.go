package topic

import (
	"errors"
	"fmt"
	"strings"
)

// Template is a topic pattern whose levels may capture fields, for
// example "sensors/{site}/{sensor}/temp". Parse one with ParseTemplate.
// A Template is immutable and safe for concurrent use.
type Template struct {
	src    string
	filter string
	share  string // "$share/GROUP/" prefix of the filter, or ""
	levels []tmplLevel
	fields []string
	tail   bool // the last level is {name...} or '#'
}

type tmplLevel struct {
	lit   string // literal level, when kind == levelLiteral
	kind  uint8
	field string // captured field name ("" for an anonymous '+' or '#')
}

const (
	levelLiteral uint8 = iota
	levelOne           // {name} or +
	levelRest          // {name...} or #
)

// ParseTemplate parses a topic template. Each level is one of:
//
//	literal     matches itself
//	{name}      matches one level and captures it as field name ('+')
//	+           matches one level, captures nothing
//	{name...}   last level only: matches the rest of the topic, zero or
//	            more levels, and captures it (without the leading '/') ('#')
//	#           last level only: matches the rest, captures nothing
//
// A "$share/GROUP/" prefix is kept in the subscription filter and ignored
// when matching (brokers deliver shared messages under their real topic).
// A level that mixes braces with other text ("t{x}"), an empty or repeated
// field name, or a rest capture that is not last is an error.
func ParseTemplate(tmpl string) (*Template, error) {
	t := &Template{src: tmpl}
	body := tmpl
	if rest, ok := strings.CutPrefix(tmpl, "$share/"); ok {
		group, b, ok := strings.Cut(rest, "/")
		if !ok || group == "" || b == "" || strings.ContainsAny(group, "+#{}") {
			return nil, fmt.Errorf("topic template %q: want $share/GROUP/TEMPLATE", tmpl)
		}
		t.share = "$share/" + group + "/"
		body = b
	}
	if body == "" {
		return nil, fmt.Errorf("topic template %q is empty", tmpl)
	}
	parts := strings.Split(body, "/")
	filter := make([]string, len(parts))
	seen := map[string]bool{}
	for i, p := range parts {
		last := i == len(parts)-1
		var l tmplLevel
		switch {
		case p == "+":
			l.kind = levelOne
		case p == "#":
			l.kind = levelRest
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name := p[1 : len(p)-1]
			l.kind = levelOne
			if n, ok := strings.CutSuffix(name, "..."); ok {
				name = n
				l.kind = levelRest
			}
			if name == "" || strings.ContainsAny(name, "{}+#/") {
				return nil, fmt.Errorf("topic template %q: level %d %q: bad field name", tmpl, i+1, p)
			}
			if seen[name] {
				return nil, fmt.Errorf("topic template %q: field %q captured twice", tmpl, name)
			}
			seen[name] = true
			l.field = name
			t.fields = append(t.fields, name)
		case strings.ContainsAny(p, "{}+#"):
			return nil, fmt.Errorf("topic template %q: level %d %q: a wildcard or {field} must be the whole level", tmpl, i+1, p)
		default:
			l.lit = p
		}
		if l.kind == levelRest {
			if !last {
				return nil, fmt.Errorf("topic template %q: level %d %q: a rest capture ({name...} or #) must be the last level", tmpl, i+1, p)
			}
			t.tail = true
		}
		switch l.kind {
		case levelOne:
			filter[i] = "+"
		case levelRest:
			filter[i] = "#"
		default:
			filter[i] = p
		}
		t.levels = append(t.levels, l)
	}
	t.filter = t.share + strings.Join(filter, "/")
	return t, nil
}

// String returns the template as parsed.
func (t *Template) String() string { return t.src }

// Filter returns the MQTT subscription filter for the template, e.g.
// "sensors/+/+/temp" for "sensors/{site}/{sensor}/temp".
func (t *Template) Filter() string { return t.filter }

// Fields returns the captured field names in template order. The caller
// must not modify the slice.
func (t *Template) Fields() []string { return t.fields }

// Match reports whether topic matches the template and, if it does, calls
// fn for each captured field in template order with the field name and the
// level's text. fn is not called when topic does not match (matching is
// checked before any call). The values are substrings of topic, so Match
// allocates nothing. fn may be nil. As MQTT requires, a topic starting with
// '$' does not match a template starting with a wildcard.
func (t *Template) Match(topic string, fn func(name, value string)) bool {
	if !t.match(topic, nil) {
		return false
	}
	if fn != nil && len(t.fields) > 0 {
		t.match(topic, fn)
	}
	return true
}

func (t *Template) match(topic string, fn func(name, value string)) bool {
	if len(topic) > 0 && topic[0] == '$' && t.levels[0].kind != levelLiteral {
		return false
	}
	rest := topic
	more := true // whether rest still holds at least one level
	for _, l := range t.levels {
		if l.kind == levelRest {
			// '#' also matches the parent level: "a/#" matches "a".
			if !more {
				rest = ""
			}
			if fn != nil && l.field != "" {
				fn(l.field, rest)
			}
			return true
		}
		if !more {
			return false
		}
		var level string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			level, rest = rest[:i], rest[i+1:]
		} else {
			level, rest, more = rest, "", false
		}
		switch l.kind {
		case levelLiteral:
			if level != l.lit {
				return false
			}
		case levelOne:
			if fn != nil && l.field != "" {
				fn(l.field, level)
			}
		}
	}
	return !more
}

// MatchFilter reports whether topic matches the subscription filter f ('+'
// one level, '#' the rest; "$share/GROUP/" prefixes are ignored; a topic
// starting with '$' matches no filter starting with a wildcard).
func MatchFilter(f, topic string) bool {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if _, filter, ok := strings.Cut(rest, "/"); ok {
			f = filter
		}
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (fmore && frest == "#")
		}
		f, topic = frest, trest
	}
}

// ValidateFilter checks an MQTT topic filter, including the
// "$share/GROUP/filter" form of shared subscriptions.
func ValidateFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	if strings.IndexByte(f, 0) >= 0 {
		return fmt.Errorf("topic filter %q contains a NUL byte", f)
	}
	if len(f) > 65535 {
		return fmt.Errorf("topic filter is %d bytes; MQTT allows 65535", len(f))
	}
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || group == "" || filter == "" {
			return fmt.Errorf("shared subscription %q: want $share/GROUP/FILTER", f)
		}
		if strings.ContainsAny(group, "+#") {
			return fmt.Errorf("shared subscription %q: the group name must not contain + or #", f)
		}
		f = filter
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("topic filter %q: '#' must be the last level", f)
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("topic filter %q: level %q mixes a wildcard with other characters", f, l)
		}
	}
	return nil
}
