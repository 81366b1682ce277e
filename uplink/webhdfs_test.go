package uplink

import (
	"bytes"
	"context"
	"errors"
	"github.com/edgedio/edged/uplink/s3test"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/edgedio/edged/uplink/webhdfstest"
)

func TestWebHDFSPutCreatesTempThenRenames(t *testing.T) {
	srv := webhdfstest.New()
	defer srv.Close()
	srv.User = "edged"
	tgt := NewWebHDFSTarget(WebHDFSConfig{NameNode: srv.URL, User: "edged", Replication: 2, Root: "/data/edged"}, nil)
	ctx := context.Background()
	key := "pipeline=agg/date=2024-01-01/hour=00/gw-p0-e1-2.parquet"
	if err := tgt.Put(ctx, key, strings.NewReader("first"), 5); err != nil {
		t.Fatal(err)
	}
	final := "/data/edged/" + key
	files := srv.Files()
	if len(files) != 1 || string(files[final]) != "first" {
		t.Fatalf("files = %v; want only %s = first", keysOf(files), final)
	}
	if r := srv.Replication(final); r != 2 {
		t.Fatalf("replication = %d; want 2", r)
	}
	if got, want := srv.Ops(), []string{"nn:CREATE", "dn:CREATE", "nn:RENAME"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ops = %v; want %v", got, want)
	}
	// A retry of the same key replaces the object (HDFS rename refuses to overwrite).
	if err := tgt.Put(ctx, key, strings.NewReader("second"), 6); err != nil {
		t.Fatal(err)
	}
	if files := srv.Files(); len(files) != 1 || string(files[final]) != "second" {
		t.Fatalf("after retry files = %v; want only %s = second", keysOf(files), final)
	}
	st, err := tgt.Stat(ctx, final)
	if err != nil || st.Type != "FILE" || st.Length != 6 {
		t.Fatalf("Stat = %+v, %v; want a FILE of 6 bytes", st, err)
	}
	list, err := tgt.List(ctx, "/data/edged/pipeline=agg/date=2024-01-01/hour=00")
	if err != nil || len(list) != 1 || list[0].PathSuffix != "gw-p0-e1-2.parquet" {
		t.Fatalf("List = %+v, %v; want the one object", list, err)
	}
	if _, err := tgt.Stat(ctx, "/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat(missing) = %v; want ErrNotFound", err)
	}
	if ok, err := tgt.Delete(ctx, final); !ok || err != nil {
		t.Fatalf("Delete = %v, %v; want true", ok, err)
	}
}

func TestWebHDFSErrorsAreClassifiedAndLeaveNoTempFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail webhdfstest.Failure
		kind ErrorKind
	}{
		{"permission", webhdfstest.Failure{Op: "CREATE", Status: http.StatusForbidden, Exception: "AccessControlException", Message: "Permission denied: user=bob"}, ErrAuth},
		{"standby namenode", webhdfstest.Failure{Op: "CREATE", Status: http.StatusForbidden, Exception: "StandbyException", Message: "Operation category WRITE is not supported in state standby"}, ErrServer},
		{"5xx on rename", webhdfstest.Failure{Op: "RENAME", Status: http.StatusInternalServerError, Exception: "IOException", Message: "disk error"}, ErrServer},
		{"quota", webhdfstest.Failure{Op: "CREATE", Status: http.StatusForbidden, Exception: "DSQuotaExceededException", Message: "quota"}, ErrDisk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := webhdfstest.New()
			defer srv.Close()
			srv.Fail(tc.fail)
			tgt := NewWebHDFSTarget(WebHDFSConfig{NameNode: srv.URL, User: "edged", Root: "/e"}, nil)
			err := tgt.Put(context.Background(), "k/x.parquet", strings.NewReader("abc"), 3)
			var te *TargetError
			var re *RemoteException
			if !errors.As(err, &te) || te.Kind != tc.kind || !errors.As(err, &re) || re.Exception != tc.fail.Exception || re.Message != tc.fail.Message {
				t.Fatalf("Put = %v; want a %s TargetError carrying %s: %s", err, tc.kind, tc.fail.Exception, tc.fail.Message)
			}
			if files := srv.Files(); len(files) != 0 {
				t.Fatalf("files after failure = %v; want none (temp deleted)", keysOf(files))
			}
			// The retry succeeds.
			if err := tgt.Put(context.Background(), "k/x.parquet", strings.NewReader("abc"), 3); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}

func TestUploaderToWebHDFS(t *testing.T) {
	srv := webhdfstest.New()
	defer srv.Close()
	cfg := testConfig(t)
	cfg.Target = TargetWebHDFS
	cfg.WebHDFS = WebHDFSConfig{NameNode: srv.URL, User: "edged", Root: "/edged"}
	srv.Fail(webhdfstest.Failure{Op: "CREATE", Status: http.StatusServiceUnavailable, Exception: "RetriableException", Message: "try again"})
	sp := &memSpool{}
	var all []Row
	for e := uint64(1); e <= 4; e++ {
		rs := epochRows("agg", 2, e, 5)
		all = append(all, rs...)
		sp.add(rs...)
	}
	u, _ := startUploader(t, cfg, sp, Options{})
	flush(t, u)
	tgt := NewWebHDFSTarget(cfg.WebHDFS, nil)
	dir := "/edged/pipeline=agg/date=2023-11-14/hour=22"
	list, err := tgt.List(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][]map[string]any{}
	for _, st := range list {
		b, err := tgt.Open(context.Background(), dir+"/"+st.PathSuffix)
		if err != nil {
			t.Fatal(err)
		}
		objs[st.PathSuffix] = s3test.ReadParquet(t, bytes.Clone(b))
	}
	if got, want := keysOf(objs), []string{"gw1-p2-e000000000001-000000000002.parquet", "gw1-p2-e000000000003-000000000004.parquet"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("objects = %v; want %v", got, want)
	}
	checkExactlyOnce(t, objs, all)
	if st := u.Status(); st.Failures != 1 {
		t.Fatalf("failures = %d; want 1 (the injected 503)", st.Failures)
	}
}
