package node

import "strings"

// TopicMatch reports whether an MQTT topic matches a topic filter: '+'
// matches exactly one level, a final '#' matches the parent level and any
// number of levels below it. Topics starting with '$' are matched only by
// filters starting with the same '$' level (MQTT 3.1.1, 4.7.2). A shared
// subscription prefix ($share/GROUP/) is stripped from the filter.
func TopicMatch(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" && !fmore {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" matches "a": the filter's rest must be exactly "#".
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
