package decode

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// tmpl is a test TopicMatcher with the syntax of topic.Template's
// {field} levels (no wildcards).
type tmpl struct{ levels []string }

func newTmpl(s string) *tmpl { return &tmpl{levels: strings.Split(s, "/")} }

func (t *tmpl) Fields() []string {
	var f []string
	for _, l := range t.levels {
		if strings.HasPrefix(l, "{") {
			f = append(f, strings.Trim(l, "{}"))
		}
	}
	return f
}

func (t *tmpl) Match(topic string, fn func(name, value string)) bool {
	for pass := range 2 { // check, then capture; no allocation
		rest, more := topic, true
		for _, l := range t.levels {
			if !more {
				return false
			}
			var level string
			level, rest, more = strings.Cut(rest, "/")
			switch {
			case !strings.HasPrefix(l, "{"):
				if l != level {
					return false
				}
			case pass == 1 && fn != nil:
				fn(l[1:len(l)-1], level)
			}
		}
		if more {
			return false
		}
	}
	return true
}

// readingSchema is the schema most format tests decode into.
var readingSchema = engine.MustSchema(
	engine.Field{Name: "site", Kind: engine.KindString},
	engine.Field{Name: "sensor", Kind: engine.KindString},
	engine.Field{Name: "ts", Kind: engine.KindTime},
	engine.Field{Name: "temp", Kind: engine.KindNumber},
)

func readingConfig(format string) Config {
	return Config{Schema: readingSchema, Format: format, TimeField: "ts", KeyFields: []string{"site", "sensor"}}
}

func mustNew(t testing.TB, cfg Config) Decoder {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// rec is a decoded record in a comparable form.
type rec struct {
	vals string
	time int64
	key  string
}

func recs(b *engine.Batch) []rec {
	var out []rec
	for _, r := range b.Recs {
		out = append(out, rec{valsString(r.Vals), r.Time, r.Key})
	}
	return out
}

func reading(site, sensor string, ts int64, temp float64) rec {
	vals := []engine.Value{engine.Null, engine.Null, engine.Time(ts), engine.Number(temp)}
	if site != "" {
		vals[0] = engine.String(site)
	}
	if sensor != "" {
		vals[1] = engine.String(sensor)
	}
	return rec{valsString(vals), ts, site + "/" + sensor}
}

func equalRecs(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecoderFormats(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		format  string
		payload string
		topic   string
		want    []rec
	}{
		{name: "json object", format: FormatJSON,
			payload: `{"site":"a","sensor":"s1","ts":1000,"temp":21.5}`,
			want:    []rec{reading("a", "s1", 1000, 21.5)}},
		{name: "json array", format: FormatJSON,
			payload: ` [ {"site":"a","sensor":"s1","ts":1000,"temp":1}, {"site":"a","sensor":"s2","ts":2000,"temp":2} ] `,
			want:    []rec{reading("a", "s1", 1000, 1), reading("a", "s2", 2000, 2)}},
		{name: "json empty array", format: FormatJSON, payload: `[]`},
		{name: "csv with a header row", format: FormatCSV,
			payload: "site,sensor,ts,temp\na,s1,1000,1\na,s2,2000,2\n",
			want:    []rec{reading("a", "s1", 1000, 1), reading("a", "s2", 2000, 2)}},
		{name: "csv header with BOM, CRLF, other order, extra column, blank lines", format: FormatCSV,
			payload: "\ufeff temp ,extra,ts,sensor,site\r\n\r\n1,x,1000,s1,a\r\n\n2,y,2000,s2,a",
			want:    []rec{reading("a", "s1", 1000, 1), reading("a", "s2", 2000, 2)}},
		{name: "csv quoted cells", format: FormatCSV,
			payload: "site,sensor,ts,temp\n\"a,b\",\"s \"\"1\"\"\nx\",1000,\"1\"\n",
			want:    []rec{reading("a,b", "s \"1\"\nx", 1000, 1)}},
		{name: "csv declared columns, no header", format: FormatCSV,
			cfg:     func(c *Config) { c.CSVColumns = []string{"sensor", SkipColumn, "ts", "temp", "site"} },
			payload: "s1,ignored,1000,1,a\ns2,,2000,2,a\n",
			want:    []rec{reading("a", "s1", 1000, 1), reading("a", "s2", 2000, 2)}},
		{name: "csv declared columns, one row without line end", format: FormatCSV,
			cfg:     func(c *Config) { c.CSVColumns = []string{"site", "sensor", "ts", "temp"} },
			payload: "a,s1,1000,1",
			want:    []rec{reading("a", "s1", 1000, 1)}},
		{name: "csv header only", format: FormatCSV, payload: "site,sensor,ts,temp\n"},
		{name: "topic captures fill fields and override the payload", format: FormatJSON,
			cfg: func(c *Config) {
				c.Topics = []TopicMatcher{newTmpl("other/{site}"), newTmpl("sensors/{site}/{sensor}/temp")}
			},
			topic:   "sensors/hall/s1/temp",
			payload: `{"sensor":"spoofed","ts":1000,"temp":1}`,
			want:    []rec{reading("hall", "s1", 1000, 1)}},
		{name: "topic captures apply to every record of a message", format: FormatCSV,
			cfg:     func(c *Config) { c.Topics = []TopicMatcher{newTmpl("sensors/{site}/{sensor}/temp")} },
			topic:   "sensors/hall/s1/temp",
			payload: "ts,temp\n1000,1\n2000,2\n",
			want:    []rec{reading("hall", "s1", 1000, 1), reading("hall", "s1", 2000, 2)}},
		{name: "topic captures the event time", format: FormatJSON,
			cfg:     func(c *Config) { c.Topics = []TopicMatcher{newTmpl("t/{ts}")} },
			topic:   "t/2024-11-24T12:06:40.123Z",
			payload: `{"site":"a","sensor":"s1","temp":1}`,
			want:    []rec{reading("a", "s1", 1732450000123, 1)}},
		{name: "a topic no template matches captures nothing", format: FormatJSON,
			cfg:     func(c *Config) { c.Topics = []TopicMatcher{newTmpl("sensors/{site}/{sensor}/temp")} },
			topic:   "elsewhere",
			payload: `{"site":"a","sensor":"s1","ts":1000,"temp":1}`,
			want:    []rec{reading("a", "s1", 1000, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := readingConfig(tt.format)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d := mustNew(t, cfg)
			b := engine.NewBatch(readingSchema)
			origin := engine.Origin{Source: "src", Partition: 3, Offset: 42}
			if err := d.Decode(b, Input{Payload: []byte(tt.payload), Topic: []byte(tt.topic), Origin: origin}); err != nil {
				t.Fatalf("Decode(%q): %v", tt.payload, err)
			}
			if got := recs(b); !equalRecs(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
			for i, r := range b.Recs {
				if r.Origin != origin {
					t.Errorf("record %d: got origin %+v; want %+v", i, r.Origin, origin)
				}
			}
		})
	}
}

func TestDecoderRejects(t *testing.T) {
	tests := []struct {
		name      string
		cfg       func(*Config)
		format    string
		payload   string
		topic     string
		wantIndex int
		wantField string
		wantErr   error // a sentinel, or nil
		wantMsg   string
	}{
		{name: "json syntax", format: FormatJSON, payload: `{"ts":1`, wantMsg: "unexpected end of input"},
		{name: "json scalar", format: FormatJSON, payload: `3`, wantMsg: `unexpected '3', want '{' or '['`},
		{name: "json array of scalars", format: FormatJSON, payload: `[1]`, wantIndex: 1, wantMsg: "an array element must be an object"},
		{name: "json array element without event time", format: FormatJSON,
			payload:   `[{"ts":1000},{"sensor":"s2"},{"ts":3000}]`,
			wantIndex: 2, wantField: "ts", wantErr: ErrNoEventTime,
			wantMsg: `decode: record 2: field "ts": no event time`},
		{name: "json invalid UTF-8", format: FormatJSON, payload: "{\"ts\":1,\"sensor\":\"\xff\"}",
			wantField: "sensor", wantErr: ErrInvalidUTF8, wantMsg: `field "sensor": text is not valid UTF-8`},
		{name: "json trailing garbage after array", format: FormatJSON, payload: `[{"ts":1}] x`, wantMsg: "end of input after the JSON value"},
		{name: "csv header misses the time column", format: FormatCSV, payload: "site,sensor,temp\na,s1,1\n",
			wantField: "ts", wantMsg: "missing column in the header (have site, sensor, temp)"},
		{name: "csv empty event-time cell", format: FormatCSV, payload: "site,sensor,ts,temp\na,s1,1000,1\na,s2,,2\n",
			wantIndex: 2, wantField: "ts", wantErr: ErrNoEventTime, wantMsg: "record 2: field \"ts\": no event time"},
		{name: "csv wrong column count", format: FormatCSV, payload: "site,sensor,ts,temp\na,s1,1000\n",
			wantIndex: 1, wantMsg: "row has 3 columns; header has 4"},
		{name: "csv declared columns, wrong count", format: FormatCSV,
			cfg:     func(c *Config) { c.CSVColumns = []string{"site", "sensor", "ts", "temp"} },
			payload: "a,s1,1000,1,9\n", wantIndex: 1, wantMsg: "row has 5 columns; csv.columns declares 4"},
		{name: "csv invalid UTF-8", format: FormatCSV, payload: "site,sensor,ts,temp\na,\xc3,1000,1\n",
			wantIndex: 1, wantField: "sensor", wantErr: ErrInvalidUTF8},
		{name: "csv bad number", format: FormatCSV, payload: "site,sensor,ts,temp\na,s1,1000,hot\n",
			wantIndex: 1, wantField: "temp", wantMsg: `want number, got string "hot"`},
		{name: "csv bare quote", format: FormatCSV, payload: "site,sensor,ts,temp\na,s\"1,1000,1\n",
			wantIndex: 1, wantMsg: "quote in an unquoted cell"},
		{name: "csv quote never closed", format: FormatCSV, payload: "site,sensor,ts,temp\na,\"s1,1000,1\n",
			wantIndex: 1, wantMsg: "quoted cell is never closed"},
		{name: "csv text after a closing quote", format: FormatCSV, payload: "site,sensor,ts,temp\na,\"s1\"x,1000,1\n",
			wantIndex: 1, wantMsg: "after a quoted cell"},
		{name: "csv duplicate header column", format: FormatCSV, payload: "ts,ts\n1,2\n", wantField: "ts", wantMsg: "column appears twice"},
		{name: "capture that does not fit its field", format: FormatJSON,
			cfg: func(c *Config) {
				c.Schema = engine.MustSchema(engine.Field{Name: "id", Kind: engine.KindNumber}, engine.Field{Name: "ts", Kind: engine.KindTime})
				c.KeyFields = nil
				c.Topics = []TopicMatcher{newTmpl("dev/{id}")}
			},
			topic: "dev/abc", payload: `{"ts":1}`, wantField: "id",
			wantMsg: `field "id": want number, got string "abc" (captured from topic "dev/abc")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := readingConfig(tt.format)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d := mustNew(t, cfg)
			b := engine.NewBatch(cfg.Schema)
			b.AppendValues(7, make([]engine.Value, cfg.Schema.Len())...) // a record from an earlier message
			err := d.Decode(b, Input{Payload: []byte(tt.payload), Topic: []byte(tt.topic)})
			if err == nil {
				t.Fatalf("Decode(%q) = nil; want an error", tt.payload)
			}
			if b.Len() != 1 || b.Recs[0].Time != 7 {
				t.Errorf("got %d records after the error; want only the earlier one", b.Len())
			}
			de := asDecodeError(t, err)
			if de.Index != tt.wantIndex || de.Field != tt.wantField {
				t.Errorf("got index %d field %q; want %d %q (%v)", de.Index, de.Field, tt.wantIndex, tt.wantField, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v; want it to wrap %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && (errors.Is(err, ErrNoEventTime) || errors.Is(err, ErrInvalidUTF8)) {
				t.Errorf("got %v wrapping a sentinel; want none", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q; want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestDecoderFailedMessageLeavesNoTrace checks that a record appended after
// a rejected message does not inherit the time, key or origin of the
// records the rejected message had started to append.
func TestDecoderFailedMessageLeavesNoTrace(t *testing.T) {
	cfg := readingConfig(FormatJSON)
	cfg.TimeField = ""
	d := mustNew(t, cfg)
	b := engine.NewBatch(readingSchema)
	bad := `[{"site":"a","sensor":"s1","ts":5000},{"temp":"x"}]`
	if err := d.Decode(b, Input{Payload: []byte(bad), Origin: engine.Origin{Offset: 9}}); err == nil {
		t.Fatal("got nil error; want one")
	}
	if err := d.Decode(b, Input{Payload: []byte(`{"temp":1}`)}); err != nil {
		t.Fatal(err)
	}
	if r := b.Recs[0]; b.Len() != 1 || r.Time != 0 || r.Key != "/" || r.Origin != (engine.Origin{}) {
		t.Errorf("got %d records, first time %d key %q origin %+v; want 1 record with none of the failed message's", b.Len(), r.Time, r.Key, r.Origin)
	}
}

func TestDecoderCSVHeaderChangesBetweenPayloads(t *testing.T) {
	d := mustNew(t, readingConfig(FormatCSV))
	b := engine.NewBatch(readingSchema)
	for _, p := range []string{
		"site,sensor,ts,temp\na,s1,1000,1\n",
		"site,sensor,ts,temp\na,s1,2000,2\n", // same header: cached columns
		"temp,ts,sensor,site\n3,3000,s1,a\n",
	} {
		if err := d.Decode(b, Input{Payload: []byte(p)}); err != nil {
			t.Fatalf("Decode(%q): %v", p, err)
		}
	}
	want := []rec{reading("a", "s1", 1000, 1), reading("a", "s1", 2000, 2), reading("a", "s1", 3000, 3)}
	if got := recs(b); !equalRecs(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	// A bad header is not cached: the same header again is checked again.
	for range 2 {
		if err := d.Decode(b, Input{Payload: []byte("site,temp\na,1\n")}); err == nil {
			t.Fatal("got nil error for a header without ts; want one")
		}
	}
}

func TestDecoderRaw(t *testing.T) {
	schema := engine.MustSchema(
		engine.Field{Name: "dev", Kind: engine.KindString},
		engine.Field{Name: "payload", Kind: engine.KindString},
		engine.Field{Name: "ts", Kind: engine.KindTime},
	)
	cfg := Config{Schema: schema, Format: FormatRaw, TimeField: "ts", KeyFields: []string{"dev"},
		MaxLineBytes: 16, Topics: []TopicMatcher{newTmpl("notes/{dev}/{ts}")}}
	d := mustNew(t, cfg)
	b := engine.NewBatch(schema)
	if err := d.Decode(b, Input{Payload: []byte("hello, world"), Topic: []byte("notes/d1/1000")}); err != nil {
		t.Fatal(err)
	}
	if r := b.Recs[0]; r.Vals[1].Str != "hello, world" || r.Time != 1000 || r.Key != "d1" {
		t.Errorf("got %s time %d key %q; want the payload, time 1000 and key d1 from the topic", valsString(r.Vals), r.Time, r.Key)
	}
	for _, tc := range []struct {
		name, payload, topic string
		want                 error
		msg                  string
	}{
		{"invalid UTF-8", "a\xffb", "notes/d1/1000", ErrInvalidUTF8, `field "payload": text is not valid UTF-8`},
		{"too large", strings.Repeat("x", 17), "notes/d1/1000", nil, "payload of 17 bytes is longer than the limit of 16"},
		{"no event time without a topic", "hello", "", ErrNoEventTime, `field "ts": no event time`},
	} {
		err := d.Decode(b, Input{Payload: []byte(tc.payload), Topic: []byte(tc.topic)})
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v; want an error wrapping %v containing %q", tc.name, err, tc.want, tc.msg)
		}
	}
	if b.Len() != 1 {
		t.Errorf("got %d records; want 1", b.Len())
	}
	// Without a field called payload the first string field takes it.
	s2 := engine.MustSchema(engine.Field{Name: "n", Kind: engine.KindNumber}, engine.Field{Name: "text", Kind: engine.KindString})
	d2 := mustNew(t, Config{Schema: s2, Format: FormatRaw})
	b2 := engine.NewBatch(s2)
	if err := d2.Decode(b2, Input{Payload: []byte("on")}); err != nil || b2.Recs[0].Vals[1].Str != "on" {
		t.Errorf("got %v, %v; want the payload in field text", err, b2.Recs)
	}
}

func TestDecoderBatchSchemaMismatch(t *testing.T) {
	d := mustNew(t, readingConfig(FormatJSON))
	other := engine.MustSchema(engine.Field{Name: "x", Kind: engine.KindNumber})
	err := d.Decode(engine.NewBatch(other), Input{Payload: []byte(`{}`)})
	if err == nil || !strings.Contains(err.Error(), "batch schema does not match") {
		t.Errorf("got %v; want a schema mismatch", err)
	}
}

func TestDecoderFunc(t *testing.T) {
	var got Input
	var d Decoder = DecoderFunc(func(_ *engine.Batch, in Input) error { got = in; return nil })
	_ = d.Decode(nil, Input{Received: 5})
	if got.Received != 5 {
		t.Errorf("got %+v; want the input passed through", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	s := engine.MustSchema(engine.Field{Name: "n", Kind: engine.KindNumber}, engine.Field{Name: "ts", Kind: engine.KindTime})
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"unknown format", Config{Schema: s, Format: "xml"}, []string{`format: "xml" is not one of json, csv, senml, raw`}},
		{"raw without a string field", Config{Schema: s, Format: FormatRaw}, []string{"raw needs a string field"}},
		{"csv columns", Config{Schema: s, Format: FormatCSV, TimeField: "ts", CSVColumns: []string{"n", "x", "n", SkipColumn}},
			[]string{`csv.columns[1]: `, `csv.columns[2]: column "n" declared twice`, `no column holds the event-time field "ts"`}},
		{"csv columns for json", Config{Schema: s, CSVColumns: []string{"n"}}, []string{"csv.columns: only for format csv"}},
		{"csv columns without key or strict fields", Config{Schema: s, Format: FormatCSV, Strict: true, KeyFields: []string{"n"}, CSVColumns: []string{"-"}},
			[]string{`no column holds the key field "n"`, `no column holds the field "ts" (strict)`}},
		{"raw with an event time no topic gives", Config{Schema: engine.MustSchema(engine.Field{Name: "p", Kind: engine.KindString}, engine.Field{Name: "ts", Kind: engine.KindTime}), Format: FormatRaw, TimeField: "ts"},
			[]string{`time_field: a raw payload has no event time; "ts" must be captured by a topic template`}},
		{"topic captures an unknown field", Config{Schema: s, Topics: []TopicMatcher{newTmpl("a/{n}"), newTmpl("b/{dev}")}},
			[]string{`mqtt.topics[1]: the template captures "dev", which is not a field of the source`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("got nil error; want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q; want it to contain %q", err, w)
				}
			}
		})
	}
	// The time column may come from the topic instead.
	ok := Config{Schema: s, Format: FormatCSV, TimeField: "ts", CSVColumns: []string{"n"}, Topics: []TopicMatcher{newTmpl("t/{ts}")}}
	if _, err := New(ok); err != nil {
		t.Errorf("got %v for a time captured from the topic; want nil", err)
	}
}
