package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestFileSinkSkipsRedeliveredAndTornLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := openFileSink(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.deliver(ctx, []delivery{{"p/0/1/0", []byte(`{"a":1}`)}, {"p/0/1/1", []byte(`{"a":2}`)}}); err != nil {
		t.Fatal(err)
	}
	s.close()
	// A crash mid-write leaves a torn line; the spool re-delivers from p/0/1/1.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"_id":"p/0/2/0","a"`)
	f.Close()
	s, err = openFileSink(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.deliver(ctx, []delivery{{"p/0/1/1", []byte(`{"a":2}`)}, {"p/0/2/0", []byte(`{"a":3}`)}, {"p/0/10/0", []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	s.close()
	b, _ := os.ReadFile(path)
	want := `{"_id":"p/0/1/0","a":1}
{"_id":"p/0/1/1","a":2}
{"_id":"p/0/2/0","a":3}
{"_id":"p/0/10/0"}
`
	if string(b) != want {
		t.Errorf("file: got\n%s; want\n%s", b, want)
	}
}

func TestFileSinkRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s, err := openFileSink(path, 40)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"p/0/1/0", "p/0/2/0", "p/0/3/0"} {
		if err := s.deliver(context.Background(), []delivery{{id, []byte(`{"value":12345}`)}}); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	s.close()
	if olds := rotated(path); len(olds) != 2 {
		t.Errorf("rotated files: got %v; want 2", olds)
	}
	// Reopening an empty current file finds the last id in the newest rotated file.
	os.WriteFile(path, nil, 0o644)
	s, _ = openFileSink(path, 40)
	if s.lastID != "p/0/2/0" && s.lastID != "p/0/3/0" {
		t.Errorf("last id after rotation: got %q", s.lastID)
	}
	s.close()
}
