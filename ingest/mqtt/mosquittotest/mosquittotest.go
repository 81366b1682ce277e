// Package mosquittotest starts a real mosquitto broker for integration
// tests: on a free loopback port, with a generated config and persistence
// in a temporary directory, killed when the test ends.
//
// mosquitto is looked up in PATH and at /usr/sbin/mosquitto. When it is
// missing the test FAILS with the install command (`sudo bash
// scripts/test/install.sh`, or `sudo apt-get install -y mosquitto
// mosquitto-clients`): `make test` cannot pass by skipping. Under -short
// (`make test-short`) the test is skipped instead, saying so.
package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgedio/edged/internal/testkit"
)

// Options configures a test broker.
type Options struct {
	// DefaultQueueLimit keeps mosquitto's default max_queued_messages
	// (1000: QoS 1 messages past it are dropped for an offline persistent
	// client). The zero value writes `max_queued_messages 0` (no limit), the
	// setting edged's docs require.
	DefaultQueueLimit bool
	// NoPersistence disables `persistence true`.
	NoPersistence bool
	// Extra lines appended to the generated config.
	Extra []string
	// TLS, when set, makes the listener TLS-only (URL returns ssl://).
	TLS *TLS
}

// TLS is the broker's TLS listener configuration (PEM files).
type TLS struct {
	// CAFile verifies client certificates.
	CAFile string
	// CertFile and KeyFile are the broker's certificate and key.
	CertFile, KeyFile string
	// RequireClientCert refuses clients without a certificate signed by
	// CAFile (mutual TLS).
	RequireClientCert bool
}

// Broker is a running (or stopped) mosquitto process.
type Broker struct {
	t    testing.TB
	bin  string
	dir  string
	conf string
	port int
	tls  bool
	cmd  *exec.Cmd
	done chan struct{}
}

// Start writes a config, starts mosquitto and waits until it accepts
// connections. The broker is killed at test cleanup.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin := testkit.Need(t, "mosquitto (a real MQTT broker)", "sudo apt-get install -y mosquitto mosquitto-clients",
		"mosquitto", "/usr/sbin/mosquitto")
	b := &Broker{t: t, bin: bin, dir: t.TempDir(), port: freePort(t), tls: opts.TLS != nil}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	lines := []string{fmt.Sprintf("listener %d 127.0.0.1", b.port)}
	if c := opts.TLS; c != nil {
		lines = append(lines, "cafile "+c.CAFile, "certfile "+c.CertFile, "keyfile "+c.KeyFile,
			fmt.Sprintf("require_certificate %v", c.RequireClientCert))
	}
	lines = append(lines,
		"allow_anonymous true",
		"log_dest file "+filepath.Join(b.dir, "mosquitto.log"),
		"log_type error",
		"log_type warning",
	)
	if !opts.NoPersistence {
		lines = append(lines, "persistence true", "persistence_location "+b.dir+"/")
	}
	if !opts.DefaultQueueLimit {
		lines = append(lines, "max_queued_messages 0")
	}
	if os.Geteuid() == 0 {
		// mosquitto drops root privileges to user "mosquitto" by default,
		// which cannot write the test's temporary directory.
		if u, err := user.Current(); err == nil {
			lines = append(lines, "user "+u.Username)
		}
	}
	lines = append(lines, opts.Extra...)
	if err := os.WriteFile(b.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("mosquittotest: write config: %v", err)
	}
	b.start()
	t.Cleanup(b.kill)
	return b
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquittotest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL returns the broker's tcp:// URL (ssl:// with Options.TLS).
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Addr returns host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Log returns the broker's log so far (errors and warnings).
func (b *Broker) Log() string {
	p, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(p)
}

func (b *Broker) start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("mosquittotest: start %s: %v", b.bin, err)
	}
	b.cmd = cmd
	b.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-b.done:
			b.t.Fatalf("mosquittotest: mosquitto exited at start: %s; log:\n%s", cmd.ProcessState, b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.kill()
			b.t.Fatalf("mosquittotest: mosquitto not accepting on %s after 10s: %v", b.Addr(), err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Stop stops the broker gracefully (SIGTERM: it saves its persistence
// file) and waits for it to exit.
func (b *Broker) Stop() {
	b.t.Helper()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.t.Errorf("mosquittotest: mosquitto ignored SIGTERM for 10s; killing it")
		b.kill()
	}
	b.cmd = nil
}

// Restart stops the broker gracefully and starts it again on the same port
// with the same config and persistence directory.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

func (b *Broker) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.done
	b.cmd = nil
}
