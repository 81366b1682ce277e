package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Target writes objects to an S3-compatible store with minio-go. A
// PutObject is atomic on S3: readers see the old object or the whole new
// one. minio-go's own retries are limited to one attempt so the Uploader's
// backoff (and status) governs retries.
type S3Target struct {
	Client *minio.Client
	Bucket string
}

// NewS3Target builds an S3 target. Credentials come from cfg, else from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN).
func NewS3Target(cfg S3Config) (*S3Target, error) {
	ak, sk, tok := cfg.AccessKey, cfg.SecretKey, ""
	if ak == "" {
		ak, sk, tok = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(ak, sk, tok),
		Secure:       cfg.TLS,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   1,
	})
	if err != nil {
		return nil, fmt.Errorf("uplink.s3.endpoint: %w", err)
	}
	return &S3Target{Client: c, Bucket: cfg.Bucket}, nil
}

// Put implements Target.
func (t *S3Target) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	_, err := t.Client.PutObject(ctx, t.Bucket, key, r, size, minio.PutObjectOptions{
		ContentType:      contentType(key),
		DisableMultipart: size < 64<<20,
	})
	if err == nil {
		return nil
	}
	return s3Error(err)
}

func contentType(key string) string {
	if len(key) > 8 && key[len(key)-8:] == ".parquet" {
		return "application/vnd.apache.parquet"
	}
	return "application/zstd"
}

// s3Error classifies a minio-go error.
func s3Error(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &TargetError{Kind: ErrTimeout, Err: err}
	}
	resp := minio.ToErrorResponse(err)
	kind := ErrOther
	switch {
	case resp.Code == "NoSuchBucket":
		kind = ErrNoBucket
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.Code == "ExpiredToken" || resp.Code == "InvalidToken" ||
		resp.Code == "XAdminUserNotFound" || // versitygw: unknown access key (HTTP 404)
		resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		kind = ErrAuth
	case resp.StatusCode >= 500 || resp.Code == "SlowDown" || resp.Code == "ServiceUnavailable":
		kind = ErrServer
	case resp.StatusCode >= 400:
		kind = ErrRequest
	default:
		k, _ := classify(err)
		kind = k
	}
	var ra time.Duration
	if resp.Code == "SlowDown" {
		ra = 5 * time.Second // S3 asks clients to reduce their request rate
	}
	return &TargetError{Kind: kind, RetryAfter: ra, Err: err}
}
