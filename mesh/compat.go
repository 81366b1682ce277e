package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// ProtocolVersion is the version of what members exchange (metadata, the
// term table, marks, state snapshots, pipeline sets). Members of one mesh
// must speak the same; it changes when an edged release changes the
// exchange. 3: metadata carries the digest of the member's pipeline set
// (pulled over the API when it differs), and a state snapshot maps the
// holder's position by entry identity, not by neighbouring entries. A
// member of protocol 2 would neither serve nor pull pipelines and would
// read a snapshot wrongly, so it cannot join.
const ProtocolVersion = 3

// compatible says why a member with metadata b cannot share partitions
// with this one, or nil: another mesh protocol version, or another number
// of partitions per pipeline (the members would split the keys
// differently and two of them could emit one key's windows).
func (n *Node) compatible(name string, b []byte) error {
	var md meta
	if len(b) > 0 {
		if err := json.Unmarshal(b, &md); err != nil {
			return fmt.Errorf("member %s sent metadata this node cannot read (another edged version?): %v", name, err)
		}
	}
	if md.V != ProtocolVersion {
		return fmt.Errorf("member %s speaks mesh protocol %d, this node %d: run the same edged release on every gateway of the site", name, md.V, ProtocolVersion)
	}
	if n.opt.Partitions > 0 && md.N > 0 && md.N != n.opt.Partitions {
		return fmt.Errorf("member %s splits pipelines into %d partitions (epochs.partitions), this node into %d: set the same epochs.partitions on every gateway of the site", name, md.N, n.opt.Partitions)
	}
	return nil
}

// reject records and logs (once per member and reason) why a member was
// refused.
func (n *Node) reject(name string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refusal = err.Error()
	if n.refused[name] == err.Error() {
		return
	}
	n.refused[name] = err.Error()
	n.log.Error("mesh: refusing a member that cannot share partitions with this node", "member", name, "reason", err)
}

// merge is memberlist's MergeDelegate: a join (push-pull with a member of
// another view) is refused when any of its members is incompatible; the
// joining node then stays out of the mesh (see Incompatible).
type merge Node

func (m *merge) NotifyMerge(peers []*memberlist.Node) error {
	n := (*Node)(m)
	for _, p := range peers {
		if p.Name == n.name {
			continue
		}
		if err := n.compatible(p.Name, p.Meta); err != nil {
			n.reject(p.Name, err)
			n.mu.Lock()
			n.joinRefused = err.Error()
			n.mu.Unlock()
			return err
		}
	}
	return nil
}

// alive is memberlist's AliveDelegate: gossip about an incompatible member
// does not make it a peer.
type alive Node

func (a *alive) NotifyAlive(p *memberlist.Node) error {
	n := (*Node)(a)
	if p.Name == n.name {
		return nil
	}
	if err := n.compatible(p.Name, p.Meta); err != nil {
		n.reject(p.Name, err)
		return err
	}
	return nil
}

// Incompatible returns why this node could not join its seeds ("" when it
// could, or when no seed answered at all). Such a node emits nothing: it
// keeps every partition as a standby until it is restarted with a
// compatible configuration, so it never doubles the site's outputs.
func (n *Node) Incompatible() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.incompatible {
		return n.refusal
	}
	return ""
}

// eligibleLocked returns the members that may own or stand by for
// partitions: the live members minus those draining (this one included).
// When every member drains, all of them stay eligible (nobody to hand
// over to).
func (n *Node) eligibleLocked() []string {
	out := make([]string, 0, len(n.members))
	for _, m := range n.members {
		if m == n.name && n.draining || m != n.name && n.info[m].Draining {
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return n.members
	}
	return out
}

// Drain makes this member hand every partition it owns or stands by for
// to the others: it announces it in its metadata, the others stop ranking
// it, and its runners hand its partitions over at their next epoch
// boundary (with their last marks, so nothing is lost or doubled). It
// returns once this member owns no partition of any pipeline its runners
// ask about, or with ctx's error. A drained member keeps running, holding
// nothing, until it is stopped; there is no undrain short of a restart.
func (n *Node) Drain(ctx context.Context) error {
	n.mu.Lock()
	if n.ml == nil {
		n.mu.Unlock()
		return ErrNotRunning
	}
	if len(n.members) < 2 {
		n.mu.Unlock()
		return errors.New("mesh: no other member to hand the partitions to")
	}
	if !n.draining {
		n.draining = true
		n.log.Info("mesh: draining: handing every partition to the other members")
		n.refreshMetaLocked()
	}
	n.mu.Unlock()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		owned := 0
		for _, h := range n.Table() {
			if h.Owner == n.name {
				owned++
			}
		}
		if owned == 0 {
			n.log.Info("mesh: drained: this member holds no partition")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mesh: drain: %d partitions not handed over yet: %w", owned, ctx.Err())
		case <-t.C:
		}
	}
}
