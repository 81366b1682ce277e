package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestRunCPUProfileWritesProfileOnStop protects `edged run -cpuprofile`,
// which the end-to-end benchmark (scripts/bench/mqtt.sh PROFILE_DIR=) uses:
// the profile of the whole run is written when the daemon stops.
func TestRunCPUProfileWritesProfileOnStop(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(cfg, []byte("mqtt: {listen: \"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pipes := filepath.Join(dir, "pipelines")
	if err := os.Mkdir(pipes, 0o755); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "cpu.pprof")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"run", "-c", cfg, "--data-dir", filepath.Join(dir, "data"),
			"--pipelines-dir", pipes, "--api", addr, "-cpuprofile", prof}, &bytes.Buffer{}, &stderr)
	}()
	testkit.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/api/v1/status")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("edged run exited %d: %s", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("edged run did not stop within 30 s of its context ending")
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is a gzipped protocol buffer.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("-cpuprofile wrote %d bytes, not a gzipped profile: %q", len(b), fmt.Sprintf("%.16x", b))
	}
}
