package node

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidateIsADryRunWithFileLineErrors(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()

	code, body := do(t, "POST", srv.URL+"/api/v1/validate?file=pipes/t1.yaml", "", testPipeline)
	var res ValidateResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 200 {
		t.Fatalf("valid document: got %d %s; want 200", code, body)
	}
	if !res.Valid || res.Pipeline != "t1" || !res.Exists || !res.Unchanged {
		t.Fatalf("got %+v; want valid, t1, exists, unchanged", res)
	}

	bad := strings.Replace(testPipeline, "filter: temp > -100", "filter: tmp > -100", 1)
	bad = strings.Replace(bad, "interval: 1s", "interval: -1s", 1)
	code, body = do(t, "POST", srv.URL+"/api/v1/validate?file=pipes/t1.yaml", "", bad)
	if code != 400 {
		t.Fatalf("invalid document: got %d %s; want 400", code, body)
	}
	for _, want := range []string{"pipes/t1.yaml:5:", "interval"} {
		if !strings.Contains(body, want) {
			t.Errorf("errors %s do not contain %q", body, want)
		}
	}
	// Nothing changed: the running pipeline is still the original.
	if _, got := do(t, "GET", srv.URL+"/api/v1/pipelines/t1", "", ""); got != testPipeline {
		t.Fatalf("validate changed the running pipeline:\n%s", got)
	}
}

func TestInfoReportsVersionUptimeAndRates(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), map[string]string{"t1": testPipeline})
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	code, body := do(t, "GET", srv.URL+"/api/v1/info", "", "")
	var info NodeInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || code != 200 {
		t.Fatalf("got %d %s; want 200", code, body)
	}
	if info.APIVersion != APIVersion || info.Version == "" || info.UptimeSeconds <= 0 || info.Mesh {
		t.Fatalf("got %+v", info)
	}
	if len(info.Status.Pipelines) != 1 || info.Status.Pipelines[0].Name != "t1" {
		t.Fatalf("status pipelines: %+v", info.Status.Pipelines)
	}
}

func TestDashboardServedWithCSP(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil)
	cfg.API.Token = "tok"
	tn := startNode(t, cfg, newFakeClock(t0))
	srv := httptest.NewServer(tn.Handler())
	defer srv.Close()
	for _, path := range []string{"/", "/ui/app.js", "/ui/app.css"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d; want 200 (the page holds no data)", path, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("GET %s: CSP %q", path, csp)
		}
	}
	// The data behind it needs the token.
	if code, _ := do(t, "GET", srv.URL+"/api/v1/info", "", ""); code != 401 {
		t.Fatalf("info without token: %d; want 401", code)
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/history", "tok", ""); code != 200 {
		t.Fatalf("history with token: %d; want 200", code)
	}
}
