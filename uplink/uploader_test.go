package uplink

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgedio/edged/uplink/s3test"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// memSpool is an in-memory Spool with stats.
type memSpool struct {
	mu      sync.Mutex
	es      []Row
	ackErr  error
	acked   int
	bytes   uint64
	oldest  time.Time
	readErr error
}

func (s *memSpool) add(rows ...Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		s.es = append(s.es, r)
		s.bytes += uint64(len(r.Data))
	}
}

func (s *memSpool) Read(max int, fn func(id string, data []byte) error) error {
	s.mu.Lock()
	if s.readErr != nil {
		s.mu.Unlock()
		return s.readErr
	}
	es := s.es
	if max > 0 && len(es) > max {
		es = es[:max]
	}
	es = append([]Row(nil), es...)
	s.mu.Unlock()
	for _, e := range es {
		if err := fn(e.ID, e.Data); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSpool) Ack(ids ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ackErr != nil {
		return s.ackErr
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	kept := s.es[:0]
	for _, e := range s.es {
		if want[e.ID] {
			s.bytes -= uint64(len(e.Data))
			s.acked++
			continue
		}
		kept = append(kept, e)
	}
	s.es = kept
	return nil
}

func (s *memSpool) Stats() (SpoolStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpoolStats{Depth: uint64(len(s.es)), Bytes: s.bytes, Oldest: s.oldest}, nil
}

func (s *memSpool) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.es)
}

// epochRows makes n rows of epoch e of pipeline/partition with an hourly
// window_start.
func epochRows(pipeline string, part int, e uint64, n int) []Row {
	var rs []Row
	for i := 0; i < n; i++ {
		rs = append(rs, Row{
			ID:   fmt.Sprintf("%s/%d/1/%d/%d", pipeline, part, e, i),
			Data: fmt.Appendf(nil, `{"sensor":"s-%d","window_start":%d,"n":%d,"avg":%d.5}`, i, 1700000000000+int64(e)*60000, i, e),
		})
	}
	return rs
}

func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Node = "gw1"
	c.Local.Dir = t.TempDir()
	c.MaxRows = 10
	c.MaxAge = time.Hour
	c.PollInterval = time.Hour
	c.BackoffMin = time.Millisecond
	c.BackoffMax = 5 * time.Millisecond
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // poll interval, not a synchronisation sleep
	}
}

func startUploader(t *testing.T, cfg Config, sp Spool, opt Options) (*Uploader, context.CancelFunc) {
	t.Helper()
	u, err := New(cfg, sp, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	return u, func() { stop() }
}

func flush(t *testing.T, u *Uploader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// readDir reads every object under dir back: key -> rows (id -> JSON map).
func readDir(t *testing.T, dir, format string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left behind: %s", rel)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if format == FormatParquet {
			out[filepath.ToSlash(rel)] = s3test.ReadParquet(t, b)
		} else {
			out[filepath.ToSlash(rel)] = readJSONL(t, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce checks that every row of want appears exactly once
// across objects, with equal content.
func checkExactlyOnce(t *testing.T, objects map[string][]map[string]any, want []Row) {
	t.Helper()
	exp := map[string]map[string]any{}
	for _, m := range wantRows(t, want, "_id", true) {
		exp[m["_id"].(string)] = m
	}
	got := map[string]int{}
	for key, rows := range objects {
		for _, m := range rows {
			id, _ := m["_id"].(string)
			got[id]++
			if !reflect.DeepEqual(m, exp[id]) {
				t.Errorf("object %s row %s = %v; want %v", key, id, m, exp[id])
			}
		}
	}
	for id := range exp {
		if got[id] != 1 {
			t.Errorf("row %s appears %d times; want 1", id, got[id])
		}
	}
	for id, n := range got {
		if _, ok := exp[id]; !ok {
			t.Errorf("unexpected row %s (%d times)", id, n)
		}
	}
}

func TestUploaderDrainsWholeEpochsIntoDeterministicKeys(t *testing.T) {
	for _, format := range []string{FormatParquet, FormatJSONL} {
		t.Run(format, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Format = format
			sp := &memSpool{}
			var all []Row
			// Interleaved commits of two pipelines and two partitions; epochs of 4 rows.
			for e := uint64(1); e <= 6; e++ {
				for _, g := range []struct {
					p    string
					part int
				}{{"agg", 0}, {"agg", 1}, {"team/x", 0}} {
					rs := epochRows(g.p, g.part, e, 4)
					all = append(all, rs...)
					sp.add(rs...)
				}
			}
			u, _ := startUploader(t, cfg, sp, Options{})
			flush(t, u)
			if n := sp.len(); n != 0 {
				t.Fatalf("spool holds %d rows after Flush; want 0", n)
			}
			objs := readDir(t, cfg.Local.Dir, format)
			checkExactlyOnce(t, objs, all)
			var keys []string
			for k := range objs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			ext := "parquet"
			if format == FormatJSONL {
				ext = "jsonl.zst"
			}
			// MaxRows 10 and 4 rows per epoch: two whole epochs per object.
			var want []string
			for _, g := range []string{"pipeline=agg/date=2023-11-14/hour=22/gw1-p0", "pipeline=agg/date=2023-11-14/hour=22/gw1-p1", "pipeline=team%2Fx/date=2023-11-14/hour=22/gw1-p0"} {
				for _, r := range []string{"-e000000000001-000000000002.", "-e000000000003-000000000004.", "-e000000000005-000000000006."} {
					want = append(want, g+r+ext)
				}
			}
			sort.Strings(want)
			if !reflect.DeepEqual(keys, want) {
				t.Fatalf("keys = %v; want %v", keys, want)
			}
			st := u.Status()
			if st.Objects != 9 || st.Rows != uint64(len(all)) || st.Compression <= 0 || st.LastSuccess.IsZero() || st.SpoolDepth != 0 {
				t.Fatalf("status = %+v; want 9 objects, %d rows, a ratio, a last success, empty spool", st, len(all))
			}
		})
	}
}

func TestUploaderWaitsForSizeOrAge(t *testing.T) {
	cfg := testConfig(t)
	sp := &memSpool{}
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	puts := make(chan string, 10)
	tgt := &LocalTarget{Dir: cfg.Local.Dir}
	u, _ := startUploader(t, cfg, sp, Options{Now: clock, Target: TargetFunc(func(ctx context.Context, k string, r io.Reader, n int64) error {
		err := tgt.Put(ctx, k, r, n)
		puts <- k
		return err
	})})
	sp.add(epochRows("agg", 0, 1, 3)...)
	u.Notify()
	// Below the size limit and younger than MaxAge: nothing is uploaded. The
	// loop polls, so give it a few notifications; the spool must stay.
	for i := 0; i < 5; i++ {
		u.Notify()
	}
	select {
	case k := <-puts:
		t.Fatalf("uploaded %s before the batch was full or old", k)
	default:
	}
	// Filling past MaxRows uploads the whole epochs that fit (1..2: 3+6 rows).
	sp.add(epochRows("agg", 0, 2, 6)...)
	sp.add(epochRows("agg", 0, 3, 6)...)
	u.Notify()
	if k := <-puts; !strings.HasSuffix(k, "gw1-p0-e000000000001-000000000002.parquet") {
		t.Fatalf("first object %s; want epochs 1-2", k)
	}
	// Epoch 3 alone waits for its age (counted from when the uploader first
	// saw it, so advance the clock until it is due).
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		u.Notify()
		select {
		case k := <-puts:
			if !strings.HasSuffix(k, "gw1-p0-e000000000003-000000000003.parquet") {
				t.Fatalf("second object %s; want epoch 3 by age", k)
			}
			done = true
		case <-tick.C:
		case <-deadline:
			t.Fatal("epoch 3 was not uploaded by age")
		}
	}
	waitFor(t, "spool drained", func() bool { return sp.len() == 0 })
}

func TestUploaderRetriesEveryErrorKindWithoutLosingRows(t *testing.T) {
	cfg := testConfig(t)
	sp := &memSpool{}
	rows := epochRows("agg", 0, 1, 5)
	sp.add(rows...)
	errs := []error{
		&TargetError{Kind: ErrAuth, Err: errors.New("InvalidAccessKeyId")},
		&TargetError{Kind: ErrNoBucket, Err: errors.New("NoSuchBucket")},
		&TargetError{Kind: ErrServer, Err: errors.New("503")},
		context.DeadlineExceeded,
	}
	var mu sync.Mutex
	var kinds []ErrorKind
	attempts := 0
	tgt := &LocalTarget{Dir: cfg.Local.Dir}
	var u *Uploader
	u, _ = startUploader(t, cfg, sp, Options{Target: TargetFunc(func(ctx context.Context, k string, r io.Reader, n int64) error {
		mu.Lock()
		defer mu.Unlock()
		if attempts > 0 {
			kinds = append(kinds, u.Status().LastErrorKind)
		}
		if sp.len() != len(rows) {
			t.Errorf("spool has %d rows during attempt %d; want %d (ack only after success)", sp.len(), attempts+1, len(rows))
		}
		attempts++
		if attempts <= len(errs) {
			return errs[attempts-1]
		}
		return tgt.Put(ctx, k, r, n)
	})})
	flush(t, u)
	mu.Lock()
	defer mu.Unlock()
	want := []ErrorKind{ErrAuth, ErrNoBucket, ErrServer, ErrTimeout}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("status kinds seen = %v; want %v", kinds, want)
	}
	st := u.Status()
	if st.Failures != 4 || st.LastError != "" || st.Objects != 1 || st.Rows != 5 {
		t.Fatalf("status = %+v; want 4 failures, cleared error, 1 object of 5 rows", st)
	}
	checkExactlyOnce(t, readDir(t, cfg.Local.Dir, FormatParquet), rows)
}

func TestUploaderJournalReplaysSameKeyAfterCrash(t *testing.T) {
	cfg := testConfig(t)
	cfg.JournalDir = t.TempDir()
	sp := &memSpool{}
	sp.add(epochRows("agg", 0, 1, 3)...)
	tgt := &LocalTarget{Dir: cfg.Local.Dir}
	// First run: the write lands but the answer is lost (timeout), then the
	// process dies before any retry.
	wrote := make(chan string, 1)
	u, stop := startUploader(t, cfg, sp, Options{Target: TargetFunc(func(ctx context.Context, k string, r io.Reader, n int64) error {
		if err := tgt.Put(ctx, k, r, n); err != nil {
			return err
		}
		select {
		case wrote <- k:
		default:
		}
		<-ctx.Done() // hang until the crash
		return ctx.Err()
	})})
	go u.Flush(context.Background())
	first := <-wrote
	stop()
	if sp.len() != 3 {
		t.Fatalf("spool = %d rows after a lost answer; want 3", sp.len())
	}
	// More epochs arrive; a size-free cut would now widen the batch.
	sp.add(epochRows("agg", 0, 2, 3)...)
	u2, _ := startUploader(t, cfg, sp, Options{})
	flush(t, u2)
	objs := readDir(t, cfg.Local.Dir, FormatParquet)
	if _, ok := objs[first]; !ok || len(objs) != 2 {
		t.Fatalf("objects = %v; want the replayed %s plus one for epoch 2", keysOf(objs), first)
	}
	checkExactlyOnce(t, objs, append(epochRows("agg", 0, 1, 3), epochRows("agg", 0, 2, 3)...))
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestUploaderDropOldestCountsDroppedRows(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = RetentionDropOldest
	sp := &memSpool{}
	for e := uint64(1); e <= 5; e++ {
		sp.add(epochRows("agg", 0, e, 4)...)
	}
	sp.mu.Lock()
	cfg.SpoolQuota = int64(sp.bytes) / 2
	sp.mu.Unlock()
	down := TargetFunc(func(context.Context, string, io.Reader, int64) error {
		return &TargetError{Kind: ErrNetwork, Err: errors.New("connection refused")}
	})
	u, _ := startUploader(t, cfg, sp, Options{Target: down})
	u.Notify()
	go u.Flush(context.Background())
	waitFor(t, "spool under quota", func() bool { st := u.Status(); return !st.OverQuota && st.DroppedRows > 0 })
	st := u.Status()
	if st.DroppedRows%4 != 0 || st.DroppedRows+uint64(sp.len()) != 20 {
		t.Fatalf("dropped %d, spool %d; want whole epochs dropped, dropped+left = 20", st.DroppedRows, sp.len())
	}
}

func TestUploaderBackpressureKeepsEverything(t *testing.T) {
	cfg := testConfig(t)
	cfg.SpoolQuota = 10
	sp := &memSpool{}
	sp.add(epochRows("agg", 0, 1, 4)...)
	attempts := make(chan struct{}, 100)
	u, _ := startUploader(t, cfg, sp, Options{Target: TargetFunc(func(context.Context, string, io.Reader, int64) error {
		attempts <- struct{}{}
		return &TargetError{Kind: ErrServer, Err: errors.New("500")}
	})})
	go u.Flush(context.Background())
	for i := 0; i < 3; i++ {
		<-attempts
	}
	st := u.Status()
	if !st.OverQuota || st.DroppedRows != 0 || sp.len() != 4 || st.LastErrorKind != ErrServer {
		t.Fatalf("status = %+v, spool %d; want over quota, nothing dropped, 4 rows kept, server error", st, sp.len())
	}
}

func TestUploaderDeadLettersRowsThatDoNotFit(t *testing.T) {
	cfg := testConfig(t)
	sp := &memSpool{}
	good := epochRows("agg", 0, 1, 2)
	sp.add(good...)
	sp.add(Row{ID: "agg/0/1/1/2", Data: []byte(`not json`)}, Row{ID: "no-id", Data: []byte(`{"a":1}`)})
	var mu sync.Mutex
	dl := map[string]string{}
	u, _ := startUploader(t, cfg, sp, Options{DeadLetter: func(id string, data []byte, reason string) error {
		mu.Lock()
		defer mu.Unlock()
		dl[id] = reason
		return nil
	}})
	flush(t, u)
	mu.Lock()
	defer mu.Unlock()
	if len(dl) != 2 || dl["agg/0/1/1/2"] == "" || dl["no-id"] == "" {
		t.Fatalf("dead letters = %v; want agg/0/1/2 and no-id with reasons", dl)
	}
	if sp.len() != 0 || u.Status().DeadLetters != 2 {
		t.Fatalf("spool %d, dead letters %d; want 0 and 2", sp.len(), u.Status().DeadLetters)
	}
	checkExactlyOnce(t, readDir(t, cfg.Local.Dir, FormatParquet), good)
}

func TestConfigValidateNamesKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"defaults need a node", func(c *Config) { c.Node = "" }, []string{"uplink.node"}},
		{"bad format and target", func(c *Config) { c.Format = "csv"; c.Target = "ftp" }, []string{"uplink.format", "uplink.target"}},
		{"s3 needs endpoint and bucket", func(c *Config) { c.Target = TargetS3 }, []string{"uplink.s3.endpoint", "uplink.s3.bucket"}},
		{"webhdfs needs namenode", func(c *Config) { c.Target = TargetWebHDFS }, []string{"uplink.webhdfs.namenode"}},
		{"drop-oldest needs a quota", func(c *Config) { c.Retention = RetentionDropOldest }, []string{"uplink.spool_quota"}},
		{"backoff order", func(c *Config) { c.BackoffMax = c.BackoffMin / 2 }, []string{"uplink.backoff_max"}},
		{"limits", func(c *Config) { c.MaxRows = 0; c.MaxBytes = -1 }, []string{"uplink.max_rows", "uplink.max_bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Node = "gw1"
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil; want errors naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w+":") {
					t.Errorf("Validate() = %q; want it to name %s", err, w)
				}
			}
		})
	}
	c := DefaultConfig()
	c.Node = "gw1"
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a node: %v; want nil", err)
	}
}

func TestObjectKey(t *testing.T) {
	g := OutputID{Pipeline: "agg", Partition: 3}
	for _, tc := range []struct {
		prefix, sink, row, want string
	}{
		{"", "lake", `{"window_start":1700000000000}`, "pipeline=agg/sink=lake/date=2023-11-14/hour=22/gw-p3-e000000000005-000000000009.parquet"},
		{"/fleet/a/", "", `{"ts":"2024-02-29T23:59:59+01:00"}`, "fleet/a/pipeline=agg/date=2024-02-29/hour=22/gw-p3-e000000000005-000000000009.parquet"},
		{"", "a/b", `{"ts":1700000000000,"window_start":1600000000000}`, "pipeline=agg/sink=a%2Fb/date=2020-09-13/hour=12/gw-p3-e000000000005-000000000009.parquet"},
		{"", "lake", `{"v":1}`, "pipeline=agg/sink=lake/date=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__/gw-p3-e000000000005-000000000009.parquet"},
	} {
		part := HivePartition(rowTime([]byte(tc.row), TimeFields))
		if got := ObjectKey(tc.prefix, "gw", tc.sink, "parquet", g, 5, 9, part); got != tc.want {
			t.Errorf("ObjectKey(%q, %q, %s) = %s; want %s", tc.prefix, tc.sink, tc.row, got, tc.want)
		}
	}
	// Names sort in epoch order.
	a := ObjectKey("", "gw", "s", "parquet", g, 3, 4, "date=x/hour=y")
	b := ObjectKey("", "gw", "s", "parquet", g, 11, 12, "date=x/hour=y")
	if a >= b {
		t.Errorf("%s sorts after %s; want epoch order", a, b)
	}
	for _, tc := range []struct {
		id   string
		want OutputID
		ok   bool
	}{
		{"agg/1/1/22/3", OutputID{Pipeline: "agg", Partition: 1, Term: 1, Epoch: 22, Seq: 3}, true},
		{"a/b/1/2/22/3", OutputID{Pipeline: "a/b", Partition: 1, Term: 2, Epoch: 22, Seq: 3}, true},
		{"1/1/22/3", OutputID{Pipeline: "1", Partition: 1, Epoch: 22, Seq: 3}, true}, // edged 0.1's form: term 0
		{"1/22/3", OutputID{}, false},
		{"a/b/22/3", OutputID{}, false},
		{"agg/x/1/22/3", OutputID{}, false},
	} {
		got, err := ParseOutputID(tc.id)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseOutputID(%q) = %+v, %v; want %+v ok=%v", tc.id, got, err, tc.want, tc.ok)
		}
	}
}
