package mesh

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// Claim is one partition of a pipeline that this member holds. It mirrors
// the runner's Claim field for field (the node converts it), so that mesh
// stays a leaf.
type Claim struct {
	// Partition is the partition index, in [0, n).
	Partition int
	// Term is the partition's ownership term, agreed by all members.
	Term uint64
	// Emit is set for the owner; a standby keeps state but emits nothing.
	Emit bool
}

// Holding is one row of the holding table: who holds a partition.
type Holding struct {
	// Pipeline is the pipeline's name.
	Pipeline string `json:"pipeline"`
	// Partition is the partition index.
	Partition int `json:"partition"`
	// Owner is the member that emits the partition's outputs.
	Owner string `json:"owner"`
	// Standbys are the members that keep its state current, first first.
	Standbys []string `json:"standbys"`
	// Term is the partition's ownership term.
	Term uint64 `json:"term"`
}

// score is the rendezvous weight of member for (pipeline, partition): a
// 64-bit FNV-1a of the three, finished with a mixer so that nearby inputs
// spread.
func score(member, pipeline string, partition int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(pipeline))
	var b [9]byte
	binary.LittleEndian.PutUint64(b[1:], uint64(partition))
	h.Write(b[:])
	x := h.Sum64()
	// splitmix64 finaliser
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Rank returns the first k of members ordered by rendezvous weight for
// (pipeline, partition), highest first: [0] is the owner, the rest the
// standbys. Ties (never in practice) break by name. Rank does not modify
// members.
func Rank(members []string, pipeline string, partition, k int) []string {
	type ms struct {
		name string
		s    uint64
	}
	all := make([]ms, len(members))
	for i, m := range members {
		all[i] = ms{m, score(m, pipeline, partition)}
	}
	slices.SortFunc(all, func(a, b ms) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return cmpString(a.name, b.name)
	})
	k = min(k, len(all))
	out := make([]string, k)
	for i := range out {
		out[i] = all[i].name
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
