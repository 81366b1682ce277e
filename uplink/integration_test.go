//go:build integration

package uplink

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgedio/edged/uplink/s3test"
)

// TestIntegrationS3OfflineExactlyOnce feeds epochs continuously while the S3
// server is killed and restarted: every row must arrive exactly once.
func TestIntegrationS3OfflineExactlyOnce(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket("offline")
	cfg := testConfig(t)
	cfg.Target, cfg.S3 = TargetS3, s3Config(srv, bucket)
	cfg.MaxRows = 50
	cfg.MaxAge = 20 * time.Millisecond
	cfg.PollInterval = 10 * time.Millisecond
	cfg.Timeout = 2 * time.Second
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	cfg.JournalDir = t.TempDir()
	sp := &memSpool{}
	u, _ := startUploader(t, cfg, sp, Options{})

	var mu sync.Mutex
	var all []Row
	var epoch atomic.Uint64
	feed := func(n int) {
		for i := 0; i < n; i++ {
			e := epoch.Add(1)
			rs := epochRows("agg", int(e%3), e, 7)
			mu.Lock()
			all = append(all, rs...)
			mu.Unlock()
			sp.add(rs...)
			u.Notify()
		}
	}
	feed(30)
	waitFor(t, "first objects", func() bool { return u.Status().Objects >= 3 })
	srv.Stop()
	feed(60) // the spool fills while the server is down
	waitFor(t, "failed attempts while offline", func() bool { return u.Status().Failures >= 3 })
	if st := u.Status(); st.LastErrorKind == "" {
		t.Fatalf("status while offline = %+v; want an error kind", st)
	}
	depth := sp.len()
	if depth == 0 {
		t.Fatal("spool empty while offline; want rows held")
	}
	srv.Restart()
	feed(30)
	flush(t, u)
	if n := sp.len(); n != 0 {
		t.Fatalf("spool = %d rows after flush; want 0", n)
	}
	mu.Lock()
	defer mu.Unlock()
	objs := readBucket(t, srv, bucket, FormatParquet)
	checkExactlyOnce(t, objs, all)
	t.Logf("%d rows in %d objects; %d rows were held offline; status %+v", len(all), len(objs), depth, u.Status())
}
