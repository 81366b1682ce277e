package node

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgedio/edged/engine"
)

// Mapping a holder's input position into this node's log by entry
// identity (see handover.go). Both nodes log the site broker's stream, but
// each at offsets of its own, in an order of its own (at a mesh's start, or
// when a restarted node appends the broker's redelivered backlog), and
// either may lack a QoS 0 message the other has. What both logs share for
// sure is the entries themselves: an entry's identity is a 64-bit hash of
// its topic and payload (entryHash), the key the input log's own dedup
// uses. Within the dedup horizon a log holds a QoS 1 message's identity
// once, but equal QoS 0 readings as often as they came (they are not
// deduplicated): so identities are counted, as a multiset.
//
// The holder's snapshot carries, per log, the identities (with append
// times) of the entries its pipeline consumed that were appended in the
// last identityWindow (before now, and before the last one it consumed),
// and of up to
// maxUnconsumed entries it logged and has not consumed. The receiver, at
// its own position q, walks its log over that period in its own order and
// matches each entry against the consumed multiset (each identity once):
//   - a matched entry at or after q is skipped for the partition (the
//     installed state has it): its offset goes into the partition's
//     checkpoint (runner.SkipRanges), so a restart skips it too;
//   - an entry before q that the holder logged but has not consumed means
//     the holder is behind this node: the snapshot is refused (retried);
//     so is one it has not logged, while the holder logged nothing
//     inFlight later (its log may be behind this one's; else it lost it);
//   - every other entry at or after q is new to the partition and fed;
//   - a consumed identity this log lacks is either lost here (QoS 0, or it
//     came before this node subscribed: the state keeps it, which is what
//     the holder counted) or still on its way: while this log holds none of
//     the holder's entries appended at least inFlight after it (or, when it
//     holds none of the holder's at all, for inFlight after the holder
//     appended it), the receiver waits (bounded by handoverWait/2) for it.
//
// Beyond the window: an entry the holder consumed more than identityWindow
// before its last one and that this node logs at or after q would be fed
// again. The receiver takes a snapshot only when its own pipeline is caught
// up (its first unconsumed entry is at most caughtUp old), so the only such
// entries are ones delivered to the two nodes more than identityWindow -
// caughtUp apart (clock skew included).

// identityWindow is W: how far back from its last consumed entry the
// holder identifies what it consumed. It must exceed caughtUp plus how far
// apart the two nodes log one message (delivery, group commit, clock
// skew: milliseconds on a LAN with NTP); the list it sends costs 9-10
// bytes per entry and walking it costs both nodes, so it is kept short
// (2,000 msg/s: 20,000 entries, about 200 KB per partition's snapshot).
const identityWindow = 10 * time.Second

// maxUnconsumed bounds the holder's logged, unconsumed entries it
// identifies.
const maxUnconsumed = 65536

// inFlight is how much later than a consumed entry the holder appended
// another, which this node has logged, before the first one, missing here,
// is taken as lost here rather than on its way.
const inFlight = time.Second

// caughtUp is how old this node's first unconsumed entry may be when it
// takes a snapshot.
const caughtUp = 3 * time.Second

// errBehind says this node's pipeline is not caught up with its own log:
// its entries ahead may predate the holder's identity window.
var errBehind = errors.New("this node's pipeline is behind its input log")

// errInFlight says entries the holder consumed have not reached this
// node's log yet.
var errInFlight = errors.New("entries the holder consumed are not in this node's log yet")

// entryID is a logged entry's identity and append time (unix ms).
type entryID struct {
	h  uint64
	at int64
}

// logIDs is what a snapshot identifies of one input log of its holder.
type logIDs struct {
	log  string
	pos  uint64    // the holder pipeline's position
	last int64     // append time of its last consumed entry; 0: none retained
	cons []entryID // consumed, appended in the window, in log order
	next []entryID // logged, not yet consumed
}

// entryHash identifies an input entry (its topic and payload) across nodes.
func entryHash(rec []byte) uint64 {
	f := fnv.New64a()
	f.Write(rec)
	return f.Sum64()
}

// identities encodes, for each log of a pipeline's checkpoint, what the
// holder consumed in the identity window and what it logged beyond (see
// logIDs). The last encoding is kept: a node fetching many partitions
// asks at one position.
func (n *Node) identities(pipe engine.Checkpoint) []byte {
	logs := make([]string, 0, len(pipe.Input))
	for lg := range pipe.Input {
		if !strings.HasPrefix(lg, "@") {
			logs = append(logs, lg)
		}
	}
	slices.Sort(logs)
	var key []byte
	for _, lg := range logs {
		key = strconv.AppendUint(append(append(key, lg...), 0), pipe.Input[lg], 10)
	}
	n.ho.idMu.Lock()
	defer n.ho.idMu.Unlock()
	if n.ho.idKey == string(key) && n.ho.idVal != nil {
		return slices.Clip(n.ho.idVal) // shared: appending to it copies
	}
	var ls []logIDs
	for _, lg := range logs {
		ls = append(ls, n.readIDs(lg, pipe.Input[lg]))
	}
	b := slices.Clip(encodeIDs(nil, ls))
	n.ho.idKey, n.ho.idVal = string(key), b
	return b
}

// readIDs identifies log lg's entries around position pos.
func (n *Node) readIDs(lg string, pos uint64) logIDs {
	l := logIDs{log: lg, pos: pos}
	if pos > 1 {
		_ = n.db.ReadLogEntries(lg, pos-1, 1, func(off uint64, at int64, _ []byte) error {
			if off == pos-1 {
				l.last = at
			}
			return nil
		})
	}
	if l.last != 0 {
		// Older entries cannot be among those the receiver feeds: it takes
		// the snapshot only when its first unconsumed entry is at most
		// caughtUp old.
		from := n.offsetAt(lg, max(l.last, time.Now().UnixMilli())-identityWindow.Milliseconds(), pos)
		var err error
		for err == nil && from < pos {
			k := 0
			err = n.db.ReadLogEntries(lg, from, int(min(pos-from, 4096)), func(off uint64, at int64, rec []byte) error {
				k++
				from = off + 1
				if off < pos {
					l.cons = append(l.cons, entryID{entryHash(rec), at})
				}
				return nil
			})
			if k == 0 {
				break
			}
		}
	}
	_ = n.db.ReadLogEntries(lg, pos, maxUnconsumed, func(_ uint64, at int64, rec []byte) error {
		l.next = append(l.next, entryID{entryHash(rec), at})
		return nil
	})
	return l
}

// offsetAt returns the first offset of log lg before hi whose entry was
// appended at or after t (hi if none), by bisection: a log's append times
// do not decrease, and reading one entry costs one frame.
func (n *Node) offsetAt(lg string, t int64, hi uint64) uint64 {
	lo := uint64(1)
	for lo < hi {
		mid := lo + (hi-lo)/2
		off, at, found := uint64(0), int64(0), false
		_ = n.db.ReadLogEntries(lg, mid, 1, func(o uint64, a int64, _ []byte) error {
			off, at, found = o, a, true
			return nil
		})
		if !found || off >= hi || at >= t {
			hi = mid
		} else {
			lo = off + 1
		}
	}
	return lo
}

// encodeIDs appends ls to b: a count, then per log its name, position,
// last consumed append time, and the two lists (hash, then the distance
// in ms from last).
func encodeIDs(b []byte, ls []logIDs) []byte {
	b = binary.AppendUvarint(b, uint64(len(ls)))
	for _, l := range ls {
		b = binary.AppendUvarint(b, uint64(len(l.log)))
		b = append(b, l.log...)
		b = binary.AppendUvarint(b, l.pos)
		b = binary.AppendVarint(b, l.last)
		for _, ids := range [][]entryID{l.cons, l.next} {
			b = binary.AppendUvarint(b, uint64(len(ids)))
			for _, e := range ids {
				b = binary.BigEndian.AppendUint64(b, e.h)
				b = binary.AppendVarint(b, e.at-l.last)
			}
		}
	}
	return b
}

// decodeIDs reads what encodeIDs wrote and returns the rest of b.
func decodeIDs(b []byte) ([]logIDs, []byte, error) {
	bad := errors.New("malformed entry identities in the snapshot")
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	nl, ok := uv()
	if !ok || nl > 1024 {
		return nil, nil, bad
	}
	ls := make([]logIDs, 0, nl)
	for range nl {
		var l logIDs
		c, ok := uv()
		if !ok || uint64(len(b)) < c {
			return nil, nil, bad
		}
		l.log, b = string(b[:c]), b[c:]
		if l.pos, ok = uv(); !ok {
			return nil, nil, bad
		}
		if l.last, ok = sv(); !ok {
			return nil, nil, bad
		}
		for _, ids := range []*[]entryID{&l.cons, &l.next} {
			c, ok := uv()
			if !ok || uint64(len(b)) < 9*c {
				return nil, nil, bad
			}
			*ids = make([]entryID, 0, c)
			for range c {
				h := binary.BigEndian.Uint64(b)
				b = b[8:]
				d, ok := sv()
				if !ok {
					return nil, nil, bad
				}
				*ids = append(*ids, entryID{h, l.last + d})
			}
		}
		ls = append(ls, l)
	}
	return ls, b, nil
}

// idMatch is the matching of one snapshot's consumed identities against
// this node's log, kept across the partitions of one fetch round (they
// come from one holder at one position): the log is walked once, and only
// what was appended since is walked again.
type idMatch struct {
	left    map[uint64]int32 // consumed identities not matched yet
	nextAt  map[uint64]int64 // the holder's unconsumed entries
	consAt  map[uint64]int64
	scanned uint64   // walked up to here
	skip    []uint64 // matched offsets at or after q
	known   int64    // the latest holder append time of an entry logged here
	q       uint64
	behind  bool  // an entry before q the holder has not consumed
	unknown int64 // the latest append time here of an entry before q the holder has not logged (or lost)
}

// mapIDs returns, per log, the offsets of this node's log (at or after its
// position pos) whose entries the holder's state already has. The error is
// errBehind, errNotCovered (the holder has not consumed what this node
// has), or errInFlight (wait, unless lenient: then they are taken as lost).
// cache carries the matching between calls within one pause, by holder
// (from) and log position.
func (h *handover) mapIDs(from string, ls []logIDs, pos map[string]uint64, lenient bool, cache map[string]*idMatch) (map[string][]uint64, error) {
	out := map[string][]uint64{}
	now := time.Now().UnixMilli()
	for _, l := range ls {
		q := max(pos[l.log], 1)
		behind := false
		_ = h.n.db.ReadLogEntries(l.log, q, 1, func(_ uint64, at int64, _ []byte) error {
			behind = now-at > caughtUp.Milliseconds()
			return nil
		})
		if behind {
			return nil, errBehind
		}
		ck := from + "\x00" + l.log + "\x00" + strconv.FormatUint(l.pos, 10)
		m := cache[ck]
		if m == nil || m.q != q {
			m = &idMatch{left: map[uint64]int32{}, nextAt: map[uint64]int64{}, consAt: map[uint64]int64{}, known: math.MinInt64, unknown: math.MinInt64, q: q}
			for _, e := range l.cons {
				m.left[e.h]++
				m.consAt[e.h] = max(m.consAt[e.h], e.at)
			}
			for _, e := range l.next {
				if _, ok := m.nextAt[e.h]; !ok {
					m.nextAt[e.h] = e.at
				}
			}
			m.scanned = h.n.offsetAt(l.log, max(l.last, now)-(identityWindow+caughtUp+10*time.Second).Milliseconds(), h.n.logNext(l.log))
			cache[ck] = m
		}
		if err := h.walk(l.log, m); err != nil {
			return nil, err
		}
		// An entry this node consumed that the holder has not logged:
		// lost there (QoS 0), or the holder's log is behind this one's. It
		// is taken as lost only once the holder logged entries inFlight
		// later.
		hmax := l.last
		for _, e := range l.next {
			hmax = max(hmax, e.at)
		}
		if m.behind || m.unknown != math.MinInt64 && m.unknown > hmax-inFlight.Milliseconds() {
			return nil, errNotCovered
		}
		if !lenient {
			for _, e := range l.cons {
				// On its way: this log holds nothing the holder appended
				// inFlight after it, and (when it holds nothing of the
				// holder's at all: it may have subscribed later) it is
				// less than inFlight old.
				if m.left[e.h] > 0 && (m.known == math.MinInt64 && now-e.at < inFlight.Milliseconds() || m.known != math.MinInt64 && e.at > m.known-inFlight.Milliseconds()) {
					return nil, errInFlight
				}
			}
		}
		out[l.log] = slices.Clone(m.skip)
	}
	return out, nil
}

// walk matches the entries appended to lg since the last walk.
func (h *handover) walk(lg string, m *idMatch) error {
	for next := h.n.logNext(lg); m.scanned < next; {
		k := 0
		err := h.n.db.ReadLogEntries(lg, m.scanned, 4096, func(off uint64, appended int64, rec []byte) error {
			k++
			m.scanned = off + 1
			x := entryHash(rec)
			if c := m.left[x]; c > 0 {
				m.left[x] = c - 1
				m.known = max(m.known, m.consAt[x])
				if off >= m.q {
					m.skip = append(m.skip, off)
				}
				return nil
			}
			if at, ok := m.nextAt[x]; ok {
				m.known = max(m.known, at)
				if off < m.q {
					m.behind = true
				}
			} else if off < m.q {
				m.unknown = max(m.unknown, appended)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	return nil
}
