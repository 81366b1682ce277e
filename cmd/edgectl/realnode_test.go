package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// edged builds the daemon once per test binary.
var edgedBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "edgectl-test-edged-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "edged")
	out, err := exec.Command("go", "build", "-o", bin, "../edged").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build edged: %v\n%s", err, out)
	}
	return bin, nil
})

// realNode is an edged process on loopback with its embedded MQTT broker.
type realNode struct {
	URL    string // API base URL
	Broker string // embedded broker address
	Dir    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startEdged runs an edged process with the given pipelines (name -> YAML)
// and token ("" for none), and waits until it is ready.
func startEdged(t *testing.T, token string, pipelines map[string]string) *realNode {
	t.Helper()
	if testing.Short() {
		t.Skip("runs edged processes")
	}
	bin, err := edgedBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipes := filepath.Join(dir, "pipelines")
	os.MkdirAll(pipes, 0o755)
	for name, y := range pipelines {
		os.WriteFile(filepath.Join(pipes, name+".yaml"), []byte(y), 0o644)
	}
	n := &realNode{Dir: dir, Broker: freeAddr(t), stderr: &bytes.Buffer{}}
	api := freeAddr(t)
	n.URL = "http://" + api
	cfg := fmt.Sprintf("dataDir: %s\npipelinesDir: %s\nlogLevel: warn\napi: {listen: %q, token: %q}\nstorage: {sync: never}\nmqtt: {listen: %q}\n",
		filepath.Join(dir, "data"), pipes, api, token, n.Broker)
	cfgFile := filepath.Join(dir, "edged.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	n.cmd = exec.Command(bin, "run", "-c", cfgFile)
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		if t.Failed() {
			t.Logf("edged %s stderr:\n%s", n.URL, n.stderr.String())
		}
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		if n.cmd.ProcessState != nil {
			return fmt.Errorf("edged exited: %s", n.stderr.String())
		}
		resp, err := http.Get(n.URL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz: %d", resp.StatusCode)
		}
		return nil
	})
	return n
}

// simulate publishes readings to a node's broker in the background with
// edgectl sim until the test ends.
func simulate(t *testing.T, broker string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var out bytes.Buffer
		cmdSim(ctx, append([]string{"--broker", broker, "--progress", "0", "--sensors", "5", "--rate", "200"}, args...), &out, &out)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// ectl runs edgectl with args and returns its exit code, stdout and stderr.
func ectl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeContext writes an edgectl config with one context "test" holding the
// nodes (one site per node, named site-0, site-1, ...) and returns its path.
func writeContext(t *testing.T, token string, nodes ...*realNode) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "current-context: test\ncontexts:\n  - name: test\n    token: %q\n    sites:\n", token)
	for i, n := range nodes {
		fmt.Fprintf(&b, "      - name: site-%d\n        nodes: [{name: n%d, url: %q}]\n", i, i, n.URL)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, []byte(b.String()), 0o600)
	return path
}
