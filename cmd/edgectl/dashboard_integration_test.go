//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// chromium runs headless Chromium on url with extra flags and returns its
// stdout. Virtual time lets the page's polling run for a few seconds.
func chromium(t *testing.T, url string, flags ...string) string {
	t.Helper()
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (install Debian's chromium package)", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, flags...)
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", flags, err)
	}
	return string(out)
}

var (
	reHeader   = regexp.MustCompile(`<span id="node">[^<]*· ([0-9.]+k?) records/s</span>`)
	rePipeRows = regexp.MustCompile(`(?s)<table id="pipelines">.*?</table>`)
	reSinks    = regexp.MustCompile(`(?s)<table id="sinks">.*?</table>`)
	// "(116 stored; latest 10)" ... the first row's id.
	reDeadLetters = regexp.MustCompile(`(?s)\((\d+) stored; latest \d+\).*?<table id="deadletters">.*?<tbody><tr><td class="num">(\d+)</td>`)
)

// TestDashboardInChromium loads the dashboard of a live edged under
// edgectl sim traffic in headless Chromium: the page's script runs under its
// CSP, shows the pipeline, its rates and dead letters, the content changes
// as traffic flows, and a screenshot is saved as a test artifact.
func TestDashboardInChromium(t *testing.T) {
	n := startEdged(t, "", map[string]string{"temps": tempsV1})
	simulate(t, n.Broker, "--malformed", "0.05")

	var first string
	testkit.Eventually(t, 60*time.Second, func() error {
		dom := chromium(t, n.URL+"/", "--dump-dom")
		m := reHeader.FindStringSubmatch(dom)
		if m == nil {
			return fmt.Errorf("no header with records/s in the page (did the script run?):\n%.2000s", dom)
		}
		if v, _ := strconv.ParseFloat(strings.TrimSuffix(m[1], "k"), 64); v <= 0 {
			return fmt.Errorf("records/s %s; want traffic", m[1])
		}
		for _, want := range []string{"<td>temps</td>", "v1", "running", "decode", `<polyline points=`, "no mesh on this node"} {
			if !strings.Contains(dom, want) {
				return fmt.Errorf("page lacks %q", want)
			}
		}
		// The dead letters shown are the newest: the first row's id is at
		// least the number stored (ids count from 1, none dropped here).
		m = reDeadLetters.FindStringSubmatch(dom)
		if m == nil {
			return fmt.Errorf("no dead-letter rows yet")
		}
		stored, _ := strconv.Atoi(m[1])
		newest, _ := strconv.Atoi(m[2])
		if stored == 0 || newest < stored {
			return fmt.Errorf("dead letters: %d stored, newest shown %d; want the newest first", stored, newest)
		}
		first = rePipeRows.FindString(dom) + reSinks.FindString(dom)
		return nil
	})
	testkit.Eventually(t, 60*time.Second, func() error {
		dom := chromium(t, n.URL+"/", "--dump-dom")
		if now := rePipeRows.FindString(dom) + reSinks.FindString(dom); now == first || now == "" {
			return fmt.Errorf("the pipelines and sinks tables did not change under traffic")
		}
		return nil
	})

	dir := os.Getenv("EDGECTL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "edgectl-artifacts")
	}
	os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "dashboard.png")
	os.Remove(shot)
	chromium(t, n.URL+"/", "--window-size=1280,1000", "--screenshot="+shot)
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, st.Size())
	}
	t.Logf("dashboard screenshot: %s", shot)
}

// TestDashboardAsksForTheToken: on a node with a token, the page shows the
// token form and no data (the data calls answer 401 without the token).
func TestDashboardAsksForTheToken(t *testing.T) {
	n := startEdged(t, "dash-token", map[string]string{"temps": tempsV1})
	dom := chromium(t, n.URL+"/", "--dump-dom")
	for _, want := range []string{`<form id="login">`, "needs a token", `<main id="main" hidden="">`} {
		if !strings.Contains(dom, want) {
			t.Fatalf("page lacks %q:\n%.3000s", want, dom)
		}
	}
	if strings.Contains(dom, "<td>temps</td>") {
		t.Fatal("the page shows pipeline data without the token")
	}
}
