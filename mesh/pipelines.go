package mesh

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// Pipelines spread through the mesh as follows (the node does the fetching
// and applying; this file holds the order and the digest):
//
//   - every member keeps one PipelineVersion per pipeline name it ever knew,
//     deletions included (tombstones, so a deleted pipeline does not come
//     back from a member that missed the deletion);
//   - its metadata carries only a digest of that set (SetPipelineDigest), so
//     gossip stays within memberlist's 512-byte metadata;
//   - a member whose digest differs from a peer's fetches the peer's set and
//     then the content of every version that beats its own from the peer's
//     node API, checks the content's hash, validates and applies it as an
//     API apply would;
//   - of two versions of one pipeline the greater by (Version, Hash, Node)
//     wins everywhere (Beats): a pure maximum, so every member ends with the
//     same set whatever order it learnt the versions in.

// PipelineVersion is one member's knowledge of one pipeline: which version
// of its content is current, or that it was deleted.
type PipelineVersion struct {
	// Name is the pipeline's name (metadata.name).
	Name string `json:"name"`
	// Version counts the changes: each apply or delete on any member sets
	// it to one more than the version it replaced.
	Version uint64 `json:"version"`
	// Hash is the SHA-256 (hex) of the pipeline document; empty for a
	// deletion.
	Hash string `json:"hash,omitempty"`
	// Node is the member whose apply or delete made this version.
	Node string `json:"node"`
	// Deleted marks a tombstone.
	Deleted bool `json:"deleted,omitempty"`
	// Clock counts, per member, the changes this version's history holds
	// (a version vector). It only tells a conflict (a version the winner
	// never saw, see Includes) from an ordinary update.
	Clock map[string]uint64 `json:"clock,omitempty"`
}

// ContentHash is the Hash of a pipeline document.
func ContentHash(doc []byte) string {
	s := sha256.Sum256(doc)
	return hex.EncodeToString(s[:])
}

// Next returns the version a change made by member node on top of v makes:
// doc is the new document, nil for a deletion.
func (v PipelineVersion) Next(name, node string, doc []byte) PipelineVersion {
	c := make(map[string]uint64, len(v.Clock)+1)
	for k, x := range v.Clock {
		c[k] = x
	}
	c[node]++
	nv := PipelineVersion{Name: name, Version: v.Version + 1, Node: node, Deleted: doc == nil, Clock: c}
	if doc != nil {
		nv.Hash = ContentHash(doc)
	}
	return nv
}

// Compare orders two versions of one pipeline by (Version, Hash, Node):
// the greater one wins on every member. A deletion has an empty hash, so of
// an update and a deletion made concurrently on the same version the update
// wins.
func (v PipelineVersion) Compare(o PipelineVersion) int {
	if c := cmp.Compare(v.Version, o.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Hash, o.Hash); c != 0 {
		return c
	}
	return cmp.Compare(v.Node, o.Node)
}

// Beats reports whether v wins over o.
func (v PipelineVersion) Beats(o PipelineVersion) bool { return v.Compare(o) > 0 }

// Includes reports whether v's history holds every change of o's, i.e. v
// replaced o knowingly (an update) rather than concurrently (a conflict
// that o lost).
func (v PipelineVersion) Includes(o PipelineVersion) bool {
	for k, x := range o.Clock {
		if v.Clock[k] < x {
			return false
		}
	}
	return true
}

// Same reports whether v and o describe the same content (or both a
// deletion), whoever made them.
func (v PipelineVersion) Same(o PipelineVersion) bool {
	return v.Deleted == o.Deleted && v.Hash == o.Hash
}

// String is "v7 (sha256 0123abcd… by gw-1)", as logs and status show a version.
func (v PipelineVersion) String() string {
	s := "v" + strconv.FormatUint(v.Version, 10)
	if v.Deleted {
		return s + " (deleted by " + v.Node + ")"
	}
	h := v.Hash
	if len(h) > 12 {
		h = h[:12]
	}
	return s + " (sha256 " + h + " by " + v.Node + ")"
}

// PipelineDigest is a short digest of a pipeline set: equal digests mean
// equal sets (the clocks aside, which do not decide anything). Empty for an
// empty set.
func PipelineDigest(set []PipelineVersion) string {
	if len(set) == 0 {
		return ""
	}
	s := slices.Clone(set)
	slices.SortFunc(s, func(a, b PipelineVersion) int { return cmp.Compare(a.Name, b.Name) })
	h := sha256.New()
	for _, v := range s {
		h.Write([]byte(v.Name))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatUint(v.Version, 10)))
		h.Write([]byte{0})
		h.Write([]byte(v.Hash))
		h.Write([]byte{0})
		h.Write([]byte(v.Node))
		h.Write([]byte{0, '\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// SetPipelineDigest publishes this member's pipeline-set digest in its
// metadata; the other members see it in Members (Member.Pipelines).
func (n *Node) SetPipelineDigest(d string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pipeDigest == d {
		return
	}
	n.pipeDigest = d
	n.refreshMetaLocked()
}
