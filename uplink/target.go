package uplink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A Target stores objects. Put writes the size bytes of r under key and
// returns nil only once the object is durable at the target and complete:
// readers never see a partial object, and writing an existing key replaces
// it (uploads are retried with the same key and the same bytes). Put may be
// called again with the same key after any error. Targets are used by one
// goroutine at a time; r must not be retained after Put returns.
type Target interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// TargetFunc adapts a function to Target.
type TargetFunc func(ctx context.Context, key string, r io.Reader, size int64) error

// Put implements Target.
func (f TargetFunc) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return f(ctx, key, r, size)
}

// ObjectStore is implemented by targets that can also inspect, list,
// delete and conditionally write the objects they store (S3Target and
// WebHDFSTarget; not LocalTarget). It exists for split-brain fencing: a
// node records its ownership term in an object's metadata and writes only
// if nobody with a higher term wrote first. Use it with a type assertion
// on a Target.
//
// Keys are the ones Put takes (S3: the object key in the bucket; WebHDFS:
// the path under the root). Errors are *TargetError with a kind like
// Put's; a missing object wraps ErrNotFound and a refused condition
// ErrPreconditionFailed (test with errors.Is). S3Target and WebHDFSTarget
// are safe for concurrent use.
//
// Fencing with it: both stores let exactly one of several writers create
// a key (IfNoneMatch), so a claim can be one object per term
// ("fence/PARTITION/TERM", zero-padded so that keys sort by term) created
// with IfNoneMatch and found with ListObjects; a single object replaced
// only by a higher term (HeadObject, then PutObject with IfMatch: its
// ETag) needs IfMatch, which only S3 has.
type ObjectStore interface {
	Target
	// PutObject writes like Put, with o's metadata and conditions, and
	// returns the new object's ETag ("" when the store has none). A write
	// refused by o.IfNoneMatch or o.IfMatch returns an error wrapping
	// ErrPreconditionFailed and changes nothing.
	PutObject(ctx context.Context, key string, r io.Reader, size int64, o PutOptions) (etag string, err error)
	// HeadObject returns an object's size, ETag, time and metadata; a
	// missing object gives an error wrapping ErrNotFound.
	HeadObject(ctx context.Context, key string) (ObjectInfo, error)
	// ListObjects yields the objects whose key starts with prefix, in
	// lexical key order, without their Metadata; it stops after yielding
	// an error.
	ListObjects(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	// DeleteObject deletes an object; a missing object is not an error.
	DeleteObject(ctx context.Context, key string) error
}

// ObjectInfo describes a stored object (ObjectStore).
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag identifies the object's version for PutOptions.IfMatch (S3:
	// the entity tag with its quotes).
	ETag     string
	Modified time.Time
	// Metadata is the user metadata by lowercase name (S3: x-amz-meta-*).
	// Empty in listings.
	Metadata map[string]string
}

// PutOptions are the optional parts of ObjectStore.PutObject.
type PutOptions struct {
	// Metadata is stored with the object. Names are lowercase letters,
	// digits and '-'; names and values printable ASCII.
	Metadata map[string]string
	// IfNoneMatch writes only if the key does not exist.
	IfNoneMatch bool
	// IfMatch writes only if the object's current ETag is this one.
	IfMatch string
}

// ErrNotFound is wrapped by the errors of reads of a missing object
// (ObjectStore.HeadObject, WebHDFSTarget.Stat).
var ErrNotFound = errors.New("not found")

// ErrPreconditionFailed is wrapped by the error of a conditional write
// that the store refused (ObjectStore.PutObject).
var ErrPreconditionFailed = errors.New("precondition failed")

// ErrorKind classifies a failed upload for status and metrics. Every kind is
// retried: rows stay in the spool until the target confirms a write.
type ErrorKind string

// Error kinds.
const (
	ErrAuth     ErrorKind = "auth"      // wrong or missing credentials, permission denied
	ErrNoBucket ErrorKind = "no_bucket" // bucket or target directory missing
	ErrServer   ErrorKind = "server"    // 5xx, or the server is in safe/standby mode
	ErrTimeout  ErrorKind = "timeout"   // attempt deadline exceeded
	ErrNetwork  ErrorKind = "network"   // connection refused, reset, DNS
	ErrDisk     ErrorKind = "disk"      // local disk full or read-only
	ErrRequest  ErrorKind = "request"   // 4xx other than the above
	ErrOther    ErrorKind = "other"
)

// TargetError is an error of a target with its kind.
type TargetError struct {
	Kind ErrorKind
	// RetryAfter is the delay the server asked for (0: use the backoff).
	RetryAfter time.Duration
	Err        error
}

func (e *TargetError) Error() string { return string(e.Kind) + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// UploadError is a failed attempt to write one object. The Uploader retries
// it after the backoff (or RetryAfter when the server gave one).
type UploadError struct {
	Key     string
	Attempt int // 1 for the first attempt
	Kind    ErrorKind
	// RetryAfter is the server's requested delay, 0 if none.
	RetryAfter time.Duration
	Err        error
}

func (e *UploadError) Error() string {
	return fmt.Sprintf("uplink: put %s (attempt %d, %s, will retry): %v", e.Key, e.Attempt, e.Kind, e.Err)
}
func (e *UploadError) Unwrap() error { return e.Err }

// Temporary reports true: every upload error is retried.
func (e *UploadError) Temporary() bool { return true }

// classify returns the kind of err.
func classify(err error) (ErrorKind, time.Duration) {
	var te *TargetError
	if errors.As(err, &te) {
		return te.Kind, te.RetryAfter
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout, 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout, 0
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT) {
		return ErrDisk, 0
	}
	if errors.Is(err, os.ErrPermission) {
		return ErrAuth, 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return ErrNetwork, 0
	}
	return ErrOther, 0
}

// LocalTarget writes objects under a directory: each object is written to a
// temporary file in its final directory, fsynced, renamed over the key, and
// the directory is fsynced, so a crash leaves either the old object or the
// complete new one. Temporary files start with '.' (ignored by Hive, Spark
// and Trino) and are removed on failure.
type LocalTarget struct {
	Dir string
}

// Put implements Target.
func (t *LocalTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if strings.Contains(key, "..") || filepath.IsAbs(key) {
		return &TargetError{Kind: ErrRequest, Err: fmt.Errorf("key %q escapes the directory", key)}
	}
	path := filepath.Join(t.Dir, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+hex.EncodeToString(nonce[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return err
	}
	if n != size {
		return &TargetError{Kind: ErrOther, Err: fmt.Errorf("wrote %d bytes; want %d", n, size)}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// limiter is a token bucket of rate bytes/s with a one-second burst.
type limiter struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	for {
		now := time.Now()
		if !l.last.IsZero() {
			l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		} else {
			l.tokens = l.rate
		}
		l.last = now
		if l.tokens >= float64(n) || (l.tokens >= l.rate && float64(n) > l.rate) {
			l.tokens -= float64(n)
			return nil
		}
		d := time.Duration((float64(n) - l.tokens) / l.rate * float64(time.Second))
		if float64(n) > l.rate {
			d = time.Duration((l.rate - l.tokens) / l.rate * float64(time.Second))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// limitedReader reads through a limiter in chunks of at most 32 KiB.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *limiter
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.wait(lr.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
