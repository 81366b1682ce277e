package runner

import (
	"bytes"
	"strconv"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/pipeline"
)

// fenceByEnd reports whether a straddling output (of an epoch whose
// watermark range contains the previous owner's mark) can be attributed by
// its window end: every window step is an event-time tumbling, sliding or
// session window in append mode, which is final exactly when its end <=
// watermark - lateness. It returns the largest lateness.
func fenceByEnd(spec *pipeline.Spec) (lateness int64, ok bool) {
	if spec == nil {
		return 0, false
	}
	for _, st := range spec.Spec.Steps {
		w := st.Window
		if w == nil {
			continue
		}
		switch w.Type {
		case "tumbling", "sliding", "session":
		default:
			return 0, false
		}
		if w.Output != "" && w.Output != "append" {
			return 0, false
		}
		lateness = max(lateness, w.Lateness.Milliseconds())
		ok = true
	}
	return lateness, ok
}

// committedBefore reports whether an output computed in an epoch that
// moved the partition's watermark from `from` to `to` was already committed
// by the previous owner, whose outputs went through watermark fence
// (Marker). Outside the straddling case the epoch decides; inside it, the
// window end of an append-mode window output does; anything else is
// emitted (a possible duplicate, never a loss).
func (r *Runner) committedBefore(o *engine.Output, from, to, fence int64) bool {
	switch {
	case fence == engine.NoWatermark:
		return false
	case to <= fence:
		return true
	case from >= fence:
		return false
	}
	late, ok := fenceByEnd(r.spec)
	if !ok {
		return false
	}
	end, ok := jsonInt(o.Data, `"window_end":`)
	if !ok {
		end, ok = jsonInt(o.Data, `"session_end":`)
	}
	return ok && end+late <= fence
}

// jsonInt finds key (with its quotes and colon) in a flat JSON object and
// parses the integer after it.
func jsonInt(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	j := 0
	for j < len(b) && (b[j] == '-' || (b[j] >= '0' && b[j] <= '9')) {
		j++
	}
	v, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return v, err == nil
}
