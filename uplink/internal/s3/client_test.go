package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// roundTripFunc answers requests in-process.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// capture returns a client config whose transport records each request
// (with its body read) and answers 200.
func capture(cfg Config, got *[]*http.Request, bodies *[]string) Config {
	cfg.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		*got = append(*got, r)
		*bodies = append(*bodies, string(b))
		return &http.Response{StatusCode: 200, Header: http.Header{"Etag": {`"abc"`}},
			Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	})}
	cfg.AccessKey, cfg.SecretKey = exampleAccess, exampleSecret
	cfg.Now = func() time.Time { return exampleTime }
	return cfg
}

func TestPutObjectRequest(t *testing.T) {
	body := "parquet bytes"
	sum := sha256.Sum256([]byte(body))
	for _, tc := range []struct {
		name     string
		cfg      Config
		bucket   string
		wantURL  string
		wantScop string
	}{
		{"AWS endpoint: virtual host, region from the name",
			Config{Endpoint: "s3.eu-west-1.amazonaws.com", TLS: true}, "edged-data",
			"https://edged-data.s3.eu-west-1.amazonaws.com/site%20a/p%2B1.parquet", "/20130524/eu-west-1/s3/aws4_request"},
		{"AWS endpoint, dotted bucket over TLS: path style",
			Config{Endpoint: "s3.eu-west-1.amazonaws.com", TLS: true}, "edged.data",
			"https://s3.eu-west-1.amazonaws.com/edged.data/site%20a/p%2B1.parquet", "/20130524/eu-west-1/s3/aws4_request"},
		{"path_style forced",
			Config{Endpoint: "s3.eu-west-1.amazonaws.com", TLS: true, PathStyle: true, Region: "eu-west-1"}, "edged-data",
			"https://s3.eu-west-1.amazonaws.com/edged-data/site%20a/p%2B1.parquet", "/20130524/eu-west-1/s3/aws4_request"},
		{"self-hosted store: path style, configured region, plain http",
			Config{Endpoint: "minio.local:9000", Region: "site-1"}, "edged",
			"http://minio.local:9000/edged/site%20a/p%2B1.parquet", "/20130524/site-1/s3/aws4_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []*http.Request
			var bodies []string
			c, err := New(capture(tc.cfg, &reqs, &bodies))
			if err != nil {
				t.Fatal(err)
			}
			// A reader that is not a Seeker and returns one byte at a
			// time: the client must still hash and send all of it.
			etag, err := c.PutObject(context.Background(), tc.bucket, "site a/p+1.parquet",
				iotest.OneByteReader(strings.NewReader(body)), int64(len(body)),
				PutOptions{ContentType: "application/vnd.apache.parquet", Metadata: map[string]string{"edged-term": "3"}, IfNoneMatch: true})
			if err != nil {
				t.Fatal(err)
			}
			if etag != `"abc"` {
				t.Errorf("ETag = %s", etag)
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests; want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != "PUT" || r.URL.String() != tc.wantURL {
				t.Errorf("request %s %s; want PUT %s", r.Method, r.URL, tc.wantURL)
			}
			if bodies[0] != body || r.ContentLength != int64(len(body)) {
				t.Errorf("body %q (length %d); want %q", bodies[0], r.ContentLength, body)
			}
			for k, want := range map[string]string{
				"X-Amz-Content-Sha256":  hex.EncodeToString(sum[:]),
				"Content-Type":          "application/vnd.apache.parquet",
				"X-Amz-Meta-Edged-Term": "3",
				"If-None-Match":         "*",
				"Expect":                "100-continue",
			} {
				if got := r.Header.Get(k); got != want {
					t.Errorf("header %s = %q; want %q", k, got, want)
				}
			}
			auth := r.Header.Get("Authorization")
			if !strings.Contains(auth, "Credential="+exampleAccess+tc.wantScop) ||
				!strings.Contains(auth, "SignedHeaders=content-type;host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-meta-edged-term,") {
				t.Errorf("Authorization = %s", auth)
			}
		})
	}
}

func TestNoCredentialsSendsAnonymousRequests(t *testing.T) {
	var reqs []*http.Request
	var bodies []string
	cfg := capture(Config{Endpoint: "h:1", Region: "r"}, &reqs, &bodies)
	cfg.AccessKey, cfg.SecretKey = "", ""
	c, _ := New(cfg)
	if _, err := c.HeadObject(context.Background(), "b", "k"); err != nil {
		t.Fatal(err)
	}
	if a := reqs[0].Header.Get("Authorization"); a != "" {
		t.Fatalf("Authorization = %q without credentials; want none", a)
	}
}

func TestPutObjectRejectsShortBodyAndBadMetadata(t *testing.T) {
	var reqs []*http.Request
	var bodies []string
	c, _ := New(capture(Config{Endpoint: "h:1", Region: "r"}, &reqs, &bodies))
	_, err := c.PutObject(context.Background(), "b", "k", strings.NewReader("abc"), 5, PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "s3 put b/k: body has 3 bytes; want 5") {
		t.Errorf("short body: %v", err)
	}
	_, err = c.PutObject(context.Background(), "b", "k", strings.NewReader("abc"), 3, PutOptions{Metadata: map[string]string{"term": "é"}})
	if err == nil || !strings.Contains(err.Error(), "printable ASCII") {
		t.Errorf("non-ASCII metadata: %v", err)
	}
	if len(reqs) != 0 {
		t.Errorf("%d requests sent for invalid puts", len(reqs))
	}
}

// TestRegionIsAskedOncePerBucket: with no region configured and an
// endpoint that names none, the client asks GetBucketLocation once and
// signs with the answer.
func TestRegionIsAskedOncePerBucket(t *testing.T) {
	var located atomic.Int32
	var scopes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "location=" {
			located.Add(1)
			if !strings.Contains(r.Header.Get("Authorization"), "/us-east-1/s3/") {
				t.Errorf("GetBucketLocation signed with %s; want us-east-1", r.Header.Get("Authorization"))
			}
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-central-1</LocationConstraint>`)
			return
		}
		scopes = append(scopes, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c, _ := New(Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), AccessKey: "a", SecretKey: "s"})
	for range 2 {
		if _, err := c.PutObject(context.Background(), "b", "k", strings.NewReader("x"), 1, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if located.Load() != 1 || len(scopes) != 2 || !strings.Contains(scopes[1], "/eu-central-1/s3/aws4_request") {
		t.Fatalf("%d location requests, scopes %v; want 1 and eu-central-1", located.Load(), scopes)
	}
}

func TestErrorsCarryTheServersAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("X-Amz-Bucket-Region", "ap-south-1")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate &amp; retry.</Message><RequestId>R1</RequestId></Error>`)
		}
	}))
	defer srv.Close()
	c, _ := New(Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Region: "r", PathStyle: true})
	_, err := c.PutObject(context.Background(), "b", "a/k", bytes.NewReader([]byte("x")), 1, PutOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != "SlowDown" || e.RetryAfter != 7*time.Second ||
		e.Message != "Please reduce your request rate & retry." || e.Region != "ap-south-1" {
		t.Fatalf("err = %#v", err)
	}
	want := "s3 put b/a/k: HTTP 503 SlowDown: Please reduce your request rate & retry. (the bucket is in region ap-south-1) (request id R1)"
	if err.Error() != want {
		t.Errorf("message\n %s\nwant\n %s", err, want)
	}
	_, err = c.HeadObject(context.Background(), "b", "a/k")
	if !errors.As(err, &e) || e.Code != "ServiceUnavailable" || e.RetryAfter != 7*time.Second {
		t.Fatalf("HEAD err = %#v; want the code derived from the status", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"12":                            12 * time.Second,
		"-3":                            0,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v; want %v", v, got, want)
		}
	}
}

func TestXMLText(t *testing.T) {
	doc := []byte(`<ListBucketResult><IsTruncated>true</IsTruncated>` +
		`<Contents><Key>a&amp;b&lt;c&#62;&#x41;</Key><Size>3</Size></Contents>` +
		`<Contents><Key><![CDATA[x<y]]></Key><KeyCount>9</KeyCount><Size>4</Size></Contents>` +
		`<NextContinuationToken/><Code a="1">C</Code></ListBucketResult>`)
	cs := elems(doc, "Contents")
	if len(cs) != 2 || elem(cs[0], "Key") != "a&b<c>A" || elem(cs[1], "Key") != "x<y" || elem(cs[1], "Size") != "4" {
		t.Fatalf("contents %q", cs)
	}
	if elem(doc, "NextContinuationToken") != "" || elem(doc, "IsTruncated") != "true" || elem(doc, "Missing") != "" || elem(doc, "Code") != "C" {
		t.Fatal("top-level elements")
	}
}
