//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/node"
)

// spreadPipeline is a small pipeline; NAME and LIMIT are replaced.
const spreadPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: NAME}
spec:
  interval: 200ms
  sources:
    - name: readings
      mqtt: {topics: ["spread/NAME/+"]}
      fields:
        - {name: sensor, type: string}
        - {name: v, type: number}
  steps:
    - name: hot
      filter: v > LIMIT
  sinks:
    - {name: out, input: hot, type: file, path: NAME.jsonl}
`

func spreadDoc(name string, limit int) string {
	return strings.NewReplacer("NAME", name, "LIMIT", fmt.Sprint(limit)).Replace(spreadPipeline)
}

// send sends a PUT (body) or DELETE to the node's API.
func (e *edgedProc) send(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runningDoc is the document the node runs as pipeline name ("" when it
// runs none).
func (e *edgedProc) runningDoc(t *testing.T, name string) string {
	t.Helper()
	resp, err := apiClient.Get("http://" + e.api + "/api/v1/pipelines/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	return string(b)
}

// TestMeshPipelinesSpreadIntegration: real edged processes on loopback.
// Two of them cannot reach each other (each alone, its seed down) and apply
// conflicting documents of one pipeline; when the third comes up and joins
// both, the three run the winning version (the greater version: two
// applies beat one) and the losing node reports its lost version. Then a
// pipeline applied on one node runs on all three, and its deletion on
// another spreads too.
func TestMeshPipelinesSpreadIntegration(t *testing.T) {
	gossip := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	mk := func(i int, join []string) *edgedProc {
		j := make([]string, len(join))
		for k, s := range join {
			j[k] = fmt.Sprintf("%q", s)
		}
		cfg := fmt.Sprintf("storage: {sync: never}\nmqtt: {listen: %q}\nmesh:\n  name: n%d\n  bind: %q\n  joinRetry: 300ms\n  join: [%s]\n",
			freeAddr(t), i, gossip[i], strings.Join(j, ", "))
		return newEdgedProc(t, cfg, nil)
	}
	a, b, c := mk(0, gossip[2:]), mk(1, gossip[2:]), mk(2, gossip[:2])
	a.launch(t)
	b.launch(t)
	all := []*edgedProc{a, b, c}

	// Partitioned: a applies twice, b once, concurrently.
	for _, x := range []struct {
		e     *edgedProc
		limit int
	}{{a, 10}, {b, 20}, {a, 30}} {
		if code, body := x.e.send(t, "PUT", "/api/v1/pipelines/p1", spreadDoc("p1", x.limit)); code/100 != 2 {
			t.Fatalf("apply p1 on %s: %d %s", x.e.api, code, body)
		}
	}
	c.launch(t)
	converge := func(name, want string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			var digest string
			for i, e := range all {
				var st node.Status
				if err := e.get("/api/v1/status", &st); err != nil {
					return err
				}
				if st.Mesh == nil || st.Mesh.Pipelines == nil || len(st.Mesh.Members) != 3 {
					return fmt.Errorf("node %d mesh status %+v", i, st.Mesh)
				}
				if i == 0 {
					digest = st.Mesh.Pipelines.Digest
				}
				if st.Mesh.Pipelines.Digest != digest || !st.Mesh.Pipelines.Converged {
					return fmt.Errorf("node %d pipeline set %s (converged %v), node 0 %s", i, st.Mesh.Pipelines.Digest, st.Mesh.Pipelines.Converged, digest)
				}
				if got := e.runningDoc(t, name); got != want {
					return fmt.Errorf("node %d runs %s:\n%s\nwant\n%s", i, name, got, want)
				}
			}
			return nil
		})
	}
	converge("p1", spreadDoc("p1", 30))
	var st node.Status
	if err := b.get("/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if l := st.Mesh.Pipelines.Lost; len(l) != 1 || l[0].Pipeline != "p1" || l[0].LostNode != "n1" || l[0].WinnerNode != "n0" {
		t.Errorf("n1 reports lost versions %+v; want its p1 lost to n0's", l)
	}
	if !strings.Contains(b.stderr.String(), "conflicting pipeline versions") {
		t.Errorf("n1's log does not report the conflict:\n%s", b.stderr)
	}

	// Connected: an apply on c and a delete on b reach every node.
	if code, body := c.send(t, "PUT", "/api/v1/pipelines/p2", spreadDoc("p2", 5)); code != 201 {
		t.Fatalf("apply p2 on n2: %d %s", code, body)
	}
	converge("p2", spreadDoc("p2", 5))
	if code, body := b.send(t, "DELETE", "/api/v1/pipelines/p2", ""); code != 200 {
		t.Fatalf("delete p2 on n1: %d %s", code, body)
	}
	converge("p2", "")
	converge("p1", spreadDoc("p1", 30))
}
