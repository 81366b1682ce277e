package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startListeningNode runs a node whose API listens on l (through startAPI, as
// edged runs it) and returns the API's base URL.
func startListeningNode(t *testing.T, l net.Listener) string {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	startNode(t, cfg, newFakeClock(t0), WithListener(l))
	return "http://" + l.Addr().String()
}

func TestLoopbackAPIRefusesForeignHostHeader(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := startListeningNode(t, l)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"LocalHost", 200},
		{"dash.localhost:" + port, 200},
		{"[::1]:" + port, 200},
		{"127.1.2.3", 200},
		{"evil.example:" + port, http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
		{"localhost.evil.example", http.StatusMisdirectedRequest},
		{"10.0.0.1:" + port, http.StatusMisdirectedRequest},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/status", "/healthz"} {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Host = tt.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("GET %s with Host %q: got %d (%s); want %d", path, tt.host, resp.StatusCode, body, tt.want)
			}
			if tt.want == 421 && !strings.Contains(string(body), "not a loopback name") {
				t.Errorf("GET %s with Host %q: body %q does not say why", path, tt.host, body)
			}
		}
	}
}

func TestNonLoopbackAPIAcceptsAnyHost(t *testing.T) {
	// guardLoopback leaves APIs on other addresses alone (they need a token).
	h := guardLoopback(&net.TCPAddr{IP: net.IPv4(192, 168, 1, 10), Port: 8080},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	rec := &statusRecorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "http://gw.example/api/v1/status", nil)
	h.ServeHTTP(rec, req)
	if rec.code != 204 {
		t.Fatalf("got %d; want 204", rec.code)
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.code = code }

func TestAPIServerClosesSlowHeaderClients(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startListeningNode(t, l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A slowloris client: a request line and one header, then nothing.
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(apiReadHeaderTimeout + 10*time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept the connection of a client that never finished its headers for %v", time.Since(start))
	}
	if d := time.Since(start); d < apiReadHeaderTimeout-time.Second {
		t.Fatalf("connection closed after %v; want about %v", d, apiReadHeaderTimeout)
	}
}

func TestAPIServerRejectsHugeHeaders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startListeningNode(t, l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Repeat("x", 2*apiMaxHeaderBytes)
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n", big)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("got %d; want 431", resp.StatusCode)
	}
}
