package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrNotRunning is returned by Node methods that need the memberlist while
// Run is not running.
var ErrNotRunning = errors.New("mesh: not running")

// Options are what the node hands the mesh besides its Config.
type Options struct {
	// Logger receives the mesh's and memberlist's log lines. Nil means
	// slog.Default().
	Logger *slog.Logger
	// APIAddr is this node's API address, carried in its metadata so that
	// peers (and edgectl) can reach it.
	APIAddr string
	// Partitions is the node's number of partitions per partitionable
	// pipeline (epochs.partitions); members with another number cannot
	// join. Zero means not checked.
	Partitions int
	// StateFile is where the highest term of every partition is persisted
	// (fsynced at every change), so terms never go backwards across
	// restarts. Empty means not persisted (tests).
	StateFile string
}

// Member is one live member of the mesh, as status shows it.
type Member struct {
	// Name is the member's name (mesh.name).
	Name string `json:"name"`
	// Addr is its gossip host:port.
	Addr string `json:"addr"`
	// API is its node API address, from its metadata.
	API string `json:"api,omitempty"`
	// Owns and Standby count the partitions it holds, from its metadata.
	Owns    int `json:"owns"`
	Standby int `json:"standby"`
	// State is alive or suspect.
	State string `json:"state"`
	// Draining is set while the member hands its partitions over
	// (edgectl drain): it is no longer an owner or standby.
	Draining bool `json:"draining,omitempty"`
	// Self marks this node.
	Self bool `json:"self,omitempty"`
	// Pipelines is the digest of its pipeline set (pipelines.go), from its
	// metadata: members with equal digests run the same pipeline versions.
	Pipelines string `json:"pipelines,omitempty"`
}

// meta is a member's metadata (at most memberlist.MetaMaxSize bytes): its
// API address and the partitions it holds (counts, and the partitions
// themselves while they fit).
type meta struct {
	V       int              `json:"v"`           // ProtocolVersion
	N       int              `json:"n,omitempty"` // Options.Partitions
	D       bool             `json:"d,omitempty"` // draining: hands its partitions over
	API     string           `json:"a,omitempty"`
	Owns    int              `json:"o"`
	Standby int              `json:"s"`
	Held    map[string][]int `json:"h,omitempty"` // owned partitions by pipeline
	P       string           `json:"p,omitempty"` // pipeline-set digest (pipelines.go)
}

// Node is this gateway's membership in the mesh and the Ownership its
// runners follow. Claims, Table, Members and Rejected are safe for
// concurrent use; Run runs once.
type Node struct {
	cfg  Config
	opt  Options
	log  *slog.Logger
	name string
	key  []byte

	mu           sync.Mutex
	terms        termTable
	members      []string // live member names, sorted; self only until Run joined
	live         map[string]bool
	info         map[string]Member    // what status shows of each live member
	pipes        map[string]int       // pipelines asked about, with their partition counts
	marks        map[string]mark      // by termKey: the furthest an owner committed, by term then watermark (Committed)
	termFrom     map[string]termFrom  // by termKey: where this member's windows start under its term (TermFrom)
	waiting      map[string]time.Time // by termKey: since when a live previous owner is expected to hand over
	refusal      string               // why a member was last refused (compat.go)
	refused      map[string]string    // by member: the reason logged
	incompatible bool                 // this node's join was refused: it emits nothing
	joinRefused  string               // why the running join attempt was refused
	draining     bool                 // Drain: this member hands its partitions over
	ready        bool                 // the first join attempt is over
	alone        bool                 // no seed was reachable
	saveErr      error
	ml           *memberlist.Memberlist
	queue        *memberlist.TransmitLimitedQueue
	metaBuf      []byte
	metaDirt     chan struct{}
	pipeDigest   string // this member's pipeline-set digest (pipelines.go)
	addr         string // the gossip address advertised, set by Run (Addr)

	rejected atomic.Uint64
	sent     atomic.Uint64 // bytes sent to other members (GossipBytes)
	crashed  atomic.Bool   // tests: memberlist was shut down without leaving
	nmembers atomic.Int64  // len(members), for the broadcast queue
}

// New checks cfg and loads the persisted terms. The mesh starts in Run.
func New(cfg Config, opt Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	key, _ := cfg.SecretKey()
	name := cfg.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("mesh.name is empty and the host name is unknown: %v", err)
		}
		name = h
	}
	terms, err := loadTerms(opt.StateFile)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, opt: opt, log: opt.Logger.With("component", "mesh"), name: name, key: key,
		terms: terms, members: []string{name}, live: map[string]bool{}, info: map[string]Member{}, pipes: map[string]int{}, marks: map[string]mark{}, termFrom: map[string]termFrom{}, waiting: map[string]time.Time{}, refused: map[string]string{}, metaDirt: make(chan struct{}, 1)}
	n.nmembers.Store(1)
	n.refreshMetaLocked() // the metadata (protocol, partitions) is sent from the first contact
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: n.numMembers, RetransmitMult: 3}
	return n, nil
}

// Name returns this member's name.
func (n *Node) Name() string { return n.name }

// Rejected returns how many gossip messages were rejected because they were
// not encrypted with this mesh's key (or were encrypted when this mesh has
// none).
func (n *Node) Rejected() uint64 { return n.rejected.Load() }

func (n *Node) numMembers() int { return int(n.nmembers.Load()) }

// Addr returns the gossip address this node advertises, once Run has
// started memberlist.
func (n *Node) Addr() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ml == nil {
		return "", ErrNotRunning
	}
	return n.addr, nil
}

// Ready reports whether the first join attempt is over (Claims emits only
// then) and whether no seed was reachable.
func (n *Node) Ready() (ready, alone bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready, n.alone
}

// Run starts memberlist, joins the seeds, and keeps the membership until
// ctx ends; then it leaves the mesh (so peers take over at once instead of
// waiting to declare it dead) and shuts memberlist down. It returns an error
// only when memberlist cannot start.
func (n *Node) Run(ctx context.Context) error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.name
	host, port, _ := splitHostPort(n.cfg.Bind)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if n.cfg.Advertise != "" {
		ah, ap, _ := splitHostPort(n.cfg.Advertise)
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	mc.SecretKey = n.key
	mc.ProbeInterval = n.cfg.ProbeInterval
	mc.ProbeTimeout = n.cfg.ProbeTimeout
	mc.SuspicionMult = n.cfg.SuspicionMult
	mc.SuspicionMaxTimeoutMult = n.cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval = n.cfg.GossipInterval
	mc.PushPullInterval = n.cfg.PushPullInterval
	mc.TCPTimeout = 2 * time.Second
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Merge = (*merge)(n)
	mc.Alive = (*alive)(n)
	mc.Logger = log.New(logBridge{n}, "", 0)
	tr, bound, err := newTransport(host, port, mc.Logger, &n.sent)
	if err != nil {
		return err
	}
	mc.Transport = tr
	mc.BindPort = bound
	if n.cfg.Advertise == "" {
		mc.AdvertisePort = bound
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return fmt.Errorf("mesh: start memberlist on %s (mesh.bind): %w", n.cfg.Bind, err)
	}
	ln := ml.LocalNode() // read once: memberlist rewrites it (unlocked) on every metadata update
	addr := net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	n.mu.Lock()
	n.ml, n.addr = ml, addr
	n.mu.Unlock()
	n.log.Info("mesh started", "name", n.name, "addr", addr, "encrypted", n.key != nil, "standbys", n.cfg.Standbys)

	joined := n.join(ml)
	n.mu.Lock()
	n.ready, n.alone = true, !joined
	n.mu.Unlock()

	retry := time.NewTicker(n.cfg.JoinRetry)
	defer retry.Stop()
	var rejoining atomic.Bool // one background rejoin at a time
	for {
		select {
		case <-ctx.Done():
			n.mu.Lock()
			n.ready = false
			n.mu.Unlock()
			if !n.crashed.Load() {
				if err := ml.Leave(time.Second); err != nil {
					n.log.Warn("mesh leave", "err", err)
				}
			}
			if err := ml.Shutdown(); err != nil {
				n.log.Warn("mesh shutdown", "err", err)
			}
			n.mu.Lock()
			n.ml = nil
			n.mu.Unlock()
			return nil
		case <-retry.C:
			n.mu.Lock()
			alone := n.alone && len(n.members) < 2
			n.mu.Unlock()
			if alone && len(n.cfg.Join) > 0 {
				ok := n.join(ml)
				n.mu.Lock()
				n.alone = !ok
				n.mu.Unlock()
			} else if missing := n.missingSeeds(); len(missing) > 0 && rejoining.CompareAndSwap(false, true) {
				// A seed that is not a live member: after a network
				// partition longer than memberlist keeps gossiping to the
				// dead, the two sides would never meet again on their own.
				go func() {
					defer rejoining.Store(false)
					if k, err := ml.Join(missing); k > 0 {
						n.log.Info("mesh: rejoined seeds", "contacted", k, "members", ml.NumMembers())
					} else {
						n.log.Debug("mesh: seeds still unreachable", "join", missing, "err", err)
					}
				}()
			}
		case <-n.metaDirt:
			if err := ml.UpdateNode(time.Second); err != nil {
				n.log.Debug("mesh metadata update", "err", err)
			}
		}
	}
}

// missingSeeds returns the seeds (other than this node) whose address is
// not a live member's. A seed given by host name is resolved; one that does
// not resolve counts as missing.
func (n *Node) missingSeeds() []string {
	self, _ := n.Addr()
	live := map[string]bool{}
	for _, m := range n.Members() {
		live[m.Addr] = true
	}
	var out []string
	for _, s := range n.cfg.Join {
		if s == self || live[s] {
			continue
		}
		if a, err := net.ResolveTCPAddr("tcp", s); err == nil && (live[a.String()] || a.String() == self) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// join contacts the seeds (other than itself); true when there were none or
// at least one answered.
func (n *Node) join(ml *memberlist.Memberlist) bool {
	self, _ := n.Addr()
	var seeds []string
	for _, s := range n.cfg.Join {
		if s != self {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return true
	}
	n.mu.Lock()
	n.joinRefused = ""
	n.mu.Unlock()
	k, err := ml.Join(seeds)
	n.mu.Lock()
	refused := n.joinRefused
	wasIncompatible := n.incompatible
	n.incompatible = k == 0 && refused != ""
	n.mu.Unlock()
	if k == 0 && refused != "" {
		if !wasIncompatible {
			n.log.Error("mesh: cannot join: the seeds' mesh is incompatible with this node; it emits nothing (every partition is kept as a standby) until restarted with a compatible configuration",
				"join", seeds, "reason", refused)
		}
		return false
	}
	if k == 0 {
		n.log.Warn("mesh: no seed reachable; processing as a one-node mesh until one answers", "join", seeds, "err", err)
		return false
	}
	n.log.Info("mesh joined", "contacted", k, "members", ml.NumMembers())
	return true
}

// Claims returns the partitions of pipeline (split into nparts) that this
// member holds, as owner (Emit) or standby, with their terms. The owner of a
// partition is the live member with the highest rendezvous weight, the next
// R are its standbys. When the owner computed from the live members differs
// from the one the partition's term was raised for, the term is raised
// (persisted first) and gossiped. Before the first join attempt is over
// every partition is held as a standby, so state stays current and nothing
// is emitted on a stale view.
func (n *Node) Claims(pipeline string, nparts int) []Claim {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pipes[pipeline] = nparts
	if !n.ready || n.incompatible {
		cs := make([]Claim, nparts)
		for p := range cs {
			cs[p] = Claim{Partition: p, Term: max(n.terms[termKey(pipeline, p)].Term, 1)}
		}
		return cs
	}
	var cs []Claim
	for p, h := range n.holdLocked(pipeline, nparts, true) {
		switch {
		case h.owner == n.name:
			cs = append(cs, Claim{Partition: p, Term: h.term, Emit: true})
		case slices.Contains(h.rank, n.name):
			cs = append(cs, Claim{Partition: p, Term: h.term})
		}
	}
	return cs
}

type hold struct {
	rank  []string // owner by rendezvous, then standbys
	term  uint64
	owner string // the member that emits: rank[0], or a live previous owner that has not handed over yet
}

// handoverTimeout is how long a member that should own a partition waits
// for the live previous owner to hand it over before it takes it anyway.
const handoverTimeout = 5 * time.Second

// holdLocked ranks the members for every partition of pipeline and decides
// who emits it. When the rendezvous owner differs from the one the
// partition's term was raised for:
//   - if that previous owner is dead (not a live member), any member raises
//     the term for the new owner (they all compute the same entry);
//   - if it is alive, only it raises the term, from its runner's Claims
//     (handover), at an epoch boundary after the watermark of its last
//     emitting epoch was sent to the partition's holders (Committed); the
//     new owner keeps the partition as a standby meanwhile, for at most
//     handoverTimeout.
//
// Raised terms are persisted and gossiped; a hand-over is also sent to the
// new owner directly.
func (n *Node) holdLocked(pipeline string, nparts int, handover bool) []hold {
	out := make([]hold, nparts)
	var changed []string
	var handed []string
	now := time.Now()
	for p := range nparts {
		rank := Rank(n.eligibleLocked(), pipeline, p, 1+n.cfg.Standbys)
		k := termKey(pipeline, p)
		e := n.terms[k]
		if e.Term != 0 && e.Owner != rank[0] {
			prev := e.Owner
			switch {
			case prev == n.name && !handover:
				// Shown as it is until this member's runner hands over.
				out[p] = hold{rank, e.Term, prev}
				continue
			case prev != n.name && n.live[prev]:
				since, ok := n.waiting[k]
				if !ok {
					n.waiting[k] = now
					since = now
				}
				if now.Sub(since) < handoverTimeout || !handover {
					out[p] = hold{rank, e.Term, prev}
					continue
				}
				n.log.Warn("mesh: the previous owner did not hand the partition over; taking it", "pipeline", pipeline,
					"partition", p, "previous_owner", prev, "waited", now.Sub(since).Round(time.Millisecond))
			case prev == n.name:
				handed = append(handed, k)
			}
		}
		delete(n.waiting, k)
		if e.Owner != rank[0] || e.Term == 0 {
			e = termEntry{Term: e.Term + 1, Owner: rank[0]}
			n.terms[k] = e
			changed = append(changed, k)
		}
		out[p] = hold{rank, e.Term, rank[0]}
	}
	if len(changed) > 0 {
		n.persistLocked(changed)
	}
	if len(handed) > 0 {
		n.handOverLocked(pipeline, handed)
	}
	return out
}

// persistLocked saves the table and gossips the changed entries.
func (n *Node) persistLocked(changed []string) {
	if err := saveTerms(n.opt.StateFile, n.terms); err != nil {
		if n.saveErr == nil {
			n.log.Error("mesh: persist terms", "file", n.opt.StateFile, "err", err)
		}
		n.saveErr = err
	} else {
		n.saveErr = nil
	}
	part := termTable{}
	for _, k := range changed {
		part[k] = n.terms[k]
	}
	b, _ := json.Marshal(part)
	n.queue.QueueBroadcast(broadcast(b))
	n.refreshMetaLocked()
}

// refreshMetaLocked recomputes this member's metadata and asks Run to
// publish it.
func (n *Node) refreshMetaLocked() {
	m := meta{V: ProtocolVersion, N: n.opt.Partitions, D: n.draining, API: n.opt.APIAddr, Held: map[string][]int{}, P: n.pipeDigest}
	for pipe, np := range n.pipes {
		for p := range np {
			rank := Rank(n.eligibleLocked(), pipe, p, 1+n.cfg.Standbys)
			switch slices.Index(rank, n.name) {
			case -1:
			case 0:
				m.Owns++
				m.Held[pipe] = append(m.Held[pipe], p)
			default:
				m.Standby++
			}
		}
	}
	b, _ := json.Marshal(m)
	if len(b) > memberlist.MetaMaxSize {
		m.Held = nil
		b, _ = json.Marshal(m)
	}
	if !bytes.Equal(b, n.metaBuf) {
		n.metaBuf = b
		select {
		case n.metaDirt <- struct{}{}:
		default:
		}
	}
}

// Table returns the holding table of every pipeline this node was asked
// about: owner, standbys and term of each partition, as this member sees
// them (raising terms as Claims would).
func (n *Node) Table() []Holding {
	n.mu.Lock()
	defer n.mu.Unlock()
	pipes := make([]string, 0, len(n.pipes))
	for p := range n.pipes {
		pipes = append(pipes, p)
	}
	slices.Sort(pipes)
	var out []Holding
	for _, pipe := range pipes {
		var hs []hold
		if n.ready {
			hs = n.holdLocked(pipe, n.pipes[pipe], false)
		} else {
			for p := range n.pipes[pipe] {
				r := Rank(n.eligibleLocked(), pipe, p, 1+n.cfg.Standbys)
				hs = append(hs, hold{r, n.terms[termKey(pipe, p)].Term, r[0]})
			}
		}
		for p, h := range hs {
			sb := []string{}
			for _, m := range h.rank {
				if m != h.owner {
					sb = append(sb, m)
				}
			}
			out = append(out, Holding{Pipeline: pipe, Partition: p, Owner: h.owner, Standbys: sb, Term: h.term})
		}
	}
	return out
}

// Members returns the live members (alive or suspect), sorted by name.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ml == nil {
		return []Member{{Name: n.name, State: "stopped", Self: true}}
	}
	out := make([]Member, 0, len(n.info))
	for _, m := range n.info {
		if m.Self {
			var md meta
			_ = json.Unmarshal(n.metaBuf, &md)
			m.Owns, m.Standby, m.Pipelines = md.Owns, md.Standby, md.P
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmpString(a.Name, b.Name) })
	return out
}

// events receives memberlist's membership events. memberlist calls them
// in order while holding its own lock: they must not call back into
// memberlist, nor block.
type events Node

// setLive adds, updates or removes a member and recomputes the member
// list. It copies what it needs of m: memberlist changes it later.
func (e *events) setLive(m *memberlist.Node, alive bool) {
	n := (*Node)(e)
	name := m.Name
	n.mu.Lock()
	defer n.mu.Unlock()
	if alive {
		n.live[name] = true
		var md meta
		_ = json.Unmarshal(m.Meta, &md)
		st := "alive"
		if m.State == memberlist.StateSuspect {
			st = "suspect"
		}
		n.info[name] = Member{Name: name, Addr: m.Address(), API: md.API, Owns: md.Owns, Standby: md.Standby,
			State: st, Self: name == n.name, Draining: md.D, Pipelines: md.P}
	} else {
		delete(n.live, name)
		delete(n.info, name)
	}
	names := make([]string, 0, len(n.live)+1)
	for m := range n.live {
		names = append(names, m)
	}
	if !n.live[n.name] {
		names = append(names, n.name) // always a member of its own view
	}
	slices.Sort(names)
	n.members = names
	n.nmembers.Store(int64(len(names)))
	n.refreshMetaLocked()
}

func (e *events) NotifyJoin(m *memberlist.Node) {
	if m.Name != e.name {
		(*Node)(e).log.Info("mesh member joined", "member", m.Name, "addr", m.Address())
	}
	e.setLive(m, true)
}

func (e *events) NotifyLeave(m *memberlist.Node) {
	(*Node)(e).log.Warn("mesh member left or died", "member", m.Name, "addr", m.Address())
	e.setLive(m, false)
}

func (e *events) NotifyUpdate(m *memberlist.Node) { e.setLive(m, true) }

// delegate carries metadata and the term table. memberlist calls it from
// several goroutines; every method takes the node's lock.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.metaBuf) > limit {
		return nil
	}
	return append([]byte(nil), n.metaBuf...)
}

func (d *delegate) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == markMsg {
		(*Node)(d).receiveMarks(b[1:])
		return
	}
	d.mergeState(b)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return (*Node)(d).queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	b, _ := json.Marshal(n.terms)
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) { d.mergeState(buf) }

// mergeState merges a peer's term table (or part of it) and persists what
// rose.
func (d *delegate) mergeState(b []byte) {
	n := (*Node)(d)
	var t termTable
	if err := json.Unmarshal(b, &t); err != nil {
		n.log.Warn("mesh: bad term table from a peer", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if changed := n.terms.merge(t); len(changed) > 0 {
		if err := saveTerms(n.opt.StateFile, n.terms); err != nil {
			n.log.Error("mesh: persist terms", "file", n.opt.StateFile, "err", err)
		}
	}
}

// broadcast is a gossiped piece of the term table; a newer one never
// invalidates an older (merging is idempotent and takes the max).
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// logBridge forwards memberlist's log lines to slog and counts gossip
// rejected for its encryption.
type logBridge struct{ n *Node }

func (l logBridge) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	if strings.Contains(s, "could decrypt") || strings.Contains(s, "Decrypt packet failed") ||
		strings.Contains(s, "remote state is not encrypted") || strings.Contains(s, "encryption is not configured") {
		l.n.rejected.Add(1)
		l.n.log.Warn("mesh: rejected gossip not encrypted with mesh.key", "detail", s)
		return len(p), nil
	}
	switch {
	case strings.Contains(s, "[ERR]"):
		l.n.log.Error(s)
	case strings.Contains(s, "[WARN]"):
		l.n.log.Warn(s)
	case strings.Contains(s, "[DEBUG]"):
		l.n.log.Debug(s)
	default:
		l.n.log.Info(s)
	}
	return len(p), nil
}
