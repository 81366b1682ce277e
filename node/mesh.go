package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgedio/edged/mesh"
	"github.com/edgedio/edged/runner"
)

// MeshStatus is the mesh part of the node status.
type MeshStatus struct {
	// Name is this member's name.
	Name string `json:"name"`
	// Alone is set when no seed of mesh.join answered: the node processes
	// as a one-node mesh and keeps trying.
	Alone bool `json:"alone"`
	// Incompatible says why this node's join was refused (another mesh
	// protocol version or another epochs.partitions): it emits nothing.
	Incompatible string `json:"incompatible,omitempty"`
	// GossipBytes is how many bytes this node sent to the other members
	// (membership, terms, marks) since it started.
	GossipBytes uint64 `json:"gossipBytesSent"`
	// Rejected counts gossip messages rejected for not carrying mesh.key.
	Rejected uint64 `json:"rejectedGossip"`
	// Members are the live members as this node sees them.
	Members []mesh.Member `json:"members"`
	// Pipelines is this member's pipeline set, spread through the mesh
	// (meshpipelines.go).
	Pipelines *MeshPipelines `json:"pipelines,omitempty"`
}

// meshTermsFile holds the highest ownership term of every partition.
const meshTermsFile = "mesh-terms.json"

// startMesh joins the site's mesh when the config has a mesh section; the
// returned function leaves it and waits for the mesh to stop.
func (n *Node) startMesh(ctx context.Context) (func(), error) {
	if n.cfg.Mesh == nil {
		return func() {}, nil
	}
	parts := n.cfg.Epochs.Partitions
	if parts <= 0 {
		parts = runner.DefaultPartitions
	}
	_, err := os.Stat(filepath.Join(n.cfg.DataDir, meshTermsFile))
	n.ho.n = n
	n.ho.enabled = n.cfg.Mesh.FetchState == nil || *n.cfg.Mesh.FetchState
	if n.ho.enabled {
		// handover.go: which partitions' state here is current
		if err := n.ho.loadCurrent(n.cfg.DataDir, !errors.Is(err, fs.ErrNotExist)); err != nil {
			return nil, err
		}
	}
	m, err := mesh.New(*n.cfg.Mesh, mesh.Options{Logger: n.log, APIAddr: n.APIAddr(), Partitions: parts,
		StateFile: filepath.Join(n.cfg.DataDir, meshTermsFile)})
	if err != nil {
		return nil, err
	}
	n.mesh = m
	n.ho.n = n
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := n.startPipelineSync(mctx); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(mctx); err != nil {
			n.log.Error("mesh stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done; n.ho.wg.Wait() }, nil
}

// ownership is what the runners follow: the mesh's claims, or nil (a
// gateway on its own) without a mesh.
func (n *Node) ownership() runner.Ownership {
	if n.mesh == nil {
		return nil
	}
	return handoverOwner{meshOwnership{n.mesh}, &n.ho}
}

// meshOwnership adapts the mesh to the runner's Ownership and Marker.
type meshOwnership struct{ m *mesh.Node }

func (o meshOwnership) Claims(pipeline string, np int) []runner.Claim {
	mc := o.m.Claims(pipeline, np)
	cs := make([]runner.Claim, len(mc))
	for i, c := range mc {
		cs[i] = runner.Claim{Partition: c.Partition, Term: c.Term, Emit: c.Emit}
	}
	return cs
}

func (o meshOwnership) Committed(pipeline string, marks []runner.Mark) {
	ms := make([]mesh.Mark, len(marks))
	for i, m := range marks {
		ms[i] = mesh.Mark{Partition: m.Partition, Term: m.Term, Watermark: m.Watermark}
	}
	o.m.Committed(pipeline, ms)
}

func (o meshOwnership) EmittedThrough(pipeline string, partition int) (int64, bool) {
	return o.m.EmittedThrough(pipeline, partition)
}

// standbyHold is how long standbys keep their outputs (mesh.standbyHold);
// zero without a mesh.
func (n *Node) standbyHold() time.Duration {
	if n.cfg.Mesh == nil {
		return 0
	}
	return n.cfg.Mesh.Defaults().StandbyHold
}

// meshStatus adds the mesh's members and conditions to st.
func (n *Node) meshStatus(st *Status) {
	if n.mesh == nil {
		return
	}
	_, alone := n.mesh.Ready()
	ms := &MeshStatus{Name: n.mesh.Name(), Alone: alone, Incompatible: n.mesh.Incompatible(), GossipBytes: n.mesh.GossipBytes(), Rejected: n.mesh.Rejected(), Members: n.mesh.Members()}
	st.Mesh = ms
	if ms.Pipelines = n.meshPipelineStatus(); ms.Pipelines != nil {
		st.Conditions = append(st.Conditions, meshPipelineConditions(ms.Pipelines)...)
	}
	if ms.Incompatible != "" {
		st.Conditions = append(st.Conditions, "mesh: cannot join the site's mesh, emitting nothing: "+ms.Incompatible)
	} else if alone {
		st.Conditions = append(st.Conditions, "mesh: no seed of mesh.join answered; processing as a one-node mesh and retrying")
	}
	if ms.Rejected > 0 {
		st.Conditions = append(st.Conditions, fmt.Sprintf("mesh: rejected %d gossip messages not encrypted with mesh.key (a node with another key?)", ms.Rejected))
	}
}

// PartitionsResponse is the answer of GET /api/v1/partitions.
type PartitionsResponse struct {
	// Mesh is false for a gateway on its own: it holds every partition at
	// term 1.
	Mesh bool `json:"mesh"`
	// Node is this member's name (empty without a mesh).
	Node string `json:"node,omitempty"`
	// Partitions is the holding table of every pipeline this node runs.
	Partitions []mesh.Holding `json:"partitions"`
}

// handlePartitions answers the holding table: owner, standbys and term of
// every partition of every pipeline this node runs.
func (n *Node) handlePartitions(w http.ResponseWriter, _ *http.Request) {
	if n.mesh == nil {
		resp := PartitionsResponse{Partitions: []mesh.Holding{}}
		for _, p := range n.sortedPipes() {
			for i := range p.r.Partitions() {
				resp.Partitions = append(resp.Partitions, mesh.Holding{Pipeline: p.name, Partition: i, Owner: "", Standbys: []string{}, Term: 1})
			}
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	running := map[string]bool{}
	for _, p := range n.sortedPipes() {
		running[p.name] = true
	}
	t := []mesh.Holding{}
	for _, h := range n.mesh.Table() {
		if running[h.Pipeline] {
			t = append(t, h)
		}
	}
	writeJSON(w, http.StatusOK, PartitionsResponse{Mesh: true, Node: n.mesh.Name(), Partitions: t})
}

// claimFrom is the uplink's Options.ClaimFrom: where this node's windows
// of a partition start under a term (mesh.Node.TermFrom).
func (n *Node) claimFrom(pipeline string, partition int, term uint64) (int64, bool) {
	if n.mesh == nil {
		return 0, false
	}
	return n.mesh.TermFrom(pipeline, partition, term)
}

// ownTerm is the uplink's Options.OwnTerm: the term under which this node
// owns a partition now (mesh.Node.OwnTerm).
func (n *Node) ownTerm(pipeline string, partition int) (uint64, bool) {
	if n.mesh == nil {
		return 0, false
	}
	return n.mesh.OwnTerm(pipeline, partition)
}

// handleDrain hands every partition this node holds to its peers
// (edgectl drain) and answers once it holds none: 200, or 504 after
// ?timeout= (default 30s); 501 without a mesh. The node keeps running,
// holding nothing, until it is stopped.
func (n *Node) handleDrain(w http.ResponseWriter, r *http.Request) {
	if n.mesh == nil {
		writeErr(w, http.StatusNotImplemented, errors.New("no mesh on this node: there is no peer to hand its partitions to"))
		return
	}
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			writeErr(w, http.StatusBadRequest, errors.New("timeout: want a positive duration like 30s"))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := n.mesh.Drain(ctx); err != nil {
		code := http.StatusGatewayTimeout
		if errors.Is(err, mesh.ErrNotRunning) || !errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusConflict
		}
		writeErr(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": n.mesh.Name(), "drained": true})
}
