package uplink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/uplink/s3test"
)

func s3Config(srv *s3test.Server, bucket string) S3Config {
	return S3Config{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: bucket,
		AccessKey: srv.Access, SecretKey: srv.Secret, PathStyle: true, TLS: false}
}

// readBucket reads every object of the bucket back.
func readBucket(t testing.TB, srv *s3test.Server, bucket, format string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for k, b := range srv.Objects(bucket) {
		if format == FormatParquet {
			out[k] = s3test.ReadParquet(t, b)
		} else {
			out[k] = readJSONL(t, b)
		}
	}
	return out
}

func TestS3TargetClassifiesErrors(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket("edged")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A 4 MiB object (the default batch size): the server refuses it
	// before reading the body, and the refusal must not be lost in a
	// connection reset (it would read as a network error).
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	put := func(cfg S3Config) error {
		tgt, err := NewS3Target(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tgt.Put(ctx, "a/b.parquet", bytes.NewReader(big), int64(len(big)))
	}
	for _, tc := range []struct {
		name string
		mod  func(*S3Config)
		kind ErrorKind
	}{
		{"wrong secret", func(c *S3Config) { c.SecretKey = "wrong" }, ErrAuth},
		{"unknown access key", func(c *S3Config) { c.AccessKey = "nobody" }, ErrAuth},
		{"missing bucket", func(c *S3Config) { c.Bucket = "nope" }, ErrNoBucket},
		{"server down", func(c *S3Config) { c.Endpoint = "127.0.0.1:1" }, ErrNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s3Config(srv, "edged")
			tc.mod(&cfg)
			err := put(cfg)
			var te *TargetError
			if !errors.As(err, &te) || te.Kind != tc.kind {
				t.Fatalf("Put = %v; want a %s error", err, tc.kind)
			}
		})
	}
	if err := put(s3Config(srv, "edged")); err != nil {
		t.Fatalf("Put with good config: %v", err)
	}
}

func TestUploaderToS3RowsReadBack(t *testing.T) {
	srv := s3test.Start(t)
	for _, format := range []string{FormatParquet, FormatJSONL} {
		t.Run(format, func(t *testing.T) {
			bucket := srv.Bucket("rows-" + format)
			cfg := testConfig(t)
			cfg.Format, cfg.Target, cfg.Prefix = format, TargetS3, "site-a"
			cfg.S3 = s3Config(srv, bucket)
			sp := &memSpool{}
			var all []Row
			for e := uint64(1); e <= 5; e++ {
				rs := epochRows("agg", 1, e, 3)
				all = append(all, rs...)
				sp.add(rs...)
			}
			u, _ := startUploader(t, cfg, sp, Options{})
			flush(t, u)
			objs := readBucket(t, srv, bucket, format)
			checkExactlyOnce(t, objs, all)
			for k := range objs {
				if !strings.HasPrefix(k, "site-a/pipeline=agg/date=2023-11-14/hour=22/gw1-p1-e") {
					t.Errorf("key %s; want the Hive layout under site-a", k)
				}
			}
		})
	}
}

// BenchmarkUploadS3 measures upload throughput of 4 MiB objects to a local
// versitygw (MB/s).
func BenchmarkUploadS3(b *testing.B) {
	srv := s3test.Start(b)
	tgt, err := NewS3Target(s3Config(srv, srv.Bucket("bench")))
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := tgt.Put(context.Background(), "bench/obj.parquet", bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// objectStore is an S3Target on a fresh bucket of srv.
func objectStore(t *testing.T, srv *s3test.Server, bucket string) *S3Target {
	t.Helper()
	tgt, err := NewS3Target(s3Config(srv, srv.Bucket(bucket)))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func getObject(t *testing.T, srv *s3test.Server, bucket, key string) string {
	t.Helper()
	return string(srv.Objects(bucket)[key])
}

func TestS3ObjectStoreHeadListDelete(t *testing.T) {
	srv := s3test.Start(t)
	var store ObjectStore = objectStore(t, srv, "store")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	etag, err := store.PutObject(ctx, "fence/p3.parquet", strings.NewReader("hello"), 5,
		PutOptions{Metadata: map[string]string{"edged-term": "7", "edged-node": "gw-1"}})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := store.HeadObject(ctx, "fence/p3.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if oi.Size != 5 || oi.ETag == "" || oi.ETag != etag || oi.Modified.IsZero() ||
		oi.Metadata["edged-term"] != "7" || oi.Metadata["edged-node"] != "gw-1" {
		t.Fatalf("HeadObject = %+v (put ETag %s); want size 5, the put's ETag, a time and the metadata", oi, etag)
	}

	_, err = store.HeadObject(ctx, "fence/absent")
	var te *TargetError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &te) || te.Kind != ErrRequest ||
		!strings.Contains(err.Error(), "store/fence/absent") {
		t.Fatalf("HeadObject(missing) = %v; want a request error wrapping ErrNotFound naming store/fence/absent", err)
	}

	// Five keys under fence/, two elsewhere; pages of two keys, so the
	// listing needs three requests and two continuation tokens.
	want := []string{"fence/p3.parquet"}
	for _, k := range []string{"fence/a", "fence/b/c", "fence/z", "fence/b/a", "other/x", "fencf"} {
		if _, err := store.PutObject(ctx, k, strings.NewReader(k), int64(len(k)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "fence/") {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	store.(*S3Target).page = 2
	var got []string
	for o, err := range store.ListObjects(ctx, "fence/") {
		if err != nil {
			t.Fatal(err)
		}
		if o.ETag == "" || (o.Key == "fence/a" && o.Size != 7) {
			t.Errorf("listed %+v; want an ETag and the size", o)
		}
		got = append(got, o.Key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListObjects(fence/) = %v; want %v", got, want)
	}
	for range store.ListObjects(ctx, "fence/") {
		break // stopping early must not panic
	}

	if err := store.DeleteObject(ctx, "fence/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.HeadObject(ctx, "fence/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("HeadObject after DeleteObject = %v; want ErrNotFound", err)
	}
	if err := store.DeleteObject(ctx, "fence/a"); err != nil {
		t.Fatalf("DeleteObject(missing) = %v; want nil", err)
	}
	for _, err := range store.ListObjects(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
	}

	missing, err := NewS3Target(s3Config(srv, "nope"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range missing.ListObjects(ctx, "") {
		if !errors.As(err, &te) || te.Kind != ErrNoBucket || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("ListObjects on a missing bucket = %v; want a no_bucket error naming it", err)
		}
	}
}

// TestS3ConditionalPut is what split-brain fencing relies on: a write
// with IfNoneMatch loses to an existing object, one with IfMatch loses to
// a newer version, and a lost write changes nothing.
func TestS3ConditionalPut(t *testing.T) {
	srv := s3test.Start(t)
	store := objectStore(t, srv, "cond")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	put := func(body string, o PutOptions) (string, error) {
		return store.PutObject(ctx, "term", strings.NewReader(body), int64(len(body)), o)
	}
	refused := func(what string, err error) {
		t.Helper()
		var te *TargetError
		if !errors.Is(err, ErrPreconditionFailed) || !errors.As(err, &te) || te.Kind != ErrRequest {
			t.Fatalf("%s = %v; want a request error wrapping ErrPreconditionFailed", what, err)
		}
	}
	e1, err := put("term 1", PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatalf("IfNoneMatch on a new key: %v", err)
	}
	_, err = put("term 2", PutOptions{IfNoneMatch: true})
	refused("IfNoneMatch on an existing key", err)
	if got := getObject(t, srv, "cond", "term"); got != "term 1" {
		t.Fatalf("object = %q after a refused write; want term 1", got)
	}
	e2, err := put("term 2", PutOptions{IfMatch: e1})
	if err != nil {
		t.Fatalf("IfMatch with the current ETag: %v", err)
	}
	if e2 == e1 {
		t.Fatalf("ETag unchanged (%s) by a new content", e2)
	}
	_, err = put("term 3", PutOptions{IfMatch: e1})
	refused("IfMatch with a stale ETag", err)
	if got := getObject(t, srv, "cond", "term"); got != "term 2" {
		t.Fatalf("object = %q after a refused write; want term 2", got)
	}
	_, err = store.PutObject(ctx, "absent", strings.NewReader("x"), 1, PutOptions{IfMatch: e1})
	refused("IfMatch on a missing key", err)
	if _, err := store.HeadObject(ctx, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused IfMatch created the key: HeadObject = %v", err)
	}

	// Racing creators of one key (released together, with bodies large
	// enough for the writes to overlap): exactly one wins.
	const racers = 8
	errs := make(chan error, racers)
	start := make(chan struct{})
	for i := range racers {
		body := bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
		go func() {
			<-start
			_, err := store.PutObject(ctx, "race", bytes.NewReader(body), int64(len(body)), PutOptions{IfNoneMatch: true})
			errs <- err
		}()
	}
	close(start)
	won := 0
	for range racers {
		err := <-errs
		if err == nil {
			won++
		} else if !errors.Is(err, ErrPreconditionFailed) {
			t.Errorf("racer: %v; want success or ErrPreconditionFailed", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing IfNoneMatch writes succeeded; want exactly 1", won, racers)
	}
}

// TestS3PutThroughBandwidthLimit: the Uploader's bandwidth-limited reader
// is hashed from the bytes under it (not through the limiter, which
// would spend the budget twice) and then sent whole.
func TestS3PutThroughBandwidthLimit(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	sum := sha256.Sum256(data)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow := &limitedReader{ctx: ctx, r: bytes.NewReader(data), l: &limiter{rate: 1}} // 1 byte/s
	got, err := payloadSHA256(slow, int64(len(data)))
	if err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("payloadSHA256 = %s, %v; want %x", got, err, sum)
	}
	if pos, _ := slow.r.(*bytes.Reader).Seek(0, io.SeekCurrent); pos != 0 {
		t.Fatalf("reader left at %d; want rewound to 0", pos)
	}

	srv := s3test.Start(t)
	tgt := objectStore(t, srv, "limited")
	lr := &limitedReader{ctx: ctx, r: bytes.NewReader(data), l: &limiter{rate: 1 << 30}}
	if err := tgt.Put(ctx, "k.parquet", lr, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, srv, "limited", "k.parquet"); got != string(data) {
		t.Fatalf("stored %d bytes; want the %d put", len(got), len(data))
	}
}
