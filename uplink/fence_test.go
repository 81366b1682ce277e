package uplink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/edgedio/edged/uplink/webhdfstest"
)

// TestHigherClaimFencesLowerWriters: two nodes that both owned a
// partition during a network partition upload to one store. Once the
// higher claim (term, then node name) is recorded, the lower writer's
// uploads are refused with ErrFenced and nothing of it is written; the
// higher writer keeps uploading; a still higher claim (a later term of the
// first node) fences the second in turn. Checked on the local directory
// target and on WebHDFS (the in-memory webhdfstest server).
func TestHigherClaimFencesLowerWriters(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) Target{
		"local": func(t *testing.T) Target { return &LocalTarget{Dir: t.TempDir()} },
		"webhdfs": func(t *testing.T) Target {
			srv := webhdfstest.New()
			t.Cleanup(srv.Close)
			return NewWebHDFSTarget(WebHDFSConfig{NameNode: srv.URL, Root: "/edged"}, nil)
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			store := mk(t)
			var exists func(key string) bool
			switch s := store.(type) {
			case *LocalTarget:
				exists = func(key string) bool {
					names, _ := s.ListNames(ctx, key[:strings.LastIndexByte(key, '/')+1])
					return strings.Contains(strings.Join(names, "\n"), key[strings.LastIndexByte(key, '/')+1:])
				}
			case *WebHDFSTarget:
				exists = func(key string) bool {
					_, err := s.Stat(ctx, s.abs(key))
					return err == nil
				}
			}
			// Two writers (two nodes) on the same store: separate wrappers.
			a, ok := Fence(store)
			if !ok {
				t.Fatalf("%T is not fenceable", store)
			}
			b, _ := Fence(store)
			scope := ClaimScope("pre", "win", "up", 3)
			put := func(w FencedTarget, key string, c Claim) error {
				return w.PutFenced(ctx, key, strings.NewReader("rows"), 4, scope, c)
			}
			if err := put(a, "pre/x/a-1.parquet", Claim{2, "a"}); err != nil {
				t.Fatalf("first writer: %v", err)
			}
			if err := put(b, "pre/x/b-1.parquet", Claim{3, "b"}); err != nil {
				t.Fatalf("higher writer: %v", err)
			}
			err := put(a, "pre/x/a-2.parquet", Claim{2, "a"})
			if !errors.Is(err, ErrFenced) {
				t.Fatalf("lower writer after the higher claim: %v; want ErrFenced", err)
			}
			if exists("pre/x/a-2.parquet") {
				t.Error("a fenced upload was written")
			}
			if !exists("pre/x/a-1.parquet") || !exists("pre/x/b-1.parquet") {
				t.Error("an upload made before the fence is missing")
			}
			// Equal terms: the node name that sorts last wins (as in the mesh).
			if err := put(a, "pre/x/a-3.parquet", Claim{3, "a"}); !errors.Is(err, ErrFenced) {
				t.Errorf("equal term, lower name: %v; want ErrFenced", err)
			}
			// A later term of a fences b.
			if err := put(a, "pre/x/a-4.parquet", Claim{4, "a"}); err != nil {
				t.Errorf("higher term of a: %v", err)
			}
			if err := put(b, "pre/x/b-2.parquet", Claim{3, "b"}); !errors.Is(err, ErrFenced) {
				t.Errorf("b after a's higher term: %v; want ErrFenced", err)
			}
			cs := store.(ClaimStore)
			best, ok, err := HighestClaim(ctx, cs, scope)
			if err != nil || !ok || best != (Claim{4, "a"}) {
				t.Errorf("highest claim: %+v %v %v; want {4 a}", best, ok, err)
			}
			// Other partitions are not fenced by this one.
			if err := b.PutFenced(ctx, "pre/x/b-p4.parquet", strings.NewReader("rows"), 4, ClaimScope("pre", "win", "up", 4), Claim{3, "b"}); err != nil {
				t.Errorf("another partition: %v", err)
			}
		})
	}
}

func TestClaimNamesSortInClaimOrder(t *testing.T) {
	cs := []Claim{{1, "z"}, {2, "a"}, {2, "b"}, {10, "a"}, {10, "a/b"}}
	for i := 1; i < len(cs); i++ {
		if !(claimName(cs[i-1]) < claimName(cs[i])) || !cs[i-1].Less(cs[i]) {
			t.Errorf("%+v should sort before %+v (%q, %q)", cs[i-1], cs[i], claimName(cs[i-1]), claimName(cs[i]))
		}
		if c, ok := parseClaimName(claimName(cs[i])); !ok || c != cs[i] {
			t.Errorf("round trip of %+v: %+v %v", cs[i], c, ok)
		}
	}
}

// termRows are n rows of one epoch of agg/part under term.
func termRows(part int, term, epoch uint64, n int) []Row {
	var rs []Row
	for i := range n {
		rs = append(rs, Row{ID: fmt.Sprintf("agg/%d/%d/%d/%d", part, term, epoch, i),
			Data: fmt.Appendf(nil, `{"sensor":"s-%d","window_start":%d,"n":%d}`, i, 1700000000000+int64(epoch)*1000, i)})
	}
	return rs
}

// TestFencedUploaderNeverUploadsALowerTermOverAHigherOne: after a network
// partition of the mesh, node a (term 2) and node b (term 3) both spooled
// windows of partition 0 for one store. b uploads first; a's rows of
// partition 0 are then refused: acknowledged (superseded), counted in
// FencedRows, and no object of a's is written for partition 0; a's rows
// of partition 1, which nobody else claims, are uploaded as usual.
func TestFencedUploaderNeverUploadsALowerTermOverAHigherOne(t *testing.T) {
	dir := t.TempDir()
	cfgFor := func(node string) Config {
		c := testConfig(t)
		c.Node, c.Local.Dir, c.Format = node, dir, FormatJSONL
		return c
	}
	spb := &memSpool{}
	spb.add(termRows(0, 3, 7, 4)...)
	ub, _ := startUploader(t, cfgFor("gw-b"), spb, Options{Fence: true})
	flush(t, ub)
	spa := &memSpool{}
	spa.add(termRows(0, 2, 5, 4)...)
	spa.add(termRows(1, 2, 5, 3)...)
	ua, _ := startUploader(t, cfgFor("gw-a"), spa, Options{Fence: true})
	flush(t, ua)
	if n := spa.len(); n != 0 {
		t.Errorf("a's spool holds %d rows; want 0 (superseded rows are acknowledged)", n)
	}
	if st := ua.Status(); st.FencedRows != 4 || st.Rows != 3 {
		t.Errorf("a's status: fenced %d rows, uploaded %d; want 4 fenced (partition 0), 3 uploaded (partition 1)", st.FencedRows, st.Rows)
	}
	var keys []string
	for k := range readDir(t, dir, FormatJSONL) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var a0, a1, b0 int
	for _, k := range keys {
		switch {
		case strings.Contains(k, "gw-a-p0-"):
			a0++
		case strings.Contains(k, "gw-a-p1-"):
			a1++
		case strings.Contains(k, "gw-b-p0-"):
			b0++
		}
	}
	if a0 != 0 || a1 != 1 || b0 != 1 {
		t.Errorf("objects %v: want b's of partition 0 and a's of partition 1 only", keys)
	}
}
