package decode

import (
	"fmt"
	"testing"

	"github.com/edgedio/edged/engine"
)

// countingTmpl counts the Match calls of a template.
type countingTmpl struct {
	*tmpl
	calls int
}

func (t *countingTmpl) Match(topic string, fn func(name, value string)) bool {
	t.calls++
	return t.tmpl.Match(topic, fn)
}

// TestTopicCapturesAreKeptPerTopic: the captures of a topic are worked out
// once (a sensor's messages share their topic) and give the same records
// every time, across more topics than the cache keeps; a topic whose
// capture fails fails every time.
func TestTopicCapturesAreKeptPerTopic(t *testing.T) {
	tm := &countingTmpl{tmpl: newTmpl("sensors/{site}/{sensor}/{ts}")}
	cfg := readingConfig(FormatJSON)
	cfg.Topics = []TopicMatcher{tm}
	d := mustNew(t, cfg)
	b := engine.NewBatch(readingSchema)
	for round := range 3 {
		for s := range 10 {
			b.Reset(readingSchema)
			topic := fmt.Sprintf("sensors/hall/s%d/%d", s, 1000+s)
			if err := d.Decode(b, Input{Topic: []byte(topic), Payload: []byte(`{"sensor":"x","temp":1}`)}); err != nil {
				t.Fatalf("round %d, %s: %v", round, topic, err)
			}
			if got, want := recs(b), []rec{reading("hall", fmt.Sprintf("s%d", s), int64(1000+s), 1)}; !equalRecs(got, want) {
				t.Fatalf("round %d, %s: %v; want %v", round, topic, got, want)
			}
		}
	}
	if tm.calls != 10 {
		t.Errorf("templates matched %d times for 30 messages on 10 topics; want 10", tm.calls)
	}
	for range 2 {
		b.Reset(readingSchema)
		if err := d.Decode(b, Input{Topic: []byte("sensors/hall/s1/yesterday"), Payload: []byte(`{"temp":1}`)}); err == nil {
			t.Fatalf("a topic capturing ts=yesterday decoded %v; want an error", recs(b))
		}
	}
	for i := range internMaxEntries + 10 {
		b.Reset(readingSchema)
		topic := fmt.Sprintf("sensors/s/%d/%d", i, i)
		if err := d.Decode(b, Input{Topic: []byte(topic), Payload: []byte(`{"temp":2}`)}); err != nil {
			t.Fatal(err)
		}
		if got, want := recs(b), []rec{reading("s", fmt.Sprint(i), int64(i), 2)}; !equalRecs(got, want) {
			t.Fatalf("%s: %v; want %v", topic, got, want)
		}
	}
}
