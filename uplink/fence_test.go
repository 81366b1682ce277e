package uplink

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/edgedio/edged/uplink/s3test"
	"github.com/edgedio/edged/uplink/webhdfstest"
)

// TestClaimsAreRecordedOnceAndReadBack: claims of several nodes and terms
// on one partition are recorded (idempotently) and listed in claim order
// with their From, on the local directory target, on S3 (versitygw) and on
// WebHDFS (the in-memory webhdfstest server); other partitions have their
// own.
func TestClaimsAreRecordedOnceAndReadBack(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) ClaimStore{
		"local": func(t *testing.T) ClaimStore { return &LocalTarget{Dir: t.TempDir()} },
		"webhdfs": func(t *testing.T) ClaimStore {
			srv := webhdfstest.New()
			t.Cleanup(srv.Close)
			cs, _ := ClaimStoreOf(NewWebHDFSTarget(WebHDFSConfig{NameNode: srv.URL, Root: "/edged"}, nil))
			return cs
		},
		"s3": func(t *testing.T) ClaimStore {
			cs, ok := ClaimStoreOf(objectStore(t, s3test.Start(t), "claims"))
			if !ok {
				t.Fatal("the S3 target has no ClaimStore")
			}
			return cs
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			cs := mk(t)
			scope := ClaimScope("pre", "win", "up", 3)
			for _, c := range []Claim{{3, "b", 5000}, {2, "a", -1}, {3, "b", 5000}, {4, "a/x", 9000}} {
				if err := RecordClaim(ctx, cs, scope, c); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ListClaims(ctx, cs, scope)
			if err != nil {
				t.Fatal(err)
			}
			want := []Claim{{2, "a", -1}, {3, "b", 5000}, {4, "a/x", 9000}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("claims %v; want %v", got, want)
			}
			if other, err := ListClaims(ctx, cs, ClaimScope("pre", "win", "up", 4)); err != nil || len(other) != 0 {
				t.Errorf("another partition's claims: %v %v; want none", other, err)
			}
			if ok, err := cs.CreateIfAbsent(ctx, scope+claimName(Claim{3, "b", 5000})); ok || err != nil {
				t.Errorf("creating an existing claim: %v %v; want false, nil", ok, err)
			}
		})
	}
}

// TestSupersededOnlyWhatAHigherClaimEmits: a row of a lower claim is
// superseded only when another node holds a higher claim (term, then node
// name) whose From its window end passes; rows up to From (the previous
// owner's committed windows) and rows without a window end are kept.
func TestSupersededOnlyWhatAHigherClaimEmits(t *testing.T) {
	claims := []Claim{{2, "a", -1}, {3, "b", 5000}}
	for _, c := range []struct {
		mine Claim
		end  int64
		ok   bool
		want bool
	}{
		{Claim{Term: 2, Owner: "a"}, 6000, true, true},  // b emits it
		{Claim{Term: 2, Owner: "a"}, 5000, true, false}, // a's own committed window
		{Claim{Term: 2, Owner: "a"}, 9000, false, false},
		{Claim{Term: 3, Owner: "a"}, 6000, true, true},  // equal term: b sorts last
		{Claim{Term: 3, Owner: "b"}, 6000, true, false}, // its own claim
		{Claim{Term: 4, Owner: "a"}, 6000, true, false}, // higher than every other
	} {
		if got := Superseded(claims, c.mine, c.end, c.ok); got != c.want {
			t.Errorf("Superseded(%+v, end %d, %v) = %v; want %v", c.mine, c.end, c.ok, got, c.want)
		}
	}
	// A healed network partition: a owned it under term 1, b took it under
	// term 2 from 4000 while they were apart, and a took it back under term
	// 3 from b's mark, 6000, going on from its own state. a's term 1 rows of
	// windows ending after 6000 are the only ones those windows get: kept.
	healed := []Claim{{1, "a", -1}, {2, "b", 4000}, {3, "a", 6000}}
	for _, c := range []struct {
		mine Claim
		end  int64
		want bool
	}{
		{Claim{Term: 1, Owner: "a"}, 4000, false}, // before b's claim
		{Claim{Term: 1, Owner: "a"}, 5000, true},  // b's window
		{Claim{Term: 1, Owner: "a"}, 7000, false}, // a's again, under term 3
		{Claim{Term: 2, Owner: "b"}, 5000, false},
		{Claim{Term: 2, Owner: "b"}, 7000, true},
	} {
		if got := Superseded(healed, c.mine, c.end, true); got != c.want {
			t.Errorf("after a healed partition: Superseded(%+v, end %d) = %v; want %v", c.mine, c.end, got, c.want)
		}
	}
	for _, c := range []Claim{{1, "z", -5}, {2, "a", 0}, {10, "a/b", 1 << 40}} {
		if got, ok := parseClaimName(claimName(c)); !ok || got != c {
			t.Errorf("round trip of %+v: %+v %v", c, got, ok)
		}
	}
}

// termRows are n rows of one epoch of agg/part under term; each row is a
// 1s window ending at end.
func termRows(part int, term, epoch uint64, end int64, n int) []Row {
	var rs []Row
	for i := range n {
		rs = append(rs, Row{ID: fmt.Sprintf("agg/%d/%d/%d/%d", part, term, epoch, i),
			Data: fmt.Appendf(nil, `{"sensor":"s-%d","window_start":%d,"window_end":%d,"n":%d}`, i, end-1000, end, i)})
	}
	return rs
}

// TestFencedUploaderNeverUploadsALowerTermOverAHigherOne: after a network
// partition of the mesh, node a (term 2) and node b (term 3, whose windows
// are those ending after 1700000006000) both spooled windows of partition
// 0 for one store. b uploads first and records its claim; then a uploads
// its windows up to b's From (its own committed work, which b did not
// emit) but not those after it: they are acknowledged as superseded and
// counted in FencedRows. a's rows of partition 1, which nobody else
// claims, are uploaded as usual.
func TestFencedUploaderNeverUploadsALowerTermOverAHigherOne(t *testing.T) {
	const from = 1700000006000
	dir := t.TempDir()
	cfgFor := func(node string) Config {
		c := testConfig(t)
		c.Node, c.Local.Dir, c.Format = node, dir, FormatJSONL
		return c
	}
	claimFrom := func(f int64) func(string, int, uint64) (int64, bool) {
		return func(string, int, uint64) (int64, bool) { return f, true }
	}
	spb := &memSpool{}
	spb.add(termRows(0, 3, 7, from+1000, 4)...)
	ub, _ := startUploader(t, cfgFor("gw-b"), spb, Options{Fence: true, ClaimFrom: claimFrom(from)})
	flush(t, ub)
	spa := &memSpool{}
	spa.add(termRows(0, 2, 5, from, 2)...)      // a's before b took over: kept
	spa.add(termRows(0, 2, 6, from+1000, 4)...) // during the split: b's
	spa.add(termRows(1, 2, 5, from, 3)...)
	ua, _ := startUploader(t, cfgFor("gw-a"), spa, Options{Fence: true, ClaimFrom: claimFrom(-1)})
	flush(t, ua)
	if n := spa.len(); n != 0 {
		t.Errorf("a's spool holds %d rows; want 0 (superseded rows are acknowledged)", n)
	}
	if st := ua.Status(); st.FencedRows != 4 || st.Rows != 5 {
		t.Errorf("a's status: fenced %d rows, uploaded %d; want 4 fenced, 5 uploaded", st.FencedRows, st.Rows)
	}
	objs := readDir(t, dir, FormatJSONL)
	var keys []string
	ends := map[string]int{}
	for k, rows := range objs {
		keys = append(keys, k)
		if strings.Contains(k, "/_claims/") {
			continue
		}
		node := k[strings.LastIndexByte(k, '/')+1:]
		node = node[:strings.Index(node, "-p")]
		if !strings.Contains(k, "-p0-") {
			continue
		}
		for _, r := range rows {
			ends[fmt.Sprintf("%s@%v", node, int64(r["window_end"].(float64)))]++
		}
	}
	sort.Strings(keys)
	want := map[string]int{fmt.Sprintf("gw-a@%d", from): 2, fmt.Sprintf("gw-b@%d", from+1000): 4}
	if fmt.Sprint(ends) != fmt.Sprint(want) {
		t.Errorf("partition 0 windows in the store by node: %v; want %v (objects %v)", ends, want, keys)
	}
}

// TestFencedUploaderKeepsWindowsItsOwnNewerTermCovers: a healed network
// partition. a owned partition 0 under term 1; b took it under term 2
// (windows ending after f2) while they were apart; a took it back under
// term 3 (windows ending after f3, b's mark) and goes on from its own
// state, so a's term 1 rows ending after f3 are the only rows those
// windows get. a's uploader must keep them, and must not fence its term 1
// batch before the claim of term 3 is recorded: ClaimFrom learns term 3's
// From only after a few calls (the runner starts emitting a moment after
// the mesh raises the term).
func TestFencedUploaderKeepsWindowsItsOwnNewerTermCovers(t *testing.T) {
	const f2, f3 = 1700000004000, 1700000006000
	dir := t.TempDir()
	cfgFor := func(node string) Config {
		c := testConfig(t)
		c.Node, c.Local.Dir, c.Format = node, dir, FormatJSONL
		return c
	}
	spb := &memSpool{}
	spb.add(termRows(0, 2, 7, f3, 3)...)
	ub, _ := startUploader(t, cfgFor("gw-b"), spb, Options{Fence: true,
		ClaimFrom: func(string, int, uint64) (int64, bool) { return f2, true }})
	flush(t, ub)
	var mu sync.Mutex
	asked := 0
	spa := &memSpool{}
	spa.add(termRows(0, 1, 5, f2, 2)...)      // a's before b took over: kept
	spa.add(termRows(0, 1, 6, f3, 3)...)      // b's: fenced
	spa.add(termRows(0, 1, 7, f3+1000, 4)...) // a's again under term 3: kept
	ua, _ := startUploader(t, cfgFor("gw-a"), spa, Options{Fence: true,
		OwnTerm: func(string, int) (uint64, bool) { return 3, true },
		ClaimFrom: func(_ string, _ int, term uint64) (int64, bool) {
			if term == 1 {
				return -1, true
			}
			mu.Lock()
			defer mu.Unlock()
			asked++
			return f3, asked > 3
		}})
	flush(t, ua)
	if st := ua.Status(); st.FencedRows != 3 || st.Rows != 6 {
		t.Errorf("a's status: fenced %d rows, uploaded %d; want 3 fenced, 6 uploaded", st.FencedRows, st.Rows)
	}
	ends := map[string]int{}
	for k, rows := range readDir(t, dir, FormatJSONL) {
		if strings.Contains(k, "/_claims/") {
			continue
		}
		node := k[strings.LastIndexByte(k, '/')+1:]
		node = node[:strings.Index(node, "-p")]
		for _, r := range rows {
			ends[fmt.Sprintf("%s@%v", node, int64(r["window_end"].(float64)))]++
		}
	}
	want := map[string]int{fmt.Sprintf("gw-a@%d", f2): 2, fmt.Sprintf("gw-b@%d", f3): 3, fmt.Sprintf("gw-a@%d", f3+1000): 4}
	if fmt.Sprint(ends) != fmt.Sprint(want) {
		t.Errorf("windows in the store by node: %v; want %v", ends, want)
	}
}

// TestClaimNowRecordsTheClaimBeforeAnyUpload: a node that starts emitting a
// partition records its claim at once (ClaimNow), with nothing spooled,
// so that the other side of a network partition fences from then on; a
// second call for the same term writes nothing new.
func TestClaimNowRecordsTheClaimBeforeAnyUpload(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t)
	c.Node, c.Local.Dir, c.Format = "gw-b", dir, FormatJSONL
	calls := 0
	u, _ := startUploader(t, c, &memSpool{}, Options{Fence: true, Sink: "out",
		ClaimFrom: func(string, int, uint64) (int64, bool) { calls++; return 1700000006000, true }})
	ctx := context.Background()
	for range 2 {
		if err := u.ClaimNow(ctx, "p", 4, 3); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := ListClaims(ctx, u.fence, ClaimScope(c.Prefix, "p", "out", 4))
	if err != nil || len(cs) != 1 || cs[0].Term != 3 || cs[0].Owner != "gw-b" || cs[0].From != 1700000006000 {
		t.Fatalf("claims %+v, %v; want gw-b's term 3 from 1700000006000", cs, err)
	}
	if calls != 1 {
		t.Errorf("ClaimFrom asked %d times; want once (the claim is recorded once per term)", calls)
	}
}
