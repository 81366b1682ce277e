package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeNode serves the part of the node API that apply and rollout use, and
// can be told to refuse PUTs.
type fakeNode struct {
	mu      sync.Mutex
	docs    map[string]string
	failPut bool
	srv     *httptest.Server
}

func newFakeNode(t *testing.T, tlsServer bool) *fakeNode {
	t.Helper()
	f := &fakeNode{docs: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/info", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var pipes []map[string]any
		totals := map[string]any{}
		for name := range f.docs {
			pipes = append(pipes, map[string]any{"name": name})
			totals[name] = map[string]any{"in": 100, "invalid": 0}
		}
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "version": "fake", "totals": totals,
			"status": map[string]any{"ready": true, "pipelines": pipes}})
	})
	mux.HandleFunc("POST /api/v1/validate", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		name := "temps"
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"valid": true, "pipeline": name, "exists": f.docs[name] != "",
			"unchanged": f.docs[name] == string(body)})
	})
	mux.HandleFunc("GET /api/v1/pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		doc, ok := f.docs[r.PathValue("name")]
		if !ok {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":"no pipeline"}`)
			return
		}
		io.WriteString(w, doc)
	})
	mux.HandleFunc("PUT /api/v1/pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failPut {
			w.WriteHeader(500)
			fmt.Fprint(w, `{"error":"sink out: open /data/out/temps.jsonl: no space left on device"}`)
			return
		}
		_, existed := f.docs[r.PathValue("name")]
		f.docs[r.PathValue("name")] = string(body)
		json.NewEncoder(w).Encode(map[string]any{"created": !existed})
	})
	if tlsServer {
		f.srv = httptest.NewTLSServer(mux)
	} else {
		f.srv = httptest.NewServer(mux)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) doc(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[name]
}

// TestRolloutSummaryNamesFailedNodes: the canary is healthy, one of the
// other nodes refuses the apply: the others are updated, the summary names
// the failed node with its reason, and the exit status is 3 (partial).
func TestRolloutSummaryNamesFailedNodes(t *testing.T) {
	nodes := []*fakeNode{newFakeNode(t, false), newFakeNode(t, false), newFakeNode(t, false), newFakeNode(t, false)}
	nodes[2].failPut = true
	args := []string{"rollout", "-f", writeFile(t, "temps.yaml", tempsV3), "--watch", "0s"}
	for _, n := range nodes {
		args = append(args, "--node", n.srv.URL)
	}
	code, out, errs := ectl(t, args...)
	if code != exitPartial {
		t.Fatalf("exit %d; want 3\nstdout %s\nstderr %s", code, out, errs)
	}
	bad := strings.TrimPrefix(nodes[2].srv.URL, "http://")
	mustContain(t, "summary", out, "3 of 4 nodes updated", "failed on 1 nodes:", bad+": PUT /api/v1/pipelines/temps: 500 Internal Server Error: sink out: open /data/out/temps.jsonl: no space left on device")
	mustContain(t, "progress", errs, "rollout temps [3/3]", "FAILED")
	for i, n := range nodes {
		if want := map[bool]string{true: "", false: tempsV3}[i == 2]; n.doc("temps") != want {
			t.Errorf("node %d runs %q; want %q", i, n.doc("temps"), want)
		}
	}
}

// TestContextCAFile: an https node is trusted through the context's CA file
// and refused, in one line, without it.
func TestContextCAFile(t *testing.T) {
	n := newFakeNode(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := n.srv.Certificate()
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
	if _, err := x509.ParseCertificate(cert.Raw); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("current-context: tls\ncontexts:\n  - name: tls\n    ca: %s\n    nodes: [{name: gw, url: %q}]\n  - name: noca\n    nodes: [{name: gw, url: %q}]\n",
		caFile, n.srv.URL, n.srv.URL)), 0o600)
	if code, out, errs := ectl(t, "nodes", "--config", cfg); code != exitOK || !strings.Contains(out, "gw ") {
		t.Fatalf("with the CA: exit %d, %q, %q", code, out, errs)
	}
	code, _, errs := ectl(t, "nodes", "--config", cfg, "--context", "noca")
	if code != exitFailed || !strings.Contains(errs, "node gw:") || !strings.Contains(errs, "set the context's or node's ca") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("without the CA: exit %d, %q; want 1 and one line about the certificate", code, errs)
	}
}

func TestDeadLettersTableGolden(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/deadletters" || r.URL.Query().Get("pipeline") != "etl" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"deadLetters":[
{"id":41,"pipeline":"etl","source":"readings","reason":"decode: byte 43: unexpected end of input, want ',' or '}'","time":"2026-12-06T17:41:13.001Z","payload":"{\"sensor\":\"s-0001\""},
{"id":42,"pipeline":"etl","step":"complete","reason":"require: temp is missing","time":"2026-12-06T17:41:14.250Z","payloadBase64":"AAEC"}],
"counts":{"etl":2}}`)
	}))
	defer srv.Close()
	code, out, errs := ectl(t, "deadletters", "list", "--pipeline", "etl", "--node", srv.URL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "deadletters.golden", out)
}

// TestQueryTable: edgectl query --table asks the node for a history
// table's rows with the key values (one --key per column, commas kept) and
// the RFC 3339 range, and prints them as a table with a NODE column; a bad
// time is refused before asking.
func TestQueryTable(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tables/hourly_temp" {
			http.NotFound(w, r)
			return
		}
		got = r.URL.RawQuery
		fmt.Fprint(w, `{"table":"hourly_temp","columns":["sensor","time","temp"],"rows":[
{"sensor":"s-1,a","time":1772323200000,"time_rfc3339":"2026-03-01T00:00:00.000Z","temp":21.25}]}`)
	}))
	defer srv.Close()
	code, out, errs := ectl(t, "query", "--table", "hourly_temp", "--key", "s-1,a", "--from", "2026-03-01T00:00:00Z", "--node", srv.URL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got != "from=2026-03-01T00%3A00%3A00Z&key=s-1%2Ca&limit=1000" {
		t.Errorf("query %q", got)
	}
	if !strings.Contains(out, "SENSOR") || !strings.Contains(out, "s-1,a") || !strings.Contains(out, "21.25") {
		t.Errorf("output:\n%s", out)
	}
	if code, _, errs := ectl(t, "query", "--table", "hourly_temp", "--to", "yesterday", "--node", srv.URL); code != exitUsage || !strings.Contains(errs, "--to") {
		t.Errorf("bad --to: exit %d, %q", code, errs)
	}
}
