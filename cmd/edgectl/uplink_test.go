package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeUplinkAPI serves the node's uplink endpoints as the node does (the
// shape of uplink.Handler's answers), requiring token "tok".
func fakeUplinkAPI(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong bearer token"})
				return
			}
			h(w, r)
		}
	}
	last := time.Now().Add(-5 * time.Second).UTC().Format(time.RFC3339Nano)
	errAt := time.Now().Add(-1 * time.Second).UTC().Format(time.RFC3339Nano)
	mux.HandleFunc("GET /api/v1/uplink/status", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"cloud":{"target":"s3","format":"parquet","spool_known":true,"spool_depth":12,"spool_bytes":2048,
"spool_age_ns":3000000000,"retention":"backpressure","last_success":"` + last + `","last_key":"pipeline=p/x.parquet",
"last_error":"connection refused","last_error_kind":"network","last_error_at":"` + errAt + `","failures":3,
"objects":4,"rows":400,"bytes_uploaded":1536,"bytes_raw":40000,"compression_ratio":26.04,"dropped_rows":0,"dead_letters":0},
"local":{"target":"local","format":"jsonl","spool_known":true,"objects":1,"rows":2,"compression_ratio":3}}`))
	}))
	mux.HandleFunc("POST /api/v1/uplink/flush", auth(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("sink") {
		case "", "cloud":
			if r.URL.Query().Get("timeout") != "5s" {
				http.Error(w, `{"error":"timeout not passed"}`, 400)
				return
			}
			w.Write([]byte(`{"flushed":["cloud"]}`))
		case "slow":
			w.WriteHeader(http.StatusGatewayTimeout)
			w.Write([]byte(`{"error":"slow: context deadline exceeded","flushed":[]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"unknown sink nope"}`))
		}
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestUplinkCommands(t *testing.T) {
	srv := fakeUplinkAPI(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"status table", []string{"status"}, 0,
			[]string{"SINK", "cloud", "s3", "12 (2.0 KiB)", "3s", "400", "26.0x", "network", "connection refused", "local"}, ""},
		{"status json", []string{"status", "-o", "json"}, 0, []string{`"spool_depth": 12`, `"local": {`}, ""},
		{"flush all", []string{"flush", "--timeout", "5s"}, 0, []string{"flushed: cloud"}, ""},
		{"flush json", []string{"flush", "--sink", "cloud", "--timeout", "5s", "-o", "json"}, 0, []string{`"flushed": [`}, ""},
		{"flush timeout", []string{"flush", "--sink", "slow"}, 1, nil, "504 Gateway Timeout: slow: context deadline exceeded"},
		{"flush unknown sink", []string{"flush", "--sink", "nope"}, 1, nil, "unknown sink nope"},
		{"wrong token", []string{"status", "--token", "bad"}, 1, nil, "wrong or missing token (401)"},
		{"bad output", []string{"status", "-o", "xml"}, 2, nil, `-o: "xml": want table, json or yaml`},
		{"status yaml", []string{"status", "-o", "yaml"}, 0, []string{"spool_depth: 12", "local:"}, ""},
		{"bad api", []string{"status", "--api", "localhost:8080"}, 2, nil, "--api"},
		{"unknown subcommand", []string{"purge"}, 2, nil, `unknown subcommand "purge"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"uplink"}, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--api") {
				args = append(args, "--api", srv.URL)
			}
			if !strings.Contains(strings.Join(tt.args, " "), "--token") {
				args = append(args, "--token", "tok")
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit code: got %d; want %d (stdout %q, stderr %q)", code, tt.wantCode, out.String(), errb.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout: got %q; want it to contain %q", out.String(), w)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr: got %q; want it to contain %q", errb.String(), tt.wantErr)
			}
		})
	}
}
