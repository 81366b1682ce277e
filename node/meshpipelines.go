package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgedio/edged/mesh"
)

// Pipelines spread through the mesh (see mesh/pipelines.go for the order
// and the digest). This file keeps this member's pipeline set, publishes
// its digest, and pulls what beats it from peers whose digest differs:
// their set from GET /api/v1/mesh/pipelines, the content of each winning
// version from GET /api/v1/mesh/pipelines/{name} (with the API's token),
// whose hash must match; the content is then applied exactly as an API
// apply (Node.Apply: the same parse, validation and compile). A version
// that does not validate here is kept in the set (so the set converges)
// but not run, and reported in status and the log.

// meshPipelinesFile holds this member's pipeline set across restarts.
const meshPipelinesFile = "mesh-pipelines.json"

// pipeSyncInterval is how often the members' digests are compared.
const pipeSyncInterval = 200 * time.Millisecond

// pipeSyncRetry is how long a peer is left alone after a failed pull.
const pipeSyncRetry = 2 * time.Second

// maxLosses bounds the lost versions kept for status.
const maxLosses = 20

// PipelineLoss is a pipeline version that lost a conflict: it was made
// concurrently with (not on top of) the version that won.
type PipelineLoss struct {
	// Pipeline is the pipeline's name.
	Pipeline string `json:"pipeline"`
	// Lost is the losing version and LostNode the member that made it.
	Lost     string `json:"lost"`
	LostNode string `json:"lostNode"`
	// Winner is the version every member runs instead, made by WinnerNode.
	Winner     string `json:"winner"`
	WinnerNode string `json:"winnerNode"`
	// At is when this member learnt it.
	At time.Time `json:"at"`
}

// MeshPipeline is one entry of this member's pipeline set, as status
// shows it.
type MeshPipeline struct {
	mesh.PipelineVersion
	// Failed says why this version could not be applied on this member
	// (it did not validate here); the member keeps running the previous
	// version, if any.
	Failed string `json:"failed,omitempty"`
}

// MeshPipelines is this member's pipeline set: the answer of GET
// /api/v1/mesh/pipelines and the pipelines part of the mesh status.
type MeshPipelines struct {
	// Node is this member's name.
	Node string `json:"node"`
	// Digest is the digest of the set, gossiped in the member's metadata.
	Digest string `json:"digest"`
	// Converged is set when every live member has the same digest.
	Converged bool `json:"converged"`
	// Pipelines is the set, deletions included, sorted by name.
	Pipelines []MeshPipeline `json:"pipelines"`
	// Lost are the last versions that lost a conflict, as seen here.
	Lost []PipelineLoss `json:"lost,omitempty"`
}

// pipeSync is this member's pipeline set. Lock order: Node.swapMu, then
// pipeSync.mu (Apply's hook runs under swapMu).
type pipeSync struct {
	file   string
	self   string
	client *http.Client
	scheme string
	token  string

	mu         sync.Mutex
	set        map[string]mesh.PipelineVersion
	failed     map[string]string // by name: why set[name] is not applied here
	content    map[string][]byte // by name: the document of set[name]
	lost       []PipelineLoss
	installing *mesh.PipelineVersion // the peer's version being applied (sync goroutine)
	kick       chan struct{}
}

// pipeSyncState is what meshPipelinesFile holds.
type pipeSyncState struct {
	Set    []mesh.PipelineVersion `json:"set"`
	Failed map[string]string      `json:"failed,omitempty"`
	Lost   []PipelineLoss         `json:"lost,omitempty"`
}

// startPipelineSync loads the pipeline set and runs the sync loop until ctx
// ends; called by startMesh.
func (n *Node) startPipelineSync(ctx context.Context) error {
	ps := &pipeSync{file: filepath.Join(n.cfg.DataDir, meshPipelinesFile), self: n.mesh.Name(),
		token: n.cfg.API.Token, scheme: "http", set: map[string]mesh.PipelineVersion{},
		failed: map[string]string{}, content: map[string][]byte{}, kick: make(chan struct{}, 1)}
	tr := &http.Transport{}
	if n.cfg.API.TLSCert != "" {
		// Members of a site serve the API with the site's certificate (or
		// one signed by a CA the system trusts).
		ps.scheme = "https"
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(n.cfg.API.TLSCert); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	ps.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b, err := os.ReadFile(ps.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("mesh pipelines: %w", err)
	default:
		var st pipeSyncState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("mesh pipelines: %s: %w (remove it to start over; the site's pipelines come back from the other members)", ps.file, err)
		}
		for _, v := range st.Set {
			ps.set[v.Name] = v
		}
		for k, v := range st.Failed {
			ps.failed[k] = v
		}
		ps.lost = st.Lost
	}
	n.psync = ps
	n.mesh.SetPipelineDigest(ps.digest()) // the set kept across the restart, until reconciled
	go n.runPipelineSync(ctx)
	return nil
}

// runPipelineSync records the pipelines this node started with, then
// compares digests every pipeSyncInterval and pulls from the peers that
// differ.
func (n *Node) runPipelineSync(ctx context.Context) {
	ps := n.psync
	t := time.NewTicker(pipeSyncInterval)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	n.swapMu.Lock()
	n.reconcilePipelines()
	n.swapMu.Unlock()
	seen := map[string]string{}     // by peer: the digests (theirs/ours) last pulled in full
	retry := map[string]time.Time{} // by peer: not before
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ps.kick:
		}
		if !n.Ready() {
			continue
		}
		now := time.Now()
		mine := ps.digest()
		for _, m := range n.mesh.Members() {
			if m.Self || m.API == "" || m.Pipelines == mine {
				continue
			}
			key := m.Pipelines + "/" + mine
			if seen[m.Name] == key || now.Before(retry[m.Name]) {
				continue
			}
			if err := n.pullPipelines(ctx, m); err != nil {
				if ctx.Err() == nil {
					n.log.Warn("mesh: cannot pull pipelines from a member; retrying", "member", m.Name, "api", peerAPI(m), "err", err)
				}
				retry[m.Name] = now.Add(pipeSyncRetry)
				continue
			}
			seen[m.Name] = key
			mine = ps.digest()
		}
	}
}

// digest is the set's digest.
func (ps *pipeSync) digest() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return mesh.PipelineDigest(ps.listLocked())
}

func (ps *pipeSync) listLocked() []mesh.PipelineVersion {
	out := make([]mesh.PipelineVersion, 0, len(ps.set))
	for _, v := range ps.set {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b mesh.PipelineVersion) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// pipeSetChangedLocked persists the set, publishes its digest and wakes the sync
// loop.
func (n *Node) pipeSetChangedLocked() {
	ps := n.psync
	list := ps.listLocked()
	b, _ := json.MarshalIndent(pipeSyncState{Set: list, Failed: ps.failed, Lost: ps.lost}, "", " ")
	if err := writeFileAtomic(ps.file, b); err != nil {
		n.log.Error("mesh: persist the pipeline set", "file", ps.file, "err", err)
	}
	n.mesh.SetPipelineDigest(mesh.PipelineDigest(list))
	select {
	case ps.kick <- struct{}{}:
	default:
	}
}

// adoptLocked makes v the current version of its pipeline, reporting the
// version it replaces when v was made without knowing it (a conflict).
func (n *Node) adoptLocked(v mesh.PipelineVersion, doc []byte, failed string) {
	ps := n.psync
	if cur, ok := ps.set[v.Name]; ok && !v.Includes(cur) && !v.Same(cur) {
		l := PipelineLoss{Pipeline: v.Name, Lost: cur.String(), LostNode: cur.Node, Winner: v.String(), WinnerNode: v.Node, At: time.Now().UTC()}
		ps.lost = append(ps.lost, l)
		if len(ps.lost) > maxLosses {
			ps.lost = ps.lost[len(ps.lost)-maxLosses:]
		}
		n.log.Warn("mesh: conflicting pipeline versions: the version of node "+cur.Node+" lost",
			"pipeline", v.Name, "lost", l.Lost, "lost_node", cur.Node, "winner", l.Winner, "winner_node", v.Node)
	}
	ps.set[v.Name] = v
	if doc != nil {
		ps.content[v.Name] = doc
	} else {
		delete(ps.content, v.Name)
	}
	if failed != "" {
		ps.failed[v.Name] = failed
	} else {
		delete(ps.failed, v.Name)
	}
}

// pipelineChanged records an API apply (doc) or delete (nil) of pipeline
// name on this node: a new version made by this member, or, while the sync
// loop applies a peer's version (installPipeline), that version. Called by
// Apply and Delete under swapMu.
func (n *Node) pipelineChanged(name string, doc []byte) {
	ps := n.psync
	if ps == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	cur, ok := ps.set[name]
	var h string
	if doc != nil {
		h = mesh.ContentHash(doc)
	}
	switch {
	case ps.installing != nil && ps.installing.Name == name && ps.installing.Hash == h && ps.installing.Deleted == (doc == nil):
		n.adoptLocked(*ps.installing, doc, "")
	case ok && ps.failed[name] == "" && cur.Deleted == (doc == nil) && cur.Hash == h:
		return // applied again unchanged
	default:
		n.adoptLocked(cur.Next(name, ps.self, doc), doc, "")
		n.log.Info("mesh: pipeline changed here; spreading it", "pipeline", name, "version", ps.set[name].String())
	}
	n.pipeSetChangedLocked()
}

// reconcilePipelines records what changed in the running pipelines
// without an API apply or delete: at start (files edited while the node
// was down) and after a reload of the pipelines directory. The caller
// holds swapMu.
func (n *Node) reconcilePipelines() {
	ps := n.psync
	if ps == nil || !n.Ready() {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	changed := false
	running := map[string]bool{}
	for _, p := range n.sortedPipes() {
		running[p.name] = true
		cur, ok := ps.set[p.name]
		if ok && !cur.Deleted && cur.Hash == mesh.ContentHash(p.yaml) {
			ps.content[p.name] = p.yaml
			continue
		}
		if ok && ps.failed[p.name] != "" {
			continue // running the previous version: the current one does not validate here
		}
		n.adoptLocked(cur.Next(p.name, ps.self, p.yaml), p.yaml, "")
		changed = true
	}
	for name, v := range ps.set {
		if !v.Deleted && !running[name] && ps.failed[name] == "" {
			n.adoptLocked(v.Next(name, ps.self, nil), nil, "")
			changed = true
		}
	}
	if changed {
		n.log.Info("mesh: pipelines directory differs from the mesh's set; spreading the change", "digest", mesh.PipelineDigest(ps.listLocked()))
		n.pipeSetChangedLocked()
	}
}

// pullPipelines fetches peer m's set and applies every version of it that
// beats this member's.
func (n *Node) pullPipelines(ctx context.Context, m mesh.Member) error {
	ps := n.psync
	var theirs MeshPipelines
	if err := ps.get(ctx, peerAPI(m), "/api/v1/mesh/pipelines", func(r io.Reader) error {
		return json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(&theirs)
	}); err != nil {
		return err
	}
	var errs []error
	for _, t := range theirs.Pipelines {
		v := t.PipelineVersion
		ps.mu.Lock()
		cur, ok := ps.set[v.Name]
		ps.mu.Unlock()
		if ok && !v.Beats(cur) {
			continue
		}
		if err := n.installPipeline(ctx, m, v); err != nil {
			errs = append(errs, fmt.Errorf("pipeline %q %s: %w", v.Name, v, err))
		}
	}
	return errors.Join(errs...)
}

// installPipeline applies peer m's version v here: a deletion, or its
// content fetched from m, checked against v's hash and applied as an API
// apply would. A document that does not validate here is recorded as v,
// failed, and reported; other errors are returned (tried again later).
func (n *Node) installPipeline(ctx context.Context, m mesh.Member, v mesh.PipelineVersion) error {
	ps := n.psync
	var doc []byte
	if !v.Deleted {
		err := ps.get(ctx, peerAPI(m), "/api/v1/mesh/pipelines/"+url.PathEscape(v.Name), func(r io.Reader) error {
			b, err := io.ReadAll(io.LimitReader(r, maxSpecBytes+1))
			doc = b
			return err
		})
		if err != nil {
			return err
		}
		if mesh.ContentHash(doc) != v.Hash {
			return errors.New("the member's document changed meanwhile (hash differs)")
		}
	}
	// Under swapMu no API apply, delete or reload interleaves: v is checked
	// against the current version and applied as one step.
	if !n.Ready() {
		return ErrNotReady
	}
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	ps.mu.Lock()
	cur, ok := ps.set[v.Name]
	ps.mu.Unlock()
	if ok && !v.Beats(cur) {
		return nil // a newer version arrived meanwhile
	}
	p := n.pipeByName(v.Name)
	if (v.Deleted && p == nil) || (p != nil && mesh.ContentHash(p.yaml) == v.Hash) {
		// Nothing to run differently: record the version only.
		ps.mu.Lock()
		n.adoptLocked(v, doc, "")
		n.pipeSetChangedLocked()
		ps.mu.Unlock()
		return nil
	}
	ps.mu.Lock()
	ps.installing = &v
	ps.mu.Unlock()
	defer func() {
		ps.mu.Lock()
		ps.installing = nil
		ps.mu.Unlock()
	}()
	var err error
	if v.Deleted {
		_, err = n.deleteLocked(v.Name)
	} else {
		_, err = n.applyLocked(v.Name, doc)
	}
	var ae *ApplyError
	if errors.As(err, &ae) {
		reason := strings.Join(errMessages(ae.Err), "; ")
		n.log.Error("mesh: a member's pipeline does not validate on this node; not applied (the previous version, if any, keeps running)",
			"pipeline", v.Name, "version", v.String(), "from", m.Name, "err", reason)
		ps.mu.Lock()
		n.adoptLocked(v, doc, reason)
		n.pipeSetChangedLocked()
		ps.mu.Unlock()
		return nil
	}
	if err == nil {
		n.log.Info("mesh: applied a member's pipeline version", "pipeline", v.Name, "version", v.String(), "from", m.Name)
	}
	return err
}

// errMessages is every problem of err (errors.Join) on its own.
func errMessages(err error) []string {
	if ms := splitErrors(err); len(ms) > 0 {
		return ms
	}
	return []string{err.Error()}
}

// peerAPI is where member m's API answers: its advertised API address,
// with the host of its gossip address when the API listens on every
// interface (0.0.0.0:8080).
func peerAPI(m mesh.Member) string {
	h, p, err := net.SplitHostPort(m.API)
	if err != nil {
		return m.API
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if gh, _, err := net.SplitHostPort(m.Addr); err == nil {
			return net.JoinHostPort(gh, p)
		}
	}
	return m.API
}

// get GETs path from a peer's API and hands the body to read.
func (ps *pipeSync) get(ctx context.Context, api, path string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ps.scheme+"://"+api+path, nil)
	if err != nil {
		return err
	}
	if ps.token != "" {
		req.Header.Set("Authorization", "Bearer "+ps.token)
	}
	resp, err := ps.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return read(resp.Body)
}

// meshPipelineStatus is this member's pipeline set for status and the API;
// nil without a mesh.
func (n *Node) meshPipelineStatus() *MeshPipelines {
	ps := n.psync
	if ps == nil {
		return nil
	}
	ps.mu.Lock()
	list := ps.listLocked()
	out := &MeshPipelines{Node: ps.self, Digest: mesh.PipelineDigest(list), Pipelines: make([]MeshPipeline, len(list)),
		Lost: slices.Clone(ps.lost)}
	for i, v := range list {
		out.Pipelines[i] = MeshPipeline{PipelineVersion: v, Failed: ps.failed[v.Name]}
	}
	ps.mu.Unlock()
	out.Converged = true
	for _, m := range n.mesh.Members() {
		if !m.Self && m.Pipelines != out.Digest {
			out.Converged = false
		}
	}
	return out
}

// meshPipelineRoutes serves this member's set and the documents of its
// versions to the other members.
func (n *Node) meshPipelineRoutes(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("GET /api/v1/mesh/pipelines", auth(func(w http.ResponseWriter, r *http.Request) {
		st := n.meshPipelineStatus()
		if st == nil {
			writeErr(w, http.StatusNotFound, errors.New("this node is not part of a mesh (no mesh: section)"))
			return
		}
		writeJSON(w, http.StatusOK, st)
	}))
	mux.HandleFunc("GET /api/v1/mesh/pipelines/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		ps := n.psync
		name := r.PathValue("name")
		var doc []byte
		if ps != nil {
			ps.mu.Lock()
			doc = ps.content[name]
			ps.mu.Unlock()
		}
		if doc == nil {
			writeErr(w, http.StatusNotFound, fmt.Errorf("no document of pipeline %q in this member's set", name))
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(doc)
	}))
}

// meshPipelineConditions are the status lines about the pipeline set: the
// versions that do not validate on this member.
func meshPipelineConditions(st *MeshPipelines) []string {
	var out []string
	for _, p := range st.Pipelines {
		if p.Failed != "" {
			out = append(out, fmt.Sprintf("mesh: pipeline %q %s does not validate on this node and is not applied: %s", p.Name, p.PipelineVersion.String(), p.Failed))
		}
	}
	return out
}
