package node

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/edgedio/edged/internal/topic"
)

// TestPipeSourceMatchesKeepsItsAnswers: a source's answer for a topic is
// kept (Ingest asks for every message) under a copy of the topic, since the
// MQTT reader's topics point into its read buffer; it stays right for every
// topic, from many goroutines at once, past the bound of kept topics.
func TestPipeSourceMatchesKeepsItsAnswers(t *testing.T) {
	tm, err := topic.ParseTemplate("sensors/{sensor}/reading")
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeSource{tmpls: []*topic.Template{tm}}

	buf := []byte("sensors/a/reading")
	view := unsafe.String(unsafe.SliceData(buf), len(buf)) // as the reader slices topics
	if !s.matches(view) {
		t.Fatal("sensors/a/reading does not match sensors/{sensor}/reading")
	}
	copy(buf, "elsewhere/a/xxxxx") // the reader reuses its buffer
	for k, v := range s.seen {
		if k != "sensors/a/reading" || !v {
			t.Fatalf("kept %q = %v after the reader reused its buffer; want sensors/a/reading = true (a copy of the topic)", k, v)
		}
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range maxSeenTopics + 500 {
				tp := fmt.Sprintf("sensors/s%d/reading", i)
				if g%2 == 1 {
					tp = fmt.Sprintf("sensors/s%d/other", i)
				}
				if got, want := s.matches(tp), g%2 == 0; got != want {
					t.Errorf("matches(%q) = %v, want %v", tp, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	s.seenMu.RLock()
	defer s.seenMu.RUnlock()
	if len(s.seen) > maxSeenTopics {
		t.Errorf("%d topics kept; want at most %d", len(s.seen), maxSeenTopics)
	}
}
