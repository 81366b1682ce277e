package runner

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgedio/edged/engine"
)

// skipPrefix starts the keys of a partition checkpoint's Input that say
// which entries of an input log the partition has not to be fed: a
// partition installed from a peer's snapshot (node/handover.go) already
// holds the effect of the entries the peer had consumed, and this node's
// log holds them at offsets of its own, interleaved with entries the peer
// had not consumed. "@skip:LOG/FROM" = TO skips the offsets FROM to TO-1.
// The older "@log:LOG" = OFF skipped every offset before OFF.
const (
	skipPrefix    = "@skip:"
	oldSkipPrefix = "@log:"
)

// SkipRanges returns the keys and values, for a partition checkpoint's
// Input, that make the runner skip the offsets offs (ascending) of input
// log lg for that partition: the runner does not feed the partition the
// records of those entries (they are in the installed state), even though
// the pipeline reads them for its other partitions. Consecutive offsets
// make one key.
func SkipRanges(lg string, offs []uint64) map[string]uint64 {
	out := map[string]uint64{}
	for i := 0; i < len(offs); {
		j := i + 1
		for j < len(offs) && offs[j] == offs[j-1]+1 {
			j++
		}
		out[skipKey(lg, offs[i])] = offs[j-1] + 1
		i = j
	}
	return out
}

func skipKey(lg string, from uint64) string {
	return skipPrefix + lg + "/" + strconv.FormatUint(from, 10)
}

// skipRange is a run of offsets [from, to) of one log a partition skips.
type skipRange struct{ from, to uint64 }

// skipped reports whether the partition skips entry off of log lg.
func (p *part) skipped(lg string, off uint64) bool {
	rs := p.skip[lg]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].to > off })
	return i < len(rs) && rs[i].from <= off
}

// Boundary is what Between shows of the runner between two epochs.
type Boundary struct {
	// Pos is the pipeline's committed input position in each log: the
	// next epoch reads from there.
	Pos map[string]uint64
	// Held reports whether the runner held a partition in the last epoch.
	Held func(partition int) bool
	// HeldOutputs returns copies of the outputs a standby partition
	// computed and did not emit (Config.StandbyHold): a node that takes
	// the partition with this node's state must emit those the previous
	// owner did not.
	HeldOutputs func(partition int) []HeldOutput
	// Adopt gives a partition, before it is restored from a peer's state,
	// the outputs that peer held as a standby: when the partition is
	// restored as owner, those past the previous owner's mark (Marker) are
	// emitted in its first epoch, under its term (none when that mark is
	// unknown); as a standby it holds them.
	Adopt func(partition int, outs []HeldOutput)
	// Reload makes the runner restore a partition it holds from its
	// stored checkpoint at the next epoch (its state was replaced), as a
	// new claim is: its held outputs are dropped (Adopt gives the peer's).
	Reload func(partition int)
}

// HeldOutput is an output a standby computed and did not emit, with the
// partition's watermarks before and after its epoch.
type HeldOutput struct {
	From, To int64
	Out      engine.Output
}

// Between runs fn between two epochs: no epoch runs (and no claim is
// followed) until fn returns, so what fn reads of the store is the state of
// Pos, and what it installs is restored at the next epoch's reconcile.
func (r *Runner) Between(fn func(b Boundary) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := func(p int) bool { return p >= 0 && p < r.nparts && r.byID[p] != nil }
	return fn(Boundary{Pos: cloneMap(r.pos), Held: held,
		HeldOutputs: func(p int) []HeldOutput {
			if !held(p) {
				return nil
			}
			out := make([]HeldOutput, len(r.byID[p].held))
			for i, h := range r.byID[p].held {
				out[i] = HeldOutput{h.from, h.to, h.out}
			}
			return out
		},
		Adopt: func(p int, outs []HeldOutput) {
			if r.adopted == nil {
				r.adopted = map[int][]HeldOutput{}
			}
			r.adopted[p] = outs
		},
		Reload: func(p int) {
			if r.reload == nil {
				r.reload = map[int]bool{}
			}
			r.reload[p] = true
		}})
}

// adopt hands a new partition the held outputs adopted for it (Adopt).
func (r *Runner) adopt(p *part) {
	hs, ok := r.adopted[p.claim.Partition]
	if !ok {
		return
	}
	delete(r.adopted, p.claim.Partition)
	now := r.clock.Now()
	if p.claim.Emit && p.fence == engine.NoWatermark {
		// Without the previous owner's mark nothing says which of them it
		// emitted: they are dropped rather than emitted twice.
		hs = nil
	}
	for _, h := range hs {
		if !p.claim.Emit {
			p.held = append(p.held, heldOutput{now, h.From, h.To, h.Out})
			continue
		}
		if r.committedBefore(&h.Out, h.From, h.To, p.fence) {
			continue
		}
		if id, err := engine.ParseOutputID(h.Out.ID); err == nil {
			id.Term = p.claim.Term
			h.Out.ID = id.String()
		}
		p.release = append(p.release, h.Out)
	}
	if p.claim.Emit {
		r.log.Info("partition taken with a peer's state", "pipeline", r.name, "partition", p.claim.Partition, "term", p.claim.Term,
			"adopted_outputs", len(p.release), "previous_owner_through", fenceString(p.fence))
	}
}

// readSkips sets p.skip from the partition's checkpoint: the runs of
// offsets, not all passed by the pipeline's position, whose records the
// partition's state already has.
func (r *Runner) readSkips(p *part) error {
	cp, err := r.cfg.Store.LastCheckpoint(r.name, p.claim.Partition)
	if err != nil {
		return err
	}
	for k, v := range cp.Input {
		var lg string
		var from uint64
		if rest, ok := strings.CutPrefix(k, skipPrefix); ok {
			i := strings.LastIndexByte(rest, '/')
			if i < 0 {
				continue
			}
			if from, err = strconv.ParseUint(rest[i+1:], 10, 64); err != nil {
				continue
			}
			lg = rest[:i]
		} else if lg, ok = strings.CutPrefix(k, oldSkipPrefix); !ok {
			continue
		}
		if v <= r.pos[lg] {
			continue
		}
		if p.skip == nil {
			p.skip = map[string][]skipRange{}
		}
		p.skip[lg] = append(p.skip[lg], skipRange{from, v})
	}
	for _, rs := range p.skip {
		slices.SortFunc(rs, func(a, b skipRange) int { return cmp.Compare(a.from, b.from) })
	}
	return nil
}

// keepSkips carries the runs of skipped offsets not yet passed by the
// epoch's new positions into the partition's commit, so that a restart
// skips them too.
func (p *part) keepSkips(in map[string]uint64, newPos map[string]uint64) map[string]uint64 {
	for lg, rs := range p.skip {
		for _, s := range rs {
			if s.to > newPos[lg] {
				if in == nil {
					in = map[string]uint64{}
				}
				in[skipKey(lg, s.from)] = s.to
			}
		}
	}
	return in
}
