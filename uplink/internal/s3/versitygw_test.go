package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/uplink/internal/s3"
	"github.com/edgedio/edged/uplink/s3test"
)

// TestSignedPayloadIsVerified: the store checks the signed SHA-256, so a
// body that does not match it (damaged on the way) is refused and stores
// nothing; the right one is stored with its metadata and content type.
func TestSignedPayloadIsVerified(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket("sum")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body := []byte("exactly these bytes")
	wrong := strings.Repeat("0", 64)
	_, err := c.PutObject(ctx, bucket, "k", bytes.NewReader(body), int64(len(body)), s3.PutOptions{SHA256: wrong})
	var e *s3.Error
	if !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("put with a wrong payload hash = %v; want HTTP 400", err)
	}
	if _, err := c.HeadObject(ctx, bucket, "k"); !errors.As(err, &e) || !e.NotFound() {
		t.Fatalf("after a refused put, HeadObject = %v; want not found", err)
	}

	etag, err := c.PutObject(ctx, bucket, "dir/k v+1", bytes.NewReader(body), int64(len(body)),
		s3.PutOptions{ContentType: "application/zstd", Metadata: map[string]string{"Edged-Term": "12"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, oi, err := c.GetObject(ctx, bucket, "dir/k v+1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) || oi.ETag != etag || oi.ContentType != "application/zstd" || oi.Metadata["edged-term"] != "12" {
		t.Fatalf("GetObject = %q %+v; want the body, ETag %s, the content type and edged-term=12", got, oi, etag)
	}
	p, err := c.ListObjects(ctx, bucket, "dir/", "", 0)
	if err != nil || len(p.Objects) != 1 || p.Objects[0].Key != "dir/k v+1" || p.Objects[0].Size != int64(len(body)) || p.Next != "" {
		t.Fatalf("ListObjects = %+v, %v; want the one key with its size", p, err)
	}
}

// TestClockSkewIsCorrected: a gateway whose clock is an hour off (no RTC,
// NTP not yet synced) is refused once, then signs with the server's
// clock.
func TestClockSkewIsCorrected(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket("skew")
	c, err := s3.New(s3.Config{Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
		AccessKey: srv.Access, SecretKey: srv.Secret, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = c.PutObject(ctx, bucket, "k", strings.NewReader("x"), 1, s3.PutOptions{})
	var e *s3.Error
	if !errors.As(err, &e) || e.Code != "RequestTimeTooSkewed" {
		t.Fatalf("first put with a clock an hour late = %v; want RequestTimeTooSkewed", err)
	}
	if _, err := c.PutObject(ctx, bucket, "k", strings.NewReader("x"), 1, s3.PutOptions{}); err != nil {
		t.Fatalf("second put: %v; want the clock corrected", err)
	}
}
