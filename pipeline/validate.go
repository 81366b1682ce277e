package pipeline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/ingest/source"
	"github.com/edgedio/edged/internal/yamlcheck"
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Validate checks the structure of the spec: names, references between steps,
// parameters that must be set, and values in range. It does not change s.
// Expressions and field references are checked by Compile against the schemas.
func (s *Spec) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, s.errAt(path, format, args...)) }

	if s.APIVersion != APIVersion {
		add("apiVersion", "must be %q, got %q", APIVersion, s.APIVersion)
	}
	if s.Kind != "Pipeline" {
		add("kind", "must be Pipeline, got %q", s.Kind)
	}
	if !nameRE.MatchString(s.Metadata.Name) {
		add("metadata.name", "must be 1-63 letters, digits, '.', '_' or '-', got %q", s.Metadata.Name)
	}
	if s.Spec.Interval < 0 {
		add("spec.interval", "must not be negative")
	}
	if d := s.Spec.IdleTimeout; d != nil && *d < 0 {
		add("spec.idleTimeout", "must not be negative (0s turns the idle rule off)")
	}

	defined := map[string]string{} // name -> kind (source, step)
	define := func(path, name, kind string) {
		if !nameRE.MatchString(name) {
			add(path+".name", "must be 1-63 letters, digits, '.', '_' or '-', got %q", name)
			return
		}
		if k, dup := defined[name]; dup {
			add(path+".name", "name %q is already used by a %s", name, k)
			return
		}
		defined[name] = kind
	}

	if len(s.Spec.Sources) == 0 {
		add("spec.sources", "at least one source is required")
	}
	for i, src := range s.Spec.Sources {
		p := fmt.Sprintf("spec.sources[%d]", i)
		define(p, src.Name, "source")
		s.validateSource(p, &src, add)
	}

	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		p := fmt.Sprintf("spec.steps[%d]", i)
		for _, in := range st.inputs() {
			if _, ok := defined[in]; !ok {
				add(p+".input", "%q is not a source or an earlier step", in)
			}
		}
		if st.Input != "" && len(st.Inputs) > 0 {
			add(p+".inputs", "set input or inputs, not both")
		}
		define(p, st.Name, "step")
		ops := st.ops()
		switch len(ops) {
		case 0:
			add(p, "step %q has no operator (one of %s)", st.Name, opKeys())
		case 1:
			s.validateStep(p, st, ops[0], add)
		default:
			add(p, "step %q has several operators (%v); give each its own step", st.Name, ops)
		}
	}

	if len(s.Spec.Sinks) == 0 {
		add("spec.sinks", "at least one sink is required")
	}
	sinkNames := map[string]bool{}
	for i, sk := range s.Spec.Sinks {
		p := fmt.Sprintf("spec.sinks[%d]", i)
		if !nameRE.MatchString(sk.Name) {
			add(p+".name", "must be 1-63 letters, digits, '.', '_' or '-', got %q", sk.Name)
		} else if sinkNames[sk.Name] {
			add(p+".name", "sink name %q used twice", sk.Name)
		}
		sinkNames[sk.Name] = true
		if sk.Input != "" {
			if _, ok := defined[sk.Input]; !ok {
				add(p+".input", "%q is not a source or a step", sk.Input)
			}
		}
		switch sk.Type {
		case "", "stdout", "log", "uplink":
		case "file":
			if sk.Path == "" {
				add(p+".path", "a file sink needs a path")
			}
		case "mqtt":
			if sk.Topic == "" {
				add(p+".topic", "an mqtt sink needs a topic")
			}
			if sk.QoS < 0 || sk.QoS > 1 {
				add(p+".qos", "must be 0 or 1")
			}
		default:
			add(p+".type", "unknown sink type %q%s (want stdout, file, mqtt or uplink)", sk.Type,
				didYouMean(sk.Type, []string{"stdout", "file", "mqtt", "uplink"}))
		}
		switch sk.Format {
		case "", "jsonl", "csv":
		default:
			add(p+".format", "unknown format %q (want jsonl or csv)", sk.Format)
		}
	}
	return errors.Join(errs...)
}

func (s *Spec) validateSource(p string, src *Source, add func(string, string, ...any)) {
	switch src.Format {
	case "", "json", "csv", "senml", "raw":
	default:
		add(p+".format", "unknown format %q (want json, csv, senml or raw)", src.Format)
	}
	if len(src.Fields) == 0 && src.Bus == nil {
		add(p+".fields", "a source needs at least one field")
	}
	if src.CSV != nil && src.Format != "csv" {
		add(p+".csv", "only for format csv")
	}
	kinds := map[string]engine.Kind{}
	for j, f := range src.fields() {
		fp := fmt.Sprintf("%s.fields[%d]", p, j)
		k, ok := engine.ParseKind(f.Type)
		if !ok || k == engine.KindList {
			add(fp+".type", "unknown type %q (want number, string, bool or time)", f.Type)
		}
		if f.Name == "" {
			add(fp+".name", "field without a name")
		} else if _, dup := kinds[f.Name]; dup {
			add(fp+".name", "field %q declared twice", f.Name)
		}
		kinds[f.Name] = k
	}
	if src.EventTime != "" {
		if k, ok := kinds[src.EventTime]; !ok {
			add(p+".eventTime", "%q is not a field of the source", src.EventTime)
		} else if k != engine.KindTime {
			add(p+".eventTime", "field %q is of type %s; the event time needs a field of type time (read as timeFormat: unix_ms, unix_s or rfc3339)", src.EventTime, k)
		}
	}
	switch src.TimeFormat {
	case "", "unix_ms", "unix_s", "rfc3339":
	default:
		add(p+".timeFormat", "unknown time format %q (want unix_ms, unix_s or rfc3339)", src.TimeFormat)
	}
	if src.Watermark != nil {
		if src.EventTime == "" {
			add(p+".watermark", "a watermark needs eventTime")
		}
		if *src.Watermark < 0 {
			add(p+".watermark", "must not be negative")
		}
	}
	if d := src.IdleTimeout; d != nil {
		if *d < 0 {
			add(p+".idleTimeout", "must not be negative (0s turns the idle rule off)")
		}
		if src.Watermark == nil {
			add(p+".idleTimeout", "an idle timeout needs a watermark")
		}
	}
	for j, k := range src.Key {
		if _, ok := kinds[k]; !ok {
			add(fmt.Sprintf("%s.key[%d]", p, j), "%q is not a field of the source", k)
		}
	}
	if c := src.CSV; c != nil && len(c.Columns) > 0 {
		if c.HasHeader() {
			add(p+".csv.columns", "only with header: false (a header row names the columns)")
		}
		seen := map[string]bool{}
		for j, col := range c.Columns {
			cp := fmt.Sprintf("%s.csv.columns[%d]", p, j)
			switch _, ok := kinds[col]; {
			case col == "-":
			case !ok:
				add(cp, "%q is not a field of the source (use \"-\" for a column to ignore)", col)
			case seen[col]:
				add(cp, "column %q declared twice", col)
			}
			seen[col] = true
		}
	}
	if src.MQTT != nil {
		if len(src.MQTT.Topics) == 0 {
			add(p+".mqtt.topics", "at least one topic filter is required")
		}
		if src.MQTT.QoS < 0 || src.MQTT.QoS > 1 {
			add(p+".mqtt.qos", "must be 0 or 1")
		}
		for j, t := range src.MQTT.Topics {
			if bus.Reserved(t) {
				add(fmt.Sprintf("%s.mqtt.topics[%d]", p, j), "topics under %s are reserved for local-bus readings (declare the sensor with bus: instead)", bus.TopicPrefix)
			}
			if source.Reserved(t) {
				add(fmt.Sprintf("%s.mqtt.topics[%d]", p, j), "topics under %s are reserved for http, file and custom sources (declare them with http:, file: or custom: instead)", source.TopicPrefix)
			}
		}
	}
	if src.Bus != nil {
		s.validateBus(p, src, add)
	}
	s.validateInputs(p, src, add)
}

// validateInputs checks the http, file and custom blocks of a source, and
// that it reads at most one input.
func (s *Spec) validateInputs(p string, src *Source, add func(string, string, ...any)) {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"mqtt", src.MQTT != nil}, {"bus", src.Bus != nil}, {"http", src.HTTP != nil}, {"file", src.File != nil}, {"custom", src.Custom != ""}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 && !(len(kinds) == 2 && kinds[0] == "mqtt" && kinds[1] == "bus") { // validateBus says that one
		add(p, "a source reads one input, not %s (declare one source per input and union them)", strings.Join(kinds, " and "))
	}
	if src.HTTP != nil {
		switch src.Format {
		case "", "json", "senml":
		default:
			add(p+".format", "an http source takes JSON Lines: format json or senml, not %s", src.Format)
		}
		if src.HTTP.MaxBodyBytes < 0 {
			add(p+".http.maxBodyBytes", "must not be negative (0 means %d)", DefaultHTTPMaxBody)
		}
	}
	if src.File != nil {
		if err := src.File.Validate(); err != nil {
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				// "file.KEY: message": at the key's own line.
				if k, m, ok := strings.Cut(e.Error(), ": "); ok && strings.HasPrefix(k, "file.") {
					add(p+"."+k, "%s", m)
				} else {
					add(p+".file", "%v", e)
				}
			}
		}
	}
	if src.Custom != "" && !nameRE.MatchString(src.Custom) {
		add(p+".custom", "%q is not a source name (letters, digits, '.', '_', '-')", src.Custom)
	}
}

// validateBus checks the bus block of a source; the bus package names the
// keys under it.
func (s *Spec) validateBus(p string, src *Source, add func(string, string, ...any)) {
	if src.MQTT != nil {
		add(p+".bus", "a source reads mqtt or bus, not both")
	}
	switch src.Format {
	case "", "json":
	default:
		add(p+".format", "a bus source's readings are json, not %s", src.Format)
	}
	if src.TimeFormat != "" && src.TimeFormat != "unix_ms" {
		add(p+".timeFormat", "a bus source's time is unix_ms, not %s", src.TimeFormat)
	}
	err := src.Bus.Validate()
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ke *bus.KeyError
		if errors.As(e, &ke) {
			add(p+".bus."+ke.Key, "%s", ke.Msg)
		} else {
			add(p+".bus", "%v", e)
		}
	}
}

// fields returns the declared schema of the source, or for a bus source
// without one the sensor's.
func (src *Source) fields() []FieldSpec {
	if len(src.Fields) > 0 || src.Bus == nil {
		return src.Fields
	}
	var out []FieldSpec
	for _, f := range src.Bus.Schema() {
		out = append(out, FieldSpec{Name: f.Name, Type: f.Kind})
	}
	return out
}

// inputs returns the names the step reads from, as written.
func (st *Step) inputs() []string {
	if st.Input != "" {
		return []string{st.Input}
	}
	return st.Inputs
}

// ops returns the operator keys set on the step.
func (st *Step) ops() []string {
	var ops []string
	set := func(ok bool, name string) {
		if ok {
			ops = append(ops, name)
		}
	}
	set(st.Filter != "", "filter")
	set(st.Project != nil, "project")
	set(st.Extend != nil, "extend")
	set(st.FlatMap != nil, "flatMap")
	set(st.KeyBy != nil, "keyBy")
	set(st.Require != nil, "require")
	set(st.Union != nil, "union")
	set(st.Enrich != nil, "enrich")
	set(st.Dedup != nil, "dedup")
	set(st.Window != nil, "window")
	set(st.Aggregate != nil, "aggregate")
	set(st.Threshold != nil, "threshold")
	set(st.RateOfChange != nil, "rateOfChange")
	set(st.NOfM != nil, "nOfM")
	set(st.Reduce != nil, "reduceByKey")
	set(st.CountByValue != nil, "countByValue")
	set(st.DStream != nil, "dstreamWindow")
	set(st.UpdateState != nil, "updateStateByKey")
	set(st.History != nil, "history")
	set(st.HistoryJoin != nil, "historyJoin")
	set(st.Anomaly != nil, "anomaly")
	return ops
}

func opKeys() string {
	k := []string{"filter", "project", "extend", "flatMap", "keyBy", "require", "union", "enrich",
		"dedup", "window", "aggregate", "threshold", "rateOfChange", "nOfM", "reduceByKey",
		"countByValue", "dstreamWindow", "updateStateByKey", "history", "historyJoin", "anomaly"}
	sort.Strings(k)
	return fmt.Sprint(k)
}

func validOutput(mode string) bool {
	switch mode {
	case "", "append", "update", "complete":
		return true
	}
	return false
}

func (s *Spec) validateStep(p string, st *Step, op string, add func(string, string, ...any)) {
	named := func(path string, cols []NamedExpr, what string) {
		if len(cols) == 0 {
			add(path, "at least one %s is required", what)
		}
		for j, c := range cols {
			if len(c) != 1 {
				add(fmt.Sprintf("%s[%d]", path, j), "each %s is one `name: expression` pair, got %d keys", what, len(c))
			}
		}
	}
	positive := func(path string, ok bool) {
		if !ok {
			add(path, "must be positive")
		}
	}
	switch op {
	case "project":
		named(p+".project", st.Project, "column")
	case "extend":
		named(p+".extend", st.Extend, "column")
	case "flatMap":
		if len(st.FlatMap) == 0 {
			add(p+".flatMap", "at least one output row is required")
		}
		for j, row := range st.FlatMap {
			named(fmt.Sprintf("%s.flatMap[%d]", p, j), row, "column")
		}
	case "keyBy":
		if len(st.KeyBy) == 0 {
			add(p+".keyBy", "at least one field is required")
		}
	case "require":
		if len(st.Require) == 0 {
			add(p+".require", "at least one field is required")
		}
	case "union":
		if len(st.Inputs) < 2 {
			add(p+".inputs", "union needs at least two inputs")
		}
	case "enrich":
		e := st.Enrich
		if e.On == "" {
			add(p+".enrich.on", "the record field to match is required")
		}
		if (len(e.Rows) > 0) == (e.File != "") {
			add(p+".enrich", "give the table as rows or as file, exactly one")
		}
		if len(e.Rows) > 0 && len(e.Fields) == 0 {
			add(p+".enrich.fields", "inline rows need fields")
		}
		for j, r := range e.Rows {
			if len(r) != len(e.Fields) {
				add(fmt.Sprintf("%s.enrich.rows[%d]", p, j), "has %d values for %d fields", len(r), len(e.Fields))
			}
		}
	case "dedup":
		if len(st.Dedup.Keys) == 0 {
			add(p+".dedup.keys", "at least one key field is required")
		}
	case "window":
		w := st.Window
		switch w.Type {
		case "tumbling":
			positive(p+".window.size", w.Size > 0)
		case "sliding":
			positive(p+".window.size", w.Size > 0)
			positive(p+".window.slide", w.Slide > 0)
		case "session":
			positive(p+".window.gap", w.Gap > 0)
		case "count":
			positive(p+".window.count", w.Count > 0)
		default:
			if w.Type == "" {
				add(p+".window.type", "required: tumbling, sliding, session or count")
			} else {
				add(p+".window.type", "unknown window type %q%s (want tumbling, sliding, session or count)", w.Type,
					didYouMean(w.Type, []string{"tumbling", "sliding", "session", "count"}))
			}
		}
		if w.Lateness < 0 {
			add(p+".window.lateness", "must not be negative")
		}
		if !validOutput(w.Output) {
			add(p+".window.output", "unknown output mode %q (want append, update or complete)", w.Output)
		}
		named(p+".window.aggregates", w.Aggregates, "aggregate")
	case "aggregate":
		if !validOutput(st.Aggregate.Output) || st.Aggregate.Output == "append" {
			add(p+".aggregate.output", "unknown output mode %q (want update or complete)", st.Aggregate.Output)
		}
		named(p+".aggregate.aggregates", st.Aggregate.Aggregates, "aggregate")
	case "threshold":
		t := st.Threshold
		if t.Value == "" {
			add(p+".threshold.value", "the value field is required")
		}
		if (t.Above == nil) == (t.Below == nil) {
			add(p+".threshold", "set exactly one of above and below")
		}
	case "rateOfChange":
		r := st.RateOfChange
		if r.Value == "" {
			add(p+".rateOfChange.value", "the value field is required")
		}
		positive(p+".rateOfChange.maxRate", r.MaxRate > 0)
	case "nOfM":
		n := st.NOfM
		positive(p+".nOfM.n", n.N > 0)
		if n.M < n.N || n.M > 64 {
			add(p+".nOfM.m", "must be between n (%d) and 64, got %d", n.N, n.M)
		}
		conds := 0
		for _, set := range []bool{n.When != "", n.Above != nil, n.Below != nil} {
			if set {
				conds++
			}
		}
		if conds != 1 {
			add(p+".nOfM", "set exactly one of when, above and below")
		}
		if n.When == "" && n.Value == "" {
			add(p+".nOfM.value", "above/below need the value field")
		}
	case "reduceByKey":
		if st.Reduce.Key == "" || st.Reduce.Value == "" {
			add(p+".reduceByKey", "key and value fields are required")
		}
	case "countByValue":
		if st.CountByValue.Field == "" {
			add(p+".countByValue.field", "the field is required")
		}
	case "dstreamWindow":
		d := st.DStream
		positive(p+".dstreamWindow.size", d.Size > 0)
		if d.Slide < 0 {
			add(p+".dstreamWindow.slide", "must not be negative")
		}
		ops := []string{"window", "countByWindow", "countByValueAndWindow", "groupByKeyAndWindow", "reduceByWindow", "reduceByKeyAndWindow"}
		if !slices.Contains(ops, d.Op) {
			add(p+".dstreamWindow.op", "unknown op %q%s (want %s)", d.Op, didYouMean(d.Op, ops), strings.Join(ops, ", "))
		}
	case "history":
		h := st.History
		if !nameRE.MatchString(h.Table) {
			add(p+".history.table", "must be 1-63 letters, digits, '.', '_' or '-', got %q", h.Table)
		}
		if len(h.Keys) == 0 {
			add(p+".history.keys", "at least one key column is required")
		}
		if h.Keep < 0 {
			add(p+".history.keep", "must not be negative")
		}
		if h.MaxRows < 0 {
			add(p+".history.maxRows", "must not be negative")
		}
	case "historyJoin":
		s.validateLookup(p+".historyJoin", &st.HistoryJoin.LookupSpec, false, add)
		if len(st.HistoryJoin.Fields) == 0 {
			add(p+".historyJoin.fields", "at least one table column is required")
		}
	case "anomaly":
		a := st.Anomaly
		if a.Value == "" {
			add(p+".anomaly.value", "the value field is required")
		}
		if b := a.Baseline; b != nil {
			s.validateLookup(p+".anomaly.baseline", &b.LookupSpec, true, add)
			if b.Field == "" {
				add(p+".anomaly.baseline.field", "the table column holding the baseline is required")
			}
		}
	case "updateStateByKey":
		u := st.UpdateState
		if u.Key == "" {
			add(p+".updateStateByKey.key", "the key field is required")
		}
		if u.ExpireAfter < 0 {
			add(p+".updateStateByKey.expireAfter", "must not be negative")
		}
	}
}

// validateLookup checks a history lookup; keys may be left out of an
// anomaly baseline (they default to the step's).
func (s *Spec) validateLookup(p string, l *LookupSpec, keysOptional bool, add func(string, string, ...any)) {
	if !nameRE.MatchString(l.Table) {
		add(p+".table", "must be 1-63 letters, digits, '.', '_' or '-', got %q", l.Table)
	}
	if len(l.Keys) == 0 && !keysOptional {
		add(p+".keys", "the table's key columns are required")
	}
	for _, d := range []struct {
		key string
		v   Span
	}{{"align", l.Align}, {"offset", l.Offset}} {
		if d.v < 0 {
			add(p+"."+d.key, "must not be negative")
		}
	}
	switch {
	case l.Periods < 0 || l.Periods > engine.MaxPeriods:
		add(p+".periods", "must be between 1 and %d (one read per period), got %d", engine.MaxPeriods, l.Periods)
	case l.Offset == 0:
		add(p+".offset", "required: how far back the rows are read (24h: the same time yesterday)")
	}
}

// didYouMean returns ` (did you mean "x"?)` for the option nearest to got, or
// "" when none is near.
func didYouMean(got string, options []string) string {
	if s := yamlcheck.Suggest(got, options); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// CheckBuses calls check with the bus block of every bus source and returns
// its errors located like Validate's (a *bus.KeyError is placed at its key
// under the source's bus block). `edged check` uses it to reject a bus that
// does not exist on this machine.
func (s *Spec) CheckBuses(check func(*bus.Config) error) error {
	var errs []error
	for i := range s.Spec.Sources {
		src := &s.Spec.Sources[i]
		if src.Bus == nil {
			continue
		}
		p := fmt.Sprintf("spec.sources[%d].bus", i)
		if err := check(src.Bus); err != nil {
			var ke *bus.KeyError
			if errors.As(err, &ke) {
				errs = append(errs, s.errAt(p+"."+ke.Key, "%s", ke.Msg))
			} else {
				errs = append(errs, s.errAt(p, "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}
