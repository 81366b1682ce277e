package node

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/mesh"
)

// meshMember is an in-process node with a mesh section and its API on a
// loopback port (the other members pull pipelines from it).
type meshMember struct {
	*testNode
	url string
}

// startMeshMember starts node name joining join, with the API token tok
// and the pipelines given; edit may change its config.
func startMeshMember(t *testing.T, name string, join []string, pipelines map[string]string, edit func(*Config)) *meshMember {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), pipelines)
	cfg.Mesh = &mesh.Config{Name: name, Bind: "127.0.0.1:0", Join: join}
	cfg.API.Token = "tok"
	if edit != nil {
		edit(&cfg)
	}
	return startMeshMemberWith(t, cfg)
}

// startMeshMemberWith starts a mesh member with cfg (a restart when its
// data directory was used before).
func startMeshMemberWith(t *testing.T, cfg Config) *meshMember {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn := startNode(t, cfg, newFakeClock(t0), WithListener(l))
	return &meshMember{testNode: tn, url: "http://" + l.Addr().String()}
}

func (m *meshMember) gossipAddr(t *testing.T) string {
	t.Helper()
	var a string
	eventually(t, 5*time.Second, func() (err error) {
		a, err = m.mesh.Addr()
		return err
	})
	return a
}

// set is the member's pipeline set as GET /api/v1/mesh/pipelines answers.
func (m *meshMember) set(t *testing.T) MeshPipelines {
	t.Helper()
	code, body := do(t, "GET", m.url+"/api/v1/mesh/pipelines", "tok", "")
	if code != 200 {
		t.Fatalf("%s: GET /api/v1/mesh/pipelines: %d %s", m.mesh.Name(), code, body)
	}
	var s MeshPipelines
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (m *meshMember) status(t *testing.T) Status {
	t.Helper()
	code, body := do(t, "GET", m.url+"/api/v1/status", "tok", "")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("%s: status %d %s %v", m.mesh.Name(), code, body, err)
	}
	return st
}

// running is pipeline p's document as the member runs it ("" when it does
// not).
func (m *meshMember) running(p string) string {
	if pp := m.pipeByName(p); pp != nil {
		return string(pp.yaml)
	}
	return ""
}

// converged waits until every member's status shows one pipeline set
// (same digest, converged) with every member, and every member runs doc
// as pipeline p ("" means none runs it).
func converged(t *testing.T, ms []*meshMember, p, doc string) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		var d0 string
		for i, m := range ms {
			st := m.status(t)
			if st.Mesh == nil || st.Mesh.Pipelines == nil || len(st.Mesh.Members) != len(ms) {
				return fmt.Errorf("%s: mesh status %+v", m.mesh.Name(), st.Mesh)
			}
			ps := st.Mesh.Pipelines
			if i == 0 {
				d0 = ps.Digest
			}
			if ps.Digest != d0 || !ps.Converged {
				return fmt.Errorf("%s: digest %s converged %v; %s has %s", m.mesh.Name(), ps.Digest, ps.Converged, ms[0].mesh.Name(), d0)
			}
			if got := m.running(p); got != doc {
				return fmt.Errorf("%s runs pipeline %s:\n%s\nwant:\n%s", m.mesh.Name(), p, got, doc)
			}
		}
		return nil
	})
}

var t2Doc = strings.ReplaceAll(strings.ReplaceAll(testPipeline, "name: t1", "name: t2"), "sensors/+/temp", "t2/+/temp")

// TestMeshPipelinesSpreadToEveryMember: a pipeline applied through the API
// of one member of three runs on all three with the same content; a change
// applied on another member and a deletion on the third spread the same
// way; status shows one converged set, the deletion as a tombstone.
func TestMeshPipelinesSpreadToEveryMember(t *testing.T) {
	a := startMeshMember(t, "a", nil, map[string]string{"t1": testPipeline}, nil)
	seed := []string{a.gossipAddr(t)}
	b := startMeshMember(t, "b", seed, map[string]string{"t1": testPipeline}, nil)
	c := startMeshMember(t, "c", seed, nil, nil)
	all := []*meshMember{a, b, c}
	converged(t, all, "t1", testPipeline) // c had no t1: it came from a or b

	if code, body := do(t, "PUT", a.url+"/api/v1/pipelines/t2", "tok", t2Doc); code != 201 {
		t.Fatalf("apply t2 on a: %d %s", code, body)
	}
	converged(t, all, "t2", t2Doc)

	t2b := strings.Replace(t2Doc, "temp > -100", "temp > -50", 1)
	if code, body := do(t, "PUT", b.url+"/api/v1/pipelines/t2", "tok", t2b); code != 200 {
		t.Fatalf("apply t2 on b: %d %s", code, body)
	}
	converged(t, all, "t2", t2b)
	v := c.set(t)
	for _, p := range v.Pipelines {
		if p.Name == "t2" && (p.Version != 2 || p.Node != "b" || p.Hash != mesh.ContentHash([]byte(t2b))) {
			t.Errorf("c's t2 after b's change: %+v; want version 2 by b", p.PipelineVersion)
		}
	}
	if len(v.Lost) != 0 {
		t.Errorf("an ordinary update reported as a conflict: %+v", v.Lost)
	}

	if code, body := do(t, "DELETE", c.url+"/api/v1/pipelines/t2", "tok", ""); code != 200 {
		t.Fatalf("delete t2 on c: %d %s", code, body)
	}
	converged(t, all, "t2", "")
	for _, m := range all {
		var found bool
		for _, p := range m.set(t).Pipelines {
			if p.Name == "t2" {
				found = p.Deleted && p.Version == 3 && p.Node == "c"
			}
		}
		if !found {
			t.Errorf("%s: no tombstone of t2 (version 3 by c): %+v", m.mesh.Name(), m.set(t).Pipelines)
		}
	}

	// A file written into a's pipelines directory and reloaded spreads too.
	t3 := strings.ReplaceAll(t2Doc, "name: t2", "name: t3")
	if err := os.WriteFile(filepath.Join(a.cfg.PipelinesDir, "t3.yaml"), []byte(t3), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	converged(t, all, "t3", t3)
}

// TestMeshPipelineConflictResolvesAfterHeal: two members that cannot reach
// each other (each alone, its seed down) apply different documents of one
// pipeline; when a third member joins both, the three run the same one,
// the greater version by (version, hash, node), and the losing version's
// member reports which version of which node lost.
func TestMeshPipelineConflictResolvesAfterHeal(t *testing.T) {
	a := startMeshMember(t, "a", nil, nil, nil)
	b := startMeshMember(t, "b", nil, nil, nil)
	docA := t2Doc
	docB := strings.Replace(t2Doc, "temp > -100", "temp > 0", 1)
	for _, x := range []struct {
		m   *meshMember
		doc string
	}{{a, docA}, {b, docB}} {
		if code, body := do(t, "PUT", x.m.url+"/api/v1/pipelines/t2", "tok", x.doc); code != 201 {
			t.Fatalf("apply on %s: %d %s", x.m.mesh.Name(), code, body)
		}
	}
	// Both made version 1: the greater hash wins.
	win, loser, loserNode := docA, b, "b"
	if mesh.ContentHash([]byte(docB)) > mesh.ContentHash([]byte(docA)) {
		win, loser, loserNode = docB, a, "a"
	}
	c := startMeshMember(t, "c", []string{a.gossipAddr(t), b.gossipAddr(t)}, nil, nil)
	converged(t, []*meshMember{a, b, c}, "t2", win)
	lost := loser.status(t).Mesh.Pipelines.Lost
	if len(lost) != 1 || lost[0].Pipeline != "t2" || lost[0].LostNode != loserNode || lost[0].WinnerNode == loserNode {
		t.Errorf("%s reports the lost versions %+v; want t2 of %s", loserNode, lost, loserNode)
	}
}

// TestMeshPipelineThatDoesNotValidateHereIsReported: a pipeline whose file
// sink is in a directory only the applying member allows reaches the other
// member, which does not run it and says why in status; the sets still
// converge.
func TestMeshPipelineThatDoesNotValidateHereIsReported(t *testing.T) {
	allowed := t.TempDir()
	a := startMeshMember(t, "a", nil, nil, func(c *Config) { c.Sinks.AllowedDirs = []string{allowed} })
	b := startMeshMember(t, "b", []string{a.gossipAddr(t)}, nil, nil)
	doc := strings.Replace(t2Doc, "path: clean.jsonl", "path: "+filepath.Join(allowed, "clean.jsonl"), 1)
	if code, body := do(t, "PUT", a.url+"/api/v1/pipelines/t2", "tok", doc); code != 201 {
		t.Fatalf("apply on a: %d %s", code, body)
	}
	eventually(t, 15*time.Second, func() error {
		sa, sb := a.set(t), b.set(t)
		if sa.Digest != sb.Digest || !sb.Converged {
			return fmt.Errorf("sets differ: a %s, b %s", sa.Digest, sb.Digest)
		}
		return nil
	})
	if b.running("t2") != "" {
		t.Error("b runs a pipeline that does not validate on it")
	}
	var cond string
	for _, c := range b.status(t).Conditions {
		if strings.Contains(c, `pipeline "t2"`) {
			cond = c
		}
	}
	if !strings.Contains(cond, "does not validate") || !strings.Contains(cond, "path") {
		t.Errorf("b's status conditions do not say why t2 is not applied: %q", b.status(t).Conditions)
	}
}

// TestMeshPipelinesAfterRestart: a member restarted from its data directory
// publishes the pipeline set it kept (not an empty one) and is converged
// with the others again, running the pipelines it had.
func TestMeshPipelinesAfterRestart(t *testing.T) {
	a := startMeshMember(t, "a", nil, nil, nil)
	seed := []string{a.gossipAddr(t)}
	b := startMeshMember(t, "b", seed, nil, nil)
	if code, body := do(t, "PUT", a.url+"/api/v1/pipelines/t2", "tok", t2Doc); code != 201 {
		t.Fatalf("apply t2 on a: %d %s", code, body)
	}
	converged(t, []*meshMember{a, b}, "t2", t2Doc)
	cfg := b.cfg
	b.stop(t)
	b = startMeshMemberWith(t, cfg)
	converged(t, []*meshMember{a, b}, "t2", t2Doc)
	for _, p := range b.set(t).Pipelines {
		if p.Name == "t2" && (p.Version != 1 || p.Node != "a") {
			t.Errorf("b's t2 after its restart: %+v; want version 1 by a", p.PipelineVersion)
		}
	}
}
