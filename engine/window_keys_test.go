package engine

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
)

// TestTumblingPanesStoreTheDictionarysKeys protects the keys entries a
// tumbling window writes from its panes' copy of their keys (wpane.kenc):
// they must be byte for byte those written from the dictionary, for string
// keys and for keys of several fields with numbers (-0 folded to 0), nulls
// and strings (short and over 127 bytes), with windows that gain keys over several epochs and across a
// restore from the checkpoint.
func TestTumblingPanesStoreTheDictionarysKeys(t *testing.T) {
	s := MustSchema(Field{"k", KindString}, Field{"n", KindNumber}, Field{"v", KindNumber})
	for _, keys := range [][]string{{"k"}, {"k", "n"}, {"n"}} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			cfg := WindowConfig{Keys: keys, Size: 1000,
				Aggs: []AggSpec{{Func: "count", As: "rows"}, {Func: "sum", Field: "v", As: "sum"}}}
			type run struct {
				x     *Executor
				store *MemStore
				op    *timeWinOp
			}
			start := func(store *MemStore, keepEnc bool) run {
				op := WindowAggregate(cfg).(*timeWinOp)
				b := NewBuilder("t")
				b.Sink("out", b.Source("in", s, WithWatermark(0)).Then("op", op))
				p, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				x, err := NewExecutor(p, Options{Store: store})
				if err != nil {
					t.Fatal(err)
				}
				if !op.keepEnc {
					t.Fatal("a tumbling window does not keep its panes' keys")
				}
				op.keepEnc = keepEnc
				return run{x, store, op}
			}
			pane, dict := start(NewMemStore(), true), start(NewMemStore(), false)
			for epoch := range 8 {
				if epoch%2 == 1 { // restart the pane-copy side mid-window, from its checkpoint
					pane = start(pane.store, true)
				}
				for _, r := range []run{pane, dict} {
					in := r.x.Input("in")
					for i := range 150 {
						rec := in.Append()
						// Each 1 s window spans two epochs; keys come back and new ones arrive.
						rec.Time = int64(epoch*500 + i)
						rec.Vals[0] = String(fmt.Sprintf("sensor-%d", (i*7+epoch*31)%97))
						if i%10 == 0 { // 120 to 131 bytes: one and two bytes of length
							rec.Vals[0] = String(strings.Repeat("k", 120+(i/10+epoch)%12))
						}
						switch i % 5 {
						case 0:
							rec.Vals[1] = Number(math.Copysign(0, -1))
						case 1:
							rec.Vals[1] = Number(0)
						case 2: // null
						default:
							rec.Vals[1] = Number(float64(i % 3))
						}
						rec.Vals[2] = Number(float64(i))
					}
					if _, err := r.x.RunEpochAt(context.Background(), int64(epoch)); err != nil {
						t.Fatal(err)
					}
				}
				got, want := memState(pane.store), memState(dict.store)
				if len(want) == 0 {
					t.Fatal("no state written")
				}
				if !maps.Equal(got, want) {
					for k, v := range want {
						if got[k] != v {
							t.Fatalf("epoch %d: entry %q = %x, from the dictionary %x", epoch, k, got[k], v)
						}
					}
					t.Fatalf("epoch %d: %d entries, from the dictionary %d", epoch, len(got), len(want))
				}
			}
		})
	}
}

// memState returns every state entry of a MemStore, by namespace and key.
func memState(m *MemStore) map[string]string {
	out := map[string]string{}
	for _, p := range m.parts {
		for ns, kv := range p.state {
			for k, v := range kv {
				out[ns+"/"+k] = string(*v)
			}
		}
	}
	return out
}
