package uplink

import (
	"bytes"
	"context"
	"errors"
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
	put := func(cfg S3Config) error {
		tgt, err := NewS3Target(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tgt.Put(ctx, "a/b.parquet", strings.NewReader("xyz"), 3)
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
