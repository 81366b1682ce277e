package pipeline

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

// passThrough compiles a pipeline whose only sink writes the records of
// the source declared by src (YAML lines of one source, indented 4).
func passThrough(t *testing.T, src string) *Compiled {
	t.Helper()
	doc := "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: pass}\nspec:\n  sources:\n    - name: in\n" + src + "  sinks:\n    - name: out\n"
	s, err := Parse("pass.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// daemonRecords decodes messages the way the daemon does: each payload is an
// MQTT message logged with its topic and receipt time (decode.AppendEntry),
// read back from the log and decoded by decode.New of the source's Config.
// It returns the records as JSON lines and the number of rejected messages.
func daemonRecords(t *testing.T, c *Compiled, received int64, payloads ...string) ([]string, int) {
	t.Helper()
	cfg := c.Decoders["in"]
	d, err := decode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := engine.NewBatch(cfg.Schema)
	bad := 0
	for i, p := range payloads {
		entry := decode.AppendEntry(nil, received, "t/in", []byte(p))
		in := decode.ParseEntry(entry)
		in.Origin = engine.Origin{Source: "in", Offset: uint64(i + 1)}
		if err := d.Decode(b, in); err != nil {
			bad++
		}
	}
	var out []string
	for i := range b.Recs {
		out = append(out, string(decode.AppendJSON(nil, cfg.Schema, &b.Recs[i])))
	}
	return out, bad
}

// batchRecords runs edged batch over file and returns its output lines and
// dead letters.
func batchRecords(t *testing.T, c *Compiled, file string, opt BatchOptions) ([]string, []DeadLetter) {
	t.Helper()
	var out bytes.Buffer
	var dls []DeadLetter
	opt.Input, opt.Output = strings.NewReader(file), &out
	opt.DeadLetter = func(dl DeadLetter) { dls = append(dls, dl) }
	st, err := RunBatch(context.Background(), c, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Invalid != len(dls) {
		t.Errorf("got Invalid %d and %d dead letters; want equal", st.Invalid, len(dls))
	}
	var lines []string
	if s := strings.TrimSpace(out.String()); s != "" {
		lines = strings.Split(s, "\n")
	}
	return lines, dls
}

const readingFields = `      fields: [{name: sensor, type: string}, {name: ts, type: time}, {name: temp, type: number}]
      eventTime: ts
      key: [sensor]
`

// TestBatchDecodesEveryFormatLikeTheDaemon runs edged batch over an input
// file of every format and checks that its records are the ones the
// daemon's decoder gives for the same messages received over MQTT, bad
// messages included (dead letters in both).
func TestBatchDecodesEveryFormatLikeTheDaemon(t *testing.T) {
	const received = 1_700_000_000_000
	tests := []struct {
		name     string
		src      string
		file     string
		opt      BatchOptions
		messages []string // the same input as MQTT payloads
		want     int      // records
		wantBad  []string // dead-letter reasons, in order
	}{
		{
			name: "json objects and arrays",
			src:  readingFields,
			file: `{"sensor":"a","ts":1000,"temp":1}` + "\n" +
				`[{"sensor":"b","ts":2000,"temp":2},{"sensor":"c","ts":3000,"temp":3}]` + "\n\n" +
				`{"sensor":"d","temp":4}` + "\n" +
				"{\"sensor\":\"e\xff\",\"ts\":5000}\n" +
				`{"sensor":"f","ts":6000,"temp":6}`,
			messages: []string{`{"sensor":"a","ts":1000,"temp":1}`, `[{"sensor":"b","ts":2000,"temp":2},{"sensor":"c","ts":3000,"temp":3}]`,
				`{"sensor":"d","temp":4}`, "{\"sensor\":\"e\xff\",\"ts\":5000}", `{"sensor":"f","ts":6000,"temp":6}`},
			want:    4,
			wantBad: []string{`decode: line 4: field "ts": no event time`, `decode: line 5: field "sensor": text is not valid UTF-8`},
		},
		{
			name:     "csv with a header row",
			src:      "      format: csv\n" + readingFields,
			file:     "temp,sensor,ts\r\n1,a,1000\r\n2,\"b,\"\"x\"\"\",2000\r\n3,c,\r\n4,d,4000\r\n",
			messages: []string{"temp,sensor,ts\n1,a,1000\n2,\"b,\"\"x\"\"\",2000\n", "temp,sensor,ts\n3,c,\n", "temp,sensor,ts\n4,d,4000"},
			want:     3,
			wantBad:  []string{`decode: line 4: record 1: field "ts": no event time`},
		},
		{
			name:     "csv in the declared field order",
			src:      "      format: csv\n      csv: {header: false}\n" + readingFields,
			file:     "a,1000,1\nb,2000,2\nc,x,3\n\"d\ne\",4000,4\n",
			messages: []string{"a,1000,1\nb,2000,2", "c,x,3", "\"d\ne\",4000,4\n"},
			want:     3,
			wantBad:  []string{`decode: line 3: record 1: field "ts": want time (RFC 3339 or a number), got string "x"`},
		},
		{
			name:     "csv in declared columns",
			src:      "      format: csv\n      csv: {header: false, columns: [ts, \"-\", sensor, temp]}\n" + readingFields,
			file:     "1000,x,a,1\n2000,y,b,2\n",
			messages: []string{"1000,x,a,1\n", "2000,y,b,2\n"},
			want:     2,
		},
		{
			name: "senml packs, relative times from the receipt time",
			src: `      format: senml
      fields: [{name: name, type: string}, {name: unit, type: string}, {name: value, type: number}, {name: ts, type: time}]
      eventTime: ts
      key: [name]
`,
			file: `[{"bn":"dev7/","n":"temp","u":"Cel","v":21.5,"t":-10},{"n":"hum","v":40}]` + "\n" +
				`[{"n":"x","v":1,"bt":1.7e9}]` + "\n" + `[{"n":"y"}]` + "\n",
			opt:      BatchOptions{Received: received},
			messages: []string{`[{"bn":"dev7/","n":"temp","u":"Cel","v":21.5,"t":-10},{"n":"hum","v":40}]`, `[{"n":"x","v":1,"bt":1.7e9}]`, `[{"n":"y"}]`},
			want:     3,
			wantBad:  []string{`decode: line 3: record 1: no value (v, vs, vb, vd) and no sum (s)`},
		},
		{
			name:     "raw lines",
			src:      "      format: raw\n      fields: [{name: payload, type: string}]\n",
			file:     "hello\nON\n\xff\nworld",
			messages: []string{"hello", "ON", "\xff", "world"},
			want:     3,
			wantBad:  []string{`decode: line 3: field "payload": text is not valid UTF-8`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := passThrough(t, tt.src)
			got, dls := batchRecords(t, c, tt.file, tt.opt)
			want, bad := daemonRecords(t, c, received, tt.messages...)
			slices.Sort(got)
			slices.Sort(want)
			if len(want) != tt.want || !slices.Equal(got, want) {
				t.Errorf("batch gave %d records:\n%s\nthe daemon's decoder %d (want %d):\n%s", len(got), strings.Join(got, "\n"), len(want), tt.want, strings.Join(want, "\n"))
			}
			var reasons []string
			for _, dl := range dls {
				reasons = append(reasons, dl.Reason.Error())
			}
			if bad != len(tt.wantBad) || len(reasons) != len(tt.wantBad) {
				t.Fatalf("got %d dead letters %q in batch, %d in the daemon; want %d", len(reasons), reasons, bad, len(tt.wantBad))
			}
			for i, w := range tt.wantBad {
				if !strings.HasPrefix(reasons[i], w) {
					t.Errorf("dead letter %d: got %q; want %q", i, reasons[i], w)
				}
			}
		})
	}
}

func TestBatchSenMLWithoutReceiptTime(t *testing.T) {
	c := passThrough(t, "      format: senml\n      fields: [{name: name, type: string}, {name: value, type: number}, {name: ts, type: time}]\n      eventTime: ts\n")
	got, dls := batchRecords(t, c, `[{"n":"a","v":1,"t":-1}]`+"\n"+`[{"n":"b","v":2,"t":1.7e9}]`, BatchOptions{})
	if len(got) != 1 || len(dls) != 1 || !errors.Is(dls[0].Reason, decode.ErrNoEventTime) {
		t.Fatalf("got %d records, dead letters %v; want the absolute one and the relative one dead-lettered", len(got), dls)
	}
}

func TestBatchFormatOverrideAndErrors(t *testing.T) {
	c := passThrough(t, readingFields) // a json source
	got, _ := batchRecords(t, c, "sensor,ts,temp\na,1000,1\n", BatchOptions{Format: "csv"})
	if len(got) != 1 || !strings.Contains(got[0], `"sensor":"a"`) {
		t.Errorf("got %q; want the CSV row read with its header", got)
	}
	for _, tc := range []struct{ format, file, want string }{
		{"xml", "", `unknown input format "xml"`},
		{"csv", "sensor,temp\na,1\n", `read input: decode: line 1: field "ts": missing column in the header`},
	} {
		_, err := RunBatch(context.Background(), c, BatchOptions{Input: strings.NewReader(tc.file), Output: &bytes.Buffer{}, Format: tc.format})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("format %s: got %v; want %q", tc.format, err, tc.want)
		}
	}
}

func TestCompileDecoderConfig(t *testing.T) {
	c := passThrough(t, "      format: csv\n      csv: {header: false}\n      mqtt: {topics: [\"s/{sensor}/t\"]}\n"+readingFields)
	cfg := c.Decoders["in"]
	if cfg.Format != "csv" || strings.Join(cfg.CSVColumns, ",") != "sensor,ts,temp" || len(cfg.Topics) != 1 {
		t.Errorf("got format %q columns %q %d topics; want csv, the fields in order, 1 topic", cfg.Format, cfg.CSVColumns, len(cfg.Topics))
	}
	doc := "apiVersion: edged/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  sources:\n    - name: in\n      mqtt: {topics: [\"s/{room}/t\"]}\n" + readingFields + "  sinks:\n    - name: out\n"
	s, err := Parse("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(s)
	if want := `captures "room", which is not a field of the source`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v; want %q", err, want)
	}
}

// TestCompiledDecoderCapturesWithMQTTTemplates decodes with the Config
// Compile builds, whose topic templates are the daemon's own
// (*topic.Template): captures fill fields for every format, a shared
// subscription's prefix is not part of the topic, a rest capture takes the
// remaining levels.
func TestCompiledDecoderCapturesWithMQTTTemplates(t *testing.T) {
	fields := "      fields: [{name: site, type: string}, {name: sensor, type: string}, {name: ts, type: time}, {name: v, type: number}]\n      eventTime: ts\n      key: [site, sensor]\n"
	topics := "      mqtt: {topics: [\"$share/g/a/{site}/{sensor}\", \"b/{site}/{sensor...}\"]}\n"
	tests := []struct{ format, payload, topic, want, wantKey string }{
		{"json", `{"ts":1000,"v":1,"site":"spoofed"}`, "a/hall/s1", `{"site":"hall","sensor":"s1","ts":1000,"v":1}`, "hall/s1"},
		{"json", `{"ts":1000,"v":1}`, "b/yard/x/y", `{"site":"yard","sensor":"x/y","ts":1000,"v":1}`, "yard/x/y"},
		{"csv", "ts,v\n1000,1\n", "a/hall/s1", `{"site":"hall","sensor":"s1","ts":1000,"v":1}`, "hall/s1"},
	}
	for _, tt := range tests {
		c := passThrough(t, "      format: "+tt.format+"\n"+topics+fields)
		cfg := c.Decoders["in"]
		d, err := decode.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b := engine.NewBatch(cfg.Schema)
		if err := d.Decode(b, decode.ParseEntry(decode.AppendEntry(nil, 1, tt.topic, []byte(tt.payload)))); err != nil {
			t.Fatalf("%s on %s: %v", tt.payload, tt.topic, err)
		}
		if got := string(decode.AppendJSON(nil, cfg.Schema, &b.Recs[0])); got != tt.want {
			t.Errorf("%s on %s: got %s; want %s", tt.payload, tt.topic, got, tt.want)
		}
		if got := b.Recs[0].Key; got != tt.wantKey {
			t.Errorf("got key %q; want %q, from the captured fields", got, tt.wantKey)
		}
	}
}
