package uplink

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandlerStatusAndFlush(t *testing.T) {
	cfg := testConfig(t)
	sp := &memSpool{}
	sp.add(epochRows("agg", 0, 1, 3)...)
	u, _ := startUploader(t, cfg, sp, Options{})
	srv := httptest.NewServer(Handler(map[string]*Uploader{"cloud": u}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/flush?timeout=10s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sp.len() != 0 {
		t.Fatalf("flush: HTTP %d, spool %d; want 200 and an empty spool", resp.StatusCode, sp.len())
	}
	resp, err = http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if got := st["cloud"]; got.Objects != 1 || got.Rows != 3 || got.Target != TargetLocal {
		t.Fatalf("status = %+v; want 1 object of 3 rows to local", got)
	}
	resp, err = http.Post(srv.URL+"/flush?sink=nope", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("flush unknown sink: HTTP %d; want 404", resp.StatusCode)
	}
}
