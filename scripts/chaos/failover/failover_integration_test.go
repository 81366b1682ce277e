//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationFailoverHarnessShort is the CI version of scripts/chaos/failover.sh:
// real mosquitto, three real edged processes, 1,000 sensors for 12s, one
// SIGKILL of an owner of several partitions and its restart (the member
// flaps). No window may be lost or emitted twice in the union of the three
// nodes' outputs, and the dead owner's partitions must be emitted by a
// survivor within 2s of the kill.
func TestIntegrationFailoverHarnessShort(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Fatal("mosquitto is needed (sudo apt-get install -y mosquitto)")
		}
	}
	bin := t.TempDir()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"edged", "edgectl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, c), "./cmd/"+c)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Seed: uint64(time.Now().UnixNano()), Duration: 12 * time.Second, Kills: 1, Sensors: 1000,
		Rate: 2000, Down: 4 * time.Second, Edged: filepath.Join(bin, "edged"), Edgectl: filepath.Join(bin, "edgectl"),
		Work: t.TempDir(), Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Line())
	if !res.OK() {
		t.Errorf("failover: %s (want kills>0, no lost or duplicate window, takeover <= 2s)", res.Line())
	}
}
