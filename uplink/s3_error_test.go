package uplink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestS3ErrorKinds maps S3 answers (XML error codes and statuses, HEAD
// answers without a body) to the uplink's error kinds, with the server's
// Retry-After, and checks the messages name the bucket and key.
func TestS3ErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		name       string
		head       bool
		status     int
		code       string
		retryAfter string
		kind       ErrorKind
		wantRA     time.Duration
		is         error
	}{
		{"missing bucket", false, 404, "NoSuchBucket", "", ErrNoBucket, 0, nil},
		{"access denied", false, 403, "AccessDenied", "", ErrAuth, 0, nil},
		{"bad signature", false, 403, "SignatureDoesNotMatch", "", ErrAuth, 0, nil},
		{"expired token", false, 400, "ExpiredToken", "", ErrAuth, 0, nil},
		{"versitygw unknown key", false, 404, "XAdminUserNotFound", "", ErrAuth, 0, nil},
		{"forbidden HEAD", true, 403, "", "", ErrAuth, 0, nil},
		{"slow down with Retry-After", false, 503, "SlowDown", "7", ErrServer, 7 * time.Second, nil},
		{"slow down without Retry-After", false, 503, "SlowDown", "", ErrServer, 5 * time.Second, nil},
		{"internal error", false, 500, "InternalError", "", ErrServer, 0, nil},
		{"too many requests", false, 429, "", "2", ErrServer, 2 * time.Second, nil},
		{"bad request", false, 400, "InvalidArgument", "", ErrRequest, 0, nil},
		{"clock skew", false, 403, "RequestTimeTooSkewed", "", ErrRequest, 0, nil},
		{"precondition", false, 412, "PreconditionFailed", "", ErrRequest, 0, ErrPreconditionFailed},
		{"conditional conflict", false, 409, "ConditionalRequestConflict", "", ErrRequest, 0, ErrPreconditionFailed},
		{"missing key HEAD", true, 404, "", "", ErrRequest, 0, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				if tc.code != "" && r.Method != http.MethodHead {
					io.WriteString(w, "<Error><Code>"+tc.code+"</Code><Message>told so</Message></Error>")
				}
			}))
			defer srv.Close()
			tgt, err := NewS3Target(S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Region: "us-east-1",
				Bucket: "edged", AccessKey: "a", SecretKey: "s", PathStyle: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.head {
				_, err = tgt.HeadObject(context.Background(), "site/k.parquet")
			} else {
				err = tgt.Put(context.Background(), "site/k.parquet", strings.NewReader("xyz"), 3)
			}
			var te *TargetError
			if !errors.As(err, &te) || te.Kind != tc.kind || te.RetryAfter != tc.wantRA {
				t.Fatalf("err = %v (%#v); want kind %s, retry after %v", err, te, tc.kind, tc.wantRA)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v; want it to wrap %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.Contains(msg, "edged/site/k.parquet") || strings.Contains(msg, "*s3") || strings.Contains(msg, "%!") {
				t.Errorf("message %q: want the bucket/key, no Go type names", msg)
			}
		})
	}
}

func TestS3TimeoutAndNetworkKinds(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer srv.Close()
	defer close(hang)
	tgt, _ := NewS3Target(S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Region: "us-east-1",
		Bucket: "edged", AccessKey: "a", SecretKey: "s", PathStyle: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := tgt.Put(ctx, "k", strings.NewReader("xyz"), 3)
	var te *TargetError
	if !errors.As(err, &te) || te.Kind != ErrTimeout {
		t.Fatalf("Put to a hanging server = %v; want a timeout error", err)
	}
}
