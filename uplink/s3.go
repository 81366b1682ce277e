package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"time"

	"github.com/edgedio/edged/uplink/internal/s3"
)

// S3Target writes objects to an S3-compatible store with edged's own S3
// client (package uplink/internal/s3: Signature V4 on net/http). A
// PutObject is atomic on S3: readers see the old object or the whole new
// one. The body's SHA-256 is signed, so the store rejects a body damaged
// on the way. The client does not retry: the Uploader's backoff (and
// status) governs retries. S3Target is an ObjectStore and is safe for
// concurrent use.
type S3Target struct {
	client *s3.Client
	bucket string
	page   int // keys per ListObjectsV2 page; 0: the server's default (1000)
}

// NewS3Target builds an S3 target; it sends nothing. Credentials come from
// cfg, else from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/
// AWS_SESSION_TOKEN).
func NewS3Target(cfg S3Config) (*S3Target, error) {
	ak, sk, tok := cfg.AccessKey, cfg.SecretKey, ""
	if ak == "" {
		ak, sk, tok = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
	}
	c, err := s3.New(s3.Config{
		Endpoint:     cfg.Endpoint,
		TLS:          cfg.TLS,
		Region:       cfg.Region,
		PathStyle:    cfg.PathStyle,
		AccessKey:    ak,
		SecretKey:    sk,
		SessionToken: tok,
	})
	if err != nil {
		return nil, fmt.Errorf("uplink.s3.endpoint: %w", err)
	}
	return &S3Target{client: c, bucket: cfg.Bucket}, nil
}

// Put implements Target.
func (t *S3Target) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	_, err := t.PutObject(ctx, key, r, size, PutOptions{})
	return err
}

// PutObject implements ObjectStore: a PutObject with the key's content
// type, o.Metadata as x-amz-meta-* headers and o's conditions as
// If-None-Match: * / If-Match: ETAG.
func (t *S3Target) PutObject(ctx context.Context, key string, r io.Reader, size int64, o PutOptions) (string, error) {
	for k, v := range o.Metadata {
		if !metadataName(k) || !printableASCII(v) {
			return "", &TargetError{Kind: ErrRequest, Err: fmt.Errorf("s3 put %s/%s: metadata %q=%q: want a lowercase name of letters, digits and '-' and a printable ASCII value", t.bucket, key, k, v)}
		}
	}
	sum, err := payloadSHA256(r, size)
	if err != nil {
		return "", &TargetError{Kind: ErrOther, Err: fmt.Errorf("s3 put %s/%s: %w", t.bucket, key, err)}
	}
	etag, err := t.client.PutObject(ctx, t.bucket, key, r, size, s3.PutOptions{
		ContentType: contentType(key),
		Metadata:    o.Metadata,
		IfNoneMatch: o.IfNoneMatch,
		IfMatch:     o.IfMatch,
		SHA256:      sum,
	})
	if err != nil {
		err = s3Error(err)
		var te *TargetError
		if o.IfMatch != "" && errors.Is(err, ErrNotFound) && errors.As(err, &te) {
			// S3 answers 404 NoSuchKey to If-Match on a missing key: the
			// condition failed as well.
			te.Err = fmt.Errorf("%w: %w", ErrPreconditionFailed, te.Err)
		}
		return "", err
	}
	return etag, nil
}

// payloadSHA256 hashes the bytes under a bandwidth-limited reader without
// spending the bandwidth budget (the Uploader's readers are
// limitedReaders over a bytes.Reader) and rewinds them; "" for any other
// reader (the client then hashes it itself).
func payloadSHA256(r io.Reader, size int64) (string, error) {
	lr, ok := r.(*limitedReader)
	if !ok {
		return "", nil
	}
	s, ok := lr.r.(io.ReadSeeker)
	if !ok {
		return "", nil
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(s, size))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("body has %d bytes; want %d", n, size)
	}
	if _, err := s.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HeadObject implements ObjectStore. A HEAD answer has no body, so a
// missing bucket also reads as ErrNotFound here (Put and ListObjects tell
// it apart: no_bucket).
func (t *S3Target) HeadObject(ctx context.Context, key string) (ObjectInfo, error) {
	oi, err := t.client.HeadObject(ctx, t.bucket, key)
	if err != nil {
		return ObjectInfo{}, s3Error(err)
	}
	return objectInfo(oi), nil
}

// ListObjects implements ObjectStore with ListObjectsV2 pages (of 1000
// keys on AWS). Listed objects carry no Metadata (S3 does not list it).
func (t *S3Target) ListObjects(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		next := ""
		for {
			p, err := t.client.ListObjects(ctx, t.bucket, prefix, next, t.page)
			if err != nil {
				yield(ObjectInfo{}, s3Error(err))
				return
			}
			for _, o := range p.Objects {
				if !yield(objectInfo(o), nil) {
					return
				}
			}
			if p.Next == "" {
				return
			}
			next = p.Next
		}
	}
}

// DeleteObject implements ObjectStore.
func (t *S3Target) DeleteObject(ctx context.Context, key string) error {
	if err := t.client.DeleteObject(ctx, t.bucket, key); err != nil {
		return s3Error(err)
	}
	return nil
}

func objectInfo(o s3.ObjectInfo) ObjectInfo {
	return ObjectInfo{Key: o.Key, Size: o.Size, ETag: o.ETag, Modified: o.LastModified, Metadata: o.Metadata}
}

func contentType(key string) string {
	if len(key) > 8 && key[len(key)-8:] == ".parquet" {
		return "application/vnd.apache.parquet"
	}
	return "application/zstd"
}

// s3Error classifies an error of the S3 client: the S3 error code first,
// then the HTTP status; errors without an answer (refused, reset, DNS,
// deadline) by classify. A missing object wraps ErrNotFound, a refused
// conditional write ErrPreconditionFailed.
func s3Error(err error) error {
	var e *s3.Error
	if !errors.As(err, &e) || e.Status == 0 {
		kind, _ := classify(err)
		return &TargetError{Kind: kind, Err: err}
	}
	kind := ErrRequest
	switch {
	case e.Code == "NoSuchBucket":
		kind = ErrNoBucket
	case e.Code == "RequestTimeTooSkewed": // the client corrects its clock for the next attempt
		kind = ErrRequest
	case e.Code == "AccessDenied" || e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch" ||
		e.Code == "ExpiredToken" || e.Code == "InvalidToken" || e.Code == "TokenRefreshRequired" ||
		e.Code == "XAdminUserNotFound" || // versitygw: unknown access key (HTTP 404)
		e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized:
		kind = ErrAuth
	case e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Code == "SlowDown":
		kind = ErrServer
	case e.PreconditionFailed():
		err = fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
	case e.NotFound():
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	ra := e.RetryAfter
	if ra == 0 && e.Code == "SlowDown" {
		ra = 5 * time.Second // S3 asks clients to reduce their request rate
	}
	return &TargetError{Kind: kind, RetryAfter: ra, Err: err}
}
