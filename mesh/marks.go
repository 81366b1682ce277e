package mesh

import (
	"encoding/json"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Mark says how far an owner's committed outputs of one partition go: the
// partition's event-time watermark after the last epoch it committed. It
// mirrors the runner's Mark field for field.
type Mark struct {
	// Partition is the partition index.
	Partition int
	// Term is the term the owner emitted under.
	Term uint64
	// Watermark is the partition's watermark after the committed epoch.
	Watermark int64
}

// markMsg starts a marks message (term-table gossip is JSON and starts
// with '{').
const markMsg = 'W'

// markSendWait bounds how long Committed waits for its messages to be
// written to the partition's other holders: a holder that is slow or gone
// must not stall the owner's epochs.
const markSendWait = 300 * time.Millisecond

// marksWire is a marks message: the committed watermarks of some
// partitions of one pipeline, and (in a hand-over) the raised terms.
type marksWire struct {
	Pipeline string     `json:"p"`
	Marks    [][3]int64 `json:"m"` // partition, term, watermark
	Terms    termTable  `json:"t,omitempty"`
	From     string     `json:"f"`
}

// Committed records the watermarks an owner's runner committed and, before
// it returns (for at most markSendWait), sends those that rose to the
// other holders of each partition: its standbys and, while a hand-over is
// pending, the member that should own it. A standby promoted later, or the
// member taking a partition over, then knows how far the previous owner's
// committed outputs went (EmittedThrough) and emits the rest, no window
// twice.
func (n *Node) Committed(pipeline string, marks []Mark) {
	n.mu.Lock()
	ml := n.ml
	byPeer := map[string][][3]int64{}
	for _, m := range marks {
		k := termKey(pipeline, m.Partition)
		if !n.raiseMarkLocked(k, mark{m.Term, m.Watermark}) {
			continue
		}
		for _, peer := range Rank(n.eligibleLocked(), pipeline, m.Partition, 1+n.cfg.Standbys) {
			if peer != n.name {
				byPeer[peer] = append(byPeer[peer], [3]int64{int64(m.Partition), int64(m.Term), m.Watermark})
			}
		}
	}
	n.mu.Unlock()
	if ml == nil || len(byPeer) == 0 {
		return
	}
	msgs := map[string][]byte{}
	for peer, ms := range byPeer {
		b, _ := json.Marshal(marksWire{Pipeline: pipeline, Marks: ms, From: n.name})
		msgs[peer] = append([]byte{markMsg}, b...)
	}
	n.sendTo(ml, msgs, markSendWait)
}

// sendTo sends each member its message reliably (memberlist's TCP
// stream), in parallel, waiting at most wait for all of them.
func (n *Node) sendTo(ml *memberlist.Memberlist, msgs map[string][]byte, wait time.Duration) {
	// Addresses come from this member's own view (memberlist's Nodes
	// change under its lock).
	n.mu.Lock()
	var tos []*memberlist.Node
	for name := range msgs {
		if m, ok := n.info[name]; ok {
			host, port, err := splitHostPort(m.Addr)
			if ip := net.ParseIP(host); err == nil && ip != nil {
				tos = append(tos, &memberlist.Node{Name: name, Addr: ip, Port: uint16(port)})
			}
		}
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range tos {
		msg := msgs[m.Name]
		wg.Add(1)
		go func(to *memberlist.Node) {
			defer wg.Done()
			if err := ml.SendReliable(to, msg); err != nil {
				n.log.Debug("mesh: send marks", "to", to.Name, "err", err)
			}
		}(m)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.log.Debug("mesh: marks not all sent in time", "wait", wait)
	}
}

// EmittedThrough returns the highest watermark through which an owner of
// the partition committed its outputs, as this member last heard (from
// Committed, its own or a peer's).
//
// When this member owns the partition, the answer is also what its claim
// on the partition's uplink objects starts from (TermFrom): the runner asks
// when it starts emitting the partition under a new term.
func (n *Node) EmittedThrough(pipeline string, partition int) (int64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := termKey(pipeline, partition)
	mk, ok := n.marks[k]
	wm := mk.wm
	if e := n.terms[k]; ok && e.Owner == n.name {
		if f, have := n.termFrom[k]; !have || f.term != e.Term || f.from < wm {
			n.termFrom[k] = termFrom{e.Term, wm}
		}
	}
	return wm, ok
}

// termFrom is where this member's windows of a partition start under a
// term: the previous owner's mark when this member started emitting it.
type termFrom struct {
	term uint64
	from int64
}

// TermFrom returns the watermark after which this member's windows of the
// partition under term are its own (the previous owner committed those up
// to it); false when this member does not know (it has not emitted the
// partition under term since it started, or no previous owner's mark was
// known). The uplink records it in its claim (uplink.Claim.From).
func (n *Node) TermFrom(pipeline string, partition int, term uint64) (int64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f, ok := n.termFrom[termKey(pipeline, partition)]
	if !ok || f.term != term || f.from == math.MinInt64 {
		return 0, false // not known (MinInt64: the previous owner had no watermark yet)
	}
	return f.from, true
}

// OwnTerm returns the term under which this member owns the partition now;
// false when another member owns it.
func (n *Node) OwnTerm(pipeline string, partition int) (uint64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.terms[termKey(pipeline, partition)]
	if !ok || e.Owner != n.name {
		return 0, false
	}
	return e.Term, true
}

// receiveMarks merges a peer's marks (and the terms of a hand-over).
func (n *Node) receiveMarks(b []byte) {
	var w marksWire
	if err := json.Unmarshal(b, &w); err != nil {
		n.log.Warn("mesh: bad marks message from a peer", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range w.Marks {
		k := termKey(w.Pipeline, int(m[0]))
		n.raiseMarkLocked(k, mark{uint64(m[1]), m[2]})
	}
	if len(w.Terms) > 0 {
		if changed := n.terms.merge(w.Terms); len(changed) > 0 {
			if err := saveTerms(n.opt.StateFile, n.terms); err != nil {
				n.log.Error("mesh: persist terms", "file", n.opt.StateFile, "err", err)
			}
			n.log.Info("mesh: partitions handed over to this member", "pipeline", w.Pipeline, "from", w.From, "partitions", len(changed))
		}
	}
}

// handOverLocked tells the new owners of the given partitions (termKeys of
// pipeline, whose terms this member just raised for them) directly, with
// the watermark its committed outputs reached, so they need not wait for
// gossip. It sends from a goroutine: it is called with mu held.
func (n *Node) handOverLocked(pipeline string, keys []string) {
	ml := n.ml
	if ml == nil {
		return
	}
	type out struct {
		marks [][3]int64
		terms termTable
	}
	by := map[string]*out{}
	for _, k := range keys {
		e := n.terms[k]
		_, p, _ := splitKey(k)
		o := by[e.Owner]
		if o == nil {
			o = &out{terms: termTable{}}
			by[e.Owner] = o
		}
		o.terms[k] = e
		if mk, ok := n.marks[k]; ok {
			o.marks = append(o.marks, [3]int64{int64(p), int64(mk.term), mk.wm})
		}
	}
	msgs := map[string][]byte{}
	for to, o := range by {
		b, _ := json.Marshal(marksWire{Pipeline: pipeline, Marks: o.marks, Terms: o.terms, From: n.name})
		msgs[to] = append([]byte{markMsg}, b...)
	}
	owners := make([]string, 0, len(by))
	for o := range by {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	n.log.Info("mesh: handing partitions over", "pipeline", pipeline, "partitions", len(keys), "to", owners)
	go n.sendTo(ml, msgs, 5*time.Second)
}

// mark is the furthest committed output of a partition as heard: the
// owner's term and watermark. Marks are ordered by term, then watermark:
// after a network partition heals, a lower term's owner (which kept
// processing on its side) may report a higher watermark, but the windows
// past the higher term's mark are not its to vouch for.
type mark struct {
	term uint64
	wm   int64
}

// raiseMarkLocked keeps m for k if it is above the current mark; it
// reports whether it did.
func (n *Node) raiseMarkLocked(k string, m mark) bool {
	cur, ok := n.marks[k]
	if ok && (m.term < cur.term || m.term == cur.term && m.wm <= cur.wm) {
		return false
	}
	n.marks[k] = m
	return true
}
