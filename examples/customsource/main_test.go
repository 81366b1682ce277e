package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestCustomSourceExample runs the example program twice over a growing
// meter file: every reading reaches the pipeline once across the restart
// (the source resumes from its committed offset), a half-written line waits
// for its end, and the per-meter sums add up to the readings.
func TestCustomSourceExample(t *testing.T) {
	dir := t.TempDir()
	meter, data := filepath.Join(dir, "meter.txt"), filepath.Join(dir, "data")
	if err := os.WriteFile(meter, []byte("m1 1.5\nm2 2\nm1 0.5\nm2 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"-readings", meter, "-data", data}, io.Discard) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}
	raw := filepath.Join(data, "out", "readings.jsonl")
	stop := start()
	waitReadings(t, raw, "m1 1.5", "m2 2", "m1 0.5")
	stop()

	f, err := os.OpenFile(meter, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(".5\nm3 4\n")
	f.Close()
	stop = start()
	defer stop()
	waitReadings(t, raw, "m1 1.5", "m2 2", "m1 0.5", "m2 1.5", "m3 4")
	testkit.Eventually(t, 10*time.Second, func() error {
		sums := map[string]float64{}
		for _, l := range lines(t, filepath.Join(data, "out", "kwh.jsonl")) {
			sums[fmt.Sprint(l["meter"])] += l["kwh"].(float64)
		}
		if want := map[string]float64{"m1": 2, "m2": 3.5, "m3": 4}; fmt.Sprint(sums) != fmt.Sprint(want) {
			return fmt.Errorf("sums %v; want %v", sums, want)
		}
		return nil
	})
}

func waitReadings(t *testing.T, path string, want ...string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		var got []string
		for _, l := range lines(t, path) {
			got = append(got, fmt.Sprint(l["meter"], " ", l["kwh"]))
		}
		// Partitions (by meter) write in their own order.
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("readings %q; want %q (each once)", got, want)
		}
		return nil
	})
}

func lines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
