package sink

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileSinkSkipsRedeliveredAndTornLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Deliver(ctx, []Delivery{{"p/0/1/1/0", []byte(`{"a":1}`)}, {"p/0/1/1/1", []byte(`{"a":2}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash mid-write leaves a torn line; the spool re-delivers from p/0/1/1/1.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"_id":"p/0/1/2/0","a"`)
	f.Close()
	s, err = OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, []Delivery{{"p/0/1/1/1", []byte(`{"a":2}`)}, {"p/0/1/2/0", []byte(`{"a":3}`)}, {"p/0/1/10/0", []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	want := `{"_id":"p/0/1/1/0","a":1}
{"_id":"p/0/1/1/1","a":2}
{"_id":"p/0/1/2/0","a":3}
{"_id":"p/0/1/10/0"}
`
	if string(b) != want {
		t.Errorf("file: got\n%s; want\n%s", b, want)
	}
}

func TestFileSinkRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := OpenFile(path, 40)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"p/0/1/1/0", "p/0/1/2/0", "p/0/1/3/0"} {
		if err := s.Deliver(context.Background(), []Delivery{{id, []byte(`{"value":12345}`)}}); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	s.Close()
	if olds := rotated(path); len(olds) != 2 {
		t.Errorf("rotated files: got %v; want 2", olds)
	}
	// Reopening an empty current file finds the last id in the newest rotated file.
	os.WriteFile(path, nil, 0o644)
	s, _ = OpenFile(path, 40)
	if got := s.last["p/0"].String(); got != "p/0/1/2/0" && got != "p/0/1/3/0" {
		t.Errorf("last id after rotation: got %q", got)
	}
	s.Close()
}

// Two pipelines (or partitions) writing one file: an output of one is not
// skipped because the other's ids are higher (the old check compared epoch
// and sequence only, and lost outputs).
func TestFileSinkKeepsOutputsOfSeveralWritersApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds := []Delivery{{"a/0/1/9/0", []byte(`{"x":1}`)}, {"b/0/1/2/0", []byte(`{"x":2}`)}, {"a/3/1/1/0", []byte(`{"x":3}`)}}
	if err := s.Deliver(ctx, ds); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// After a restart the same batch comes again (not acknowledged), then more.
	s, err = OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, append(ds, Delivery{"b/0/1/3/0", []byte(`{"x":4}`)})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got := readLines(t, path)
	if len(got) != 4 {
		t.Fatalf("lines: got %d (%v); want 4, each output once", len(got), got)
	}
}

// A write that fails half way (a full disk) leaves nothing of itself.
func TestFileSinkUndoesAFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Deliver(ctx, []Delivery{{"p/0/1/1/0", []byte(`{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}
	// Simulate a partial write: bytes past the known size, as a write that
	// failed with ENOSPC leaves them, then a failing write.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"_id":"p/0/1/2/0","a"`)
	f.Close()
	good := s.f
	s.f, _ = os.Open(path) // read-only: the next write fails
	if err := s.Deliver(ctx, []Delivery{{"p/0/1/2/0", []byte(`{"a":2}`)}}); err == nil {
		t.Fatal("deliver on a failing file: got nil error")
	}
	s.f.Close()
	s.f = good
	if err := s.Deliver(ctx, []Delivery{{"p/0/1/2/0", []byte(`{"a":2}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	if want := "{\"_id\":\"p/0/1/1/0\",\"a\":1}\n{\"_id\":\"p/0/1/2/0\",\"a\":2}\n"; string(b) != want {
		t.Errorf("file: got %q; want %q", b, want)
	}
}

func TestSinkTopicRender(t *testing.T) {
	tests := []struct {
		tmpl, data, want string
	}{
		{"out/fixed", `{"a":1}`, "out/fixed"},
		{"out/{sensor}/x", `{"sensor":"s1"}`, "out/s1/x"},
		{"out/{n}", `{"n":3.5}`, "out/3.5"},
		{"out/{missing}", `{"a":1}`, "out/_"},
		{"out/{s}", `{"s":"a/b+#"}`, "out/a_b__"},
	}
	for _, tt := range tests {
		st, err := ParseTopic(tt.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tt.tmpl, err)
		}
		got, err := st.Render(nil, []byte(tt.data))
		if err != nil || string(got) != tt.want {
			t.Errorf("%s on %s: got %q, %v; want %q", tt.tmpl, tt.data, got, err, tt.want)
		}
	}
	for _, bad := range []string{"out/{", "out/+", "out/{}"} {
		if _, err := ParseTopic(bad); err == nil {
			t.Errorf("%q: got nil; want an error", bad)
		}
	}
}

// readLines reads a JSON Lines file into maps.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

// batchPub records PublishBatch calls.
type batchPub struct{ calls, msgs int }

func (b *batchPub) Publish(context.Context, string, []byte, byte, bool) error {
	return errors.New("Publish called on a batch publisher")
}

func (b *batchPub) PublishBatch(_ context.Context, topics []string, payloads [][]byte, _ byte, _ bool) error {
	b.calls++
	b.msgs += len(topics)
	for i := range payloads {
		if !strings.HasPrefix(string(payloads[i]), `{"_id":"p/0/1/1/`) || topics[i] != "out/s"+string(rune('0'+i)) {
			return errors.New("wrong topic or payload")
		}
	}
	return nil
}

// With a BatchPublisher the MQTT writer hands a whole delivery over at once
// (one round trip per batch, not per output).
func TestMQTTWriterPublishesABatchAtOnce(t *testing.T) {
	top, err := ParseTopic("out/{sensor}")
	if err != nil {
		t.Fatal(err)
	}
	bp := &batchPub{}
	w := NewMQTT(bp, top, 1, false)
	ds := []Delivery{{"p/0/1/1/0", []byte(`{"sensor":"s0"}`)}, {"p/0/1/1/1", []byte(`{"sensor":"s1"}`)}, {"p/0/1/1/2", []byte(`{"sensor":"s2"}`)}}
	if err := w.Deliver(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	if bp.calls != 1 || bp.msgs != 3 {
		t.Errorf("PublishBatch calls %d with %d messages; want 1 with 3", bp.calls, bp.msgs)
	}
}

// renderReference is Topic.Render as it was, through encoding/json: the
// behaviour the allocation-free scanner must keep.
func renderReference(t Topic, data []byte) (string, error) {
	if t.static {
		return t.parts[0], nil
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", err
	}
	var dst []byte
	for i, part := range t.parts {
		if i%2 == 0 {
			dst = append(dst, part...)
			continue
		}
		raw, ok := rec[part]
		var v string
		switch {
		case !ok || string(raw) == "null":
			v = "_"
		case len(raw) > 0 && raw[0] == '"':
			if err := json.Unmarshal(raw, &v); err != nil {
				return "", err
			}
		default:
			v = string(raw)
		}
		if v == "" {
			v = "_"
		}
		for k := 0; k < len(v); k++ {
			switch c := v[k]; c {
			case '/', '+', '#', 0:
				dst = append(dst, '_')
			default:
				dst = append(dst, c)
			}
		}
	}
	return string(dst), nil
}

var topicRenderCases = []string{
	`{"sensor":"s1","n":3}`,
	` { "sensor" : "s 1" , "n" : -3.5e2 } `,
	`{"n":{"a":[1,"}",{"b":"]"}]},"sensor":"x"}`,
	`{"sensor":"a\"b\\c\/d\u0041"}`,
	`{"sen\u0073or":"escaped key","n":true}`,
	`{"sensor":"first","sensor":"last"}`,
	`{"sensor":null,"n":false}`,
	`{"sensor":"","n":[]}`,
	`{}`,
	`{"sensor":"\u00e9t\u00e9/+#"}`,
	"{\"sensor\":\"bad \xff utf-8\"}",
}

// TestSinkTopicRenderMatchesEncodingJSON: the allocation-free scanner
// renders every topic as encoding/json did (escapes, nesting, the last of
// duplicate keys, null, missing and empty fields, whitespace), and rejects
// what is not one JSON object.
func TestSinkTopicRenderMatchesEncodingJSON(t *testing.T) {
	top, err := ParseTopic("out/{sensor}/{n}/{missing}")
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range topicRenderCases {
		want, werr := renderReference(top, []byte(data))
		got, err := top.Render(nil, []byte(data))
		if werr != nil || err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v; want %q, %v", data, got, err, want, werr)
		}
	}
	for _, bad := range []string{``, `[1]`, `"s"`, `{"a":1`, `{"a" 1}`, `{"a":1}x`, `{"a":"x}`, `{"a":}`, `{"a":1,}`, `{a:1}`} {
		if _, err := top.Render(nil, []byte(bad)); err == nil {
			t.Errorf("%q: got nil; want an error", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { top.Render(make([]byte, 0, 64), []byte(topicRenderCases[0])) }); n > 1 {
		t.Errorf("Render allocates %.0f times per output; want at most the destination's", n)
	}
}

// FuzzTopicRender: on any input encoding/json reads as an object, the
// scanner renders the same topic.
func FuzzTopicRender(f *testing.F) {
	for _, c := range topicRenderCases {
		f.Add(c)
	}
	top, err := ParseTopic("out/{sensor}/{n}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		want, werr := renderReference(top, []byte(data))
		if werr != nil {
			return
		}
		got, err := top.Render(nil, []byte(data))
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q, %v; want %q", data, got, err, want)
		}
	})
}
