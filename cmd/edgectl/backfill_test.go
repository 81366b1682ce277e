package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// TestBackfillStartListCancelOnARealNode: edgectl backfill start runs a
// backfill on a real edged, list shows it done, and a period the node's log
// never held is refused with the node's reason (exit 1).
func TestBackfillStartListCancelOnARealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs edged")
	}
	n := startEdged(t, "", map[string]string{"temps": tempsV1})
	rfc := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	code, out, errOut := ectl(t, "backfill", "start", "temps", "--node", n.URL, "--from", rfc(-5*time.Second), "--to", rfc(-2*time.Second))
	if code != 0 || !strings.Contains(out, "backfill-") {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		code, out, errOut := ectl(t, "backfill", "list", "temps", "--node", n.URL)
		if code != 0 || !strings.Contains(out, " done ") {
			return errors.New(out + errOut)
		}
		return nil
	})
	code, _, errOut = ectl(t, "backfill", "start", "temps", "--node", n.URL, "--from", rfc(-time.Second), "--to", rfc(time.Hour))
	if code != 1 || !strings.Contains(errOut, "has not ended yet") {
		t.Fatalf("future period: exit %d, %q", code, errOut)
	}
	code, _, errOut = ectl(t, "backfill", "cancel", "temps", "nosuch", "--node", n.URL)
	if code != 1 || !strings.Contains(errOut, "no backfill") {
		t.Fatalf("cancel of an unknown backfill: exit %d, %q", code, errOut)
	}
}
