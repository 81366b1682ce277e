package mesh

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRendezvousBalanceAndMinimalMovement is a seeded property test: for
// random member sets, ownership is balanced, a joining member takes only
// partitions that move to it, and a leaving member's partitions go to their
// first standby while no other partition moves.
func TestRendezvousBalanceAndMinimalMovement(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const pipes, parts = 16, 64
	for round := range 20 {
		nm := 2 + rng.IntN(9)
		var members []string
		for i := range nm {
			members = append(members, fmt.Sprintf("gw-%d-%x", i, rng.Uint32()))
		}
		owner := func(ms []string, pipe string, p int) []string { return Rank(ms, pipe, p, 2) }
		owns := map[string]int{}
		for pi := range pipes {
			for p := range parts {
				owns[owner(members, fmt.Sprint("pipe", pi), p)[0]]++
			}
		}
		mean := float64(pipes*parts) / float64(nm)
		for m, c := range owns {
			if float64(c) < 0.6*mean || float64(c) > 1.4*mean {
				t.Errorf("seed %d round %d: %s owns %d partitions, mean %.0f (members %d)", seed, round, m, c, mean, nm)
			}
		}
		if len(owns) != nm {
			t.Errorf("seed %d round %d: %d of %d members own something", seed, round, len(owns), nm)
		}
		joiner := fmt.Sprintf("new-%x", rng.Uint32())
		grown := append(slices.Clone(members), joiner)
		gone := members[rng.IntN(nm)]
		shrunk := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == gone })
		for pi := range pipes {
			pipe := fmt.Sprint("pipe", pi)
			for p := range parts {
				before := owner(members, pipe, p)
				if after := owner(grown, pipe, p)[0]; after != before[0] && after != joiner {
					t.Fatalf("seed %d: %s/%d moved from %s to %s when %s joined", seed, pipe, p, before[0], after, joiner)
				}
				after := owner(shrunk, pipe, p)[0]
				switch {
				case before[0] != gone && after != before[0]:
					t.Fatalf("seed %d: %s/%d moved from %s to %s when %s left", seed, pipe, p, before[0], after, gone)
				case before[0] == gone && after != before[1]:
					t.Fatalf("seed %d: %s/%d of %s went to %s, not its first standby %s", seed, pipe, p, gone, after, before[1])
				}
			}
		}
	}
}

func TestConfigValidateNamesEveryBadKey(t *testing.T) {
	c := Config{Bind: "nohost", Advertise: "10.0.0.1:0", Join: []string{"ok:1", "bad"}, Key: "short",
		Standbys: -2, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond, SuspicionMult: -1}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"mesh.bind", "mesh.advertise", "mesh.join[1]", "mesh.key", "mesh.standbys", "mesh.probeTimeout", "mesh.suspicionMult"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	if strings.Contains(err.Error(), "join[0]") {
		t.Errorf("valid join[0] reported: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	d := Config{Standbys: -1}.Defaults()
	if d.Standbys != 0 || d.ProbeInterval != 200*time.Millisecond || d.SuspicionMult != 2 || d.GossipInterval != 50*time.Millisecond || d.StandbyHold != 5*time.Second {
		t.Errorf("Defaults: %+v", d)
	}
}

func TestTermsMergeTakesTheHighestAndIsDeterministic(t *testing.T) {
	a := termTable{"p/0": {Term: 3, Owner: "a"}, "p/1": {Term: 5, Owner: "b"}}
	b := termTable{"p/0": {Term: 3, Owner: "c"}, "p/1": {Term: 4, Owner: "c"}, "p/2": {Term: 1, Owner: "a"}}
	a2, b2 := termTable{}, termTable{}
	a2.merge(a)
	a2.merge(b)
	b2.merge(b)
	b2.merge(a)
	want := termTable{"p/0": {Term: 3, Owner: "c"}, "p/1": {Term: 5, Owner: "b"}, "p/2": {Term: 1, Owner: "a"}}
	for k, w := range want {
		if a2[k] != w || b2[k] != w {
			t.Errorf("%s: got %v and %v, want %v", k, a2[k], b2[k], w)
		}
	}
}
