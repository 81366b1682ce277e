// Package s3 is edged's own small client for the S3 REST API: the calls
// the uplink needs (PutObject with content type, user metadata and
// conditional headers, GetObject, HeadObject, ListObjectsV2, DeleteObject,
// CreateBucket for tests), signed with AWS Signature Version 4 (header
// authorization, SHA-256 of the payload signed), on net/http only.
//
// It replaces minio-go, whose general-purpose client (multipart uploads,
// SSE, lifecycle, notifications, encoding/xml, its own checksum and
// msgpack code) and the modules only it pulled in cost about 1 MB of the
// stripped arm64 edged for the one PutObject edged made (14,745,726 ->
// 13,697,150 bytes when it was replaced; this package is ~23 KB of
// symbols).
//
// Not implemented, because edged does not need them: multipart uploads
// (objects are a few MB, held in memory), presigned URLs, chunked
// (streaming) signatures, SSE, Signature Version 2, retries (the caller
// owns the retry policy).
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config configures a Client.
type Config struct {
	// Endpoint is host[:port] of the S3 API, without scheme.
	Endpoint string
	// TLS selects https.
	TLS bool
	// Region signs the requests. Empty: taken from an AWS endpoint's name
	// (s3.eu-west-1.amazonaws.com), else asked once per bucket with
	// GetBucketLocation, else us-east-1.
	Region string
	// PathStyle forces http://host/bucket/key. false: virtual-host style
	// (http://bucket.host/key) for AWS endpoints and DNS-compatible bucket
	// names, path style for every other endpoint (self-hosted stores).
	PathStyle bool
	// AccessKey, SecretKey and SessionToken are the credentials
	// (SessionToken only for temporary credentials).
	AccessKey, SecretKey, SessionToken string
	// HTTP sends the requests. nil: a client with connect and TLS handshake
	// timeouts and no overall timeout (callers bound requests with ctx).
	HTTP *http.Client
	// Now is the signing clock; nil: time.Now.
	Now func() time.Time
}

// Client is an S3 client. It is safe for concurrent use.
type Client struct {
	cfg Config
	hc  *http.Client

	mu      sync.Mutex
	regions map[string]string // bucket -> discovered region
	skew    time.Duration     // server clock - local clock, learnt from RequestTimeTooSkewed
}

// New returns a client for cfg. It sends nothing.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("endpoint %q: want host[:port] without scheme or path", cfg.Endpoint)
	}
	hc := cfg.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = 30 * time.Second // slow links of gateways
		tr.ResponseHeaderTimeout = 0              // callers bound requests with ctx
		hc = &http.Client{Transport: tr}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, hc: hc, regions: map[string]string{}}, nil
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag is the entity tag as the server sent it, with its quotes.
	ETag         string
	LastModified time.Time
	ContentType  string // HeadObject and GetObject only
	// Metadata holds the user metadata (x-amz-meta-NAME) by lowercase
	// NAME; HeadObject and GetObject only.
	Metadata map[string]string
}

// PutOptions are the optional parts of a PutObject.
type PutOptions struct {
	ContentType string
	// Metadata is stored as x-amz-meta-NAME headers. Names are lowercased
	// by S3; names and values must be printable ASCII.
	Metadata map[string]string
	// IfNoneMatch writes only if no object has the key (If-None-Match: *).
	IfNoneMatch bool
	// IfMatch writes only if the object's current ETag is this one.
	IfMatch string
	// SHA256 is the hex SHA-256 of the body when the caller knows it.
	// Empty: the body is read once to hash it and rewound (an io.Seeker),
	// or held in memory (any other reader).
	SHA256 string
}

// ListPage is one page of ListObjectsV2.
type ListPage struct {
	Objects []ObjectInfo
	// Next continues the listing when non-empty (more keys follow).
	Next string
}

// Error is a failed S3 call: the server's answer (Status != 0) or the
// transport's failure (Err).
type Error struct {
	Op     string // put, get, head, list, delete, create bucket, locate bucket
	Bucket string
	Key    string // empty for bucket calls
	// Status is the HTTP status; 0 when no answer came (Err says why).
	Status int
	// Code, Message and RequestID come from the XML error document; a
	// HEAD answer has none, then Code is derived from the status
	// (NotFound, Forbidden, PreconditionFailed, ...).
	Code, Message, RequestID string
	// Region is the bucket's region when the server named it
	// (x-amz-bucket-region or <Region>).
	Region string
	// RetryAfter is the delay the server asked for (Retry-After), 0 if none.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	where := e.Bucket
	if e.Key != "" {
		where += "/" + e.Key
	}
	if e.Status == 0 {
		return fmt.Sprintf("s3 %s %s: %v", e.Op, where, e.Err)
	}
	s := fmt.Sprintf("s3 %s %s: HTTP %d %s", e.Op, where, e.Status, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Region != "" {
		s += " (the bucket is in region " + e.Region + ")"
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// NotFound reports whether the object (or, for bucket calls, the bucket)
// does not exist.
func (e *Error) NotFound() bool {
	return e.Code == "NoSuchKey" || e.Code == "NotFound" || e.Code == "NoSuchBucket"
}

// PreconditionFailed reports whether a conditional write was refused: the
// key exists (IfNoneMatch) or has another ETag (IfMatch). A 409
// ConditionalRequestConflict (a concurrent conditional write won) counts.
func (e *Error) PreconditionFailed() bool {
	return e.Status == http.StatusPreconditionFailed || e.Code == "ConditionalRequestConflict"
}

// request is one call.
type request struct {
	op, method  string
	bucket, key string
	query       string // already encoded (encode(..., true))
	header      http.Header
	body        io.Reader
	size        int64
	sha         string // hex SHA-256 of body; "" = empty body
	region      string // "" = the bucket's region
}

// PutObject writes size bytes of body under key and returns the new ETag.
func (c *Client) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, o PutOptions) (string, error) {
	rq := &request{op: "put", method: http.MethodPut, bucket: bucket, key: key, header: http.Header{}, body: body, size: size, sha: o.SHA256}
	if o.ContentType != "" {
		rq.header.Set("Content-Type", o.ContentType)
	}
	for k, v := range o.Metadata {
		if !printable(k) || k == "" || strings.ContainsAny(k, " :") || !printable(v) {
			return "", &Error{Op: "put", Bucket: bucket, Key: key, Err: fmt.Errorf("metadata %q=%q: names and values must be printable ASCII", k, v)}
		}
		rq.header.Set("X-Amz-Meta-"+k, v)
	}
	if o.IfNoneMatch {
		rq.header.Set("If-None-Match", "*")
	}
	if o.IfMatch != "" {
		rq.header.Set("If-Match", o.IfMatch)
	}
	if size > 0 {
		// A server that checks the request before it asks for the body
		// (AWS) refuses a wrong secret, a missing bucket or a failed
		// condition without the body crossing a metered link. It costs one
		// round trip per put.
		rq.header.Set("Expect", "100-continue")
	}
	if rq.sha == "" {
		if err := rq.hashBody(); err != nil {
			return "", &Error{Op: "put", Bucket: bucket, Key: key, Err: err}
		}
	}
	resp, err := c.do(ctx, rq)
	if err != nil {
		return "", c.whyReset(ctx, rq, o, err)
	}
	resp.Body.Close()
	return resp.Header.Get("ETag"), nil
}

// whyReset explains a put that failed with the connection reset while
// the body was being written. A server that refuses a request before
// reading its body (versitygw, MinIO and others send 100 Continue first)
// answers and closes; the answer is then lost in the reset and a wrong
// secret would read as a network error. The put wrote nothing (the server
// never had the whole body), so the refusal is looked for with body-less
// requests: GetBucketLocation for credentials and bucket, HeadObject for
// the conditions. err is returned when they find nothing (a real network
// failure).
func (c *Client) whyReset(ctx context.Context, rq *request, o PutOptions, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || ctx.Err() != nil ||
		!errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return err
	}
	resp, perr := c.do(ctx, &request{op: "put", method: http.MethodGet, bucket: rq.bucket, query: "location="})
	if perr == nil {
		resp.Body.Close()
	} else if errors.As(perr, &e) && refusesAnyRequest(e.Code) {
		e.Key = rq.key
		return e
	} else {
		return err // AccessDenied may only deny GetBucketLocation
	}
	if !o.IfNoneMatch && o.IfMatch == "" {
		return err
	}
	oi, herr := c.HeadObject(ctx, rq.bucket, rq.key)
	switch {
	case o.IfNoneMatch && herr == nil,
		o.IfMatch != "" && herr == nil && oi.ETag != o.IfMatch,
		o.IfMatch != "" && errors.As(herr, &e) && e.NotFound():
		return &Error{Op: "put", Bucket: rq.bucket, Key: rq.key, Status: http.StatusPreconditionFailed,
			Code: "PreconditionFailed", Message: "the condition does not hold (found after the connection was reset)"}
	}
	return err
}

// hashBody computes rq.sha by reading the body once: rewound when it is
// an io.Seeker, else kept in memory.
func (rq *request) hashBody() error {
	h := sha256.New()
	if s, ok := rq.body.(io.ReadSeeker); ok {
		start, err := s.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		n, err := io.Copy(h, io.LimitReader(s, rq.size))
		if err != nil {
			return err
		}
		if n != rq.size {
			return fmt.Errorf("body has %d bytes; want %d", n, rq.size)
		}
		if _, err := s.Seek(start, io.SeekStart); err != nil {
			return err
		}
	} else {
		b, err := io.ReadAll(io.LimitReader(rq.body, rq.size))
		if err != nil {
			return err
		}
		if int64(len(b)) != rq.size {
			return fmt.Errorf("body has %d bytes; want %d", len(b), rq.size)
		}
		h.Write(b)
		rq.body = bytes.NewReader(b)
	}
	rq.sha = hex.EncodeToString(h.Sum(nil))
	return nil
}

// GetObject reads an object. The caller closes the body.
func (c *Client) GetObject(ctx context.Context, bucket, key string) (io.ReadCloser, ObjectInfo, error) {
	resp, err := c.do(ctx, &request{op: "get", method: http.MethodGet, bucket: bucket, key: key})
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return resp.Body, info(key, resp), nil
}

// HeadObject returns an object's size, ETag, content type and metadata. A
// missing object gives an *Error whose NotFound is true.
func (c *Client) HeadObject(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	resp, err := c.do(ctx, &request{op: "head", method: http.MethodHead, bucket: bucket, key: key})
	if err != nil {
		return ObjectInfo{}, err
	}
	resp.Body.Close()
	return info(key, resp), nil
}

func info(key string, resp *http.Response) ObjectInfo {
	oi := ObjectInfo{Key: key, Size: resp.ContentLength, ETag: resp.Header.Get("ETag"),
		ContentType: resp.Header.Get("Content-Type"), Metadata: map[string]string{}}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		oi.LastModified = t
	}
	for k, v := range resp.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-amz-meta-") && len(v) > 0 {
			oi.Metadata[lk[len("x-amz-meta-"):]] = v[0]
		}
	}
	return oi
}

// ListObjects returns one page (at most max keys; 0: the server's
// default, 1000) of the keys under prefix in lexical order, starting after
// the page that returned next ("" for the first page).
func (c *Client) ListObjects(ctx context.Context, bucket, prefix, next string, max int) (ListPage, error) {
	q := []string{"list-type=2"}
	if next != "" {
		q = append(q, "continuation-token="+encode(next, true))
	}
	if max > 0 {
		q = append(q, "max-keys="+strconv.Itoa(max))
	}
	if prefix != "" {
		q = append(q, "prefix="+encode(prefix, true))
	}
	sort.Strings(q)
	resp, err := c.do(ctx, &request{op: "list", method: http.MethodGet, bucket: bucket, query: strings.Join(q, "&")})
	if err != nil {
		return ListPage{}, err
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return ListPage{}, &Error{Op: "list", Bucket: bucket, Err: err}
	}
	var p ListPage
	for _, e := range elems(doc, "Contents") {
		oi := ObjectInfo{Key: elem(e, "Key"), ETag: elem(e, "ETag")}
		oi.Size, _ = strconv.ParseInt(elem(e, "Size"), 10, 64)
		oi.LastModified, _ = time.Parse(time.RFC3339Nano, elem(e, "LastModified"))
		p.Objects = append(p.Objects, oi)
	}
	if elem(doc, "IsTruncated") == "true" {
		p.Next = elem(doc, "NextContinuationToken")
		if p.Next == "" {
			return p, &Error{Op: "list", Bucket: bucket, Err: errors.New("truncated listing without NextContinuationToken")}
		}
	}
	return p, nil
}

// DeleteObject deletes an object; deleting a missing key succeeds (S3
// answers 204 either way).
func (c *Client) DeleteObject(ctx context.Context, bucket, key string) error {
	resp, err := c.do(ctx, &request{op: "delete", method: http.MethodDelete, bucket: bucket, key: key})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// CreateBucket creates a bucket in the client's region (tests use it).
func (c *Client) CreateBucket(ctx context.Context, bucket string) error {
	rq := &request{op: "create bucket", method: http.MethodPut, bucket: bucket, region: c.cfg.Region}
	if rq.region == "" {
		rq.region = "us-east-1"
	}
	if rq.region != "us-east-1" {
		b := []byte("<CreateBucketConfiguration><LocationConstraint>" + rq.region + "</LocationConstraint></CreateBucketConfiguration>")
		rq.body, rq.size = bytes.NewReader(b), int64(len(b))
		sum := sha256.Sum256(b)
		rq.sha = hex.EncodeToString(sum[:])
	}
	resp, err := c.do(ctx, rq)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// region returns the region to sign requests for bucket with.
func (c *Client) region(ctx context.Context, bucket string) (string, error) {
	if c.cfg.Region != "" {
		return c.cfg.Region, nil
	}
	if r := awsRegion(c.host()); r != "" {
		return r, nil
	}
	c.mu.Lock()
	r, ok := c.regions[bucket]
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	resp, err := c.do(ctx, &request{op: "locate bucket", method: http.MethodGet, bucket: bucket, query: "location=", region: "us-east-1"})
	var se *Error
	switch {
	case err == nil:
		doc, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if rerr != nil {
			return "", &Error{Op: "locate bucket", Bucket: bucket, Err: rerr}
		}
		r = elem(doc, "LocationConstraint")
		if r == "EU" {
			r = "eu-west-1" // the legacy name
		}
	case errors.As(err, &se) && se.Region != "":
		r = se.Region // a redirect or a refusal that names the region
	case errors.As(err, &se) && (se.Code == "AccessDenied" || se.Code == "NotImplemented"):
		// not allowed to ask (or not supported): the default region
	default:
		return "", err
	}
	if r == "" {
		r = "us-east-1"
	}
	c.mu.Lock()
	c.regions[bucket] = r
	c.mu.Unlock()
	return r, nil
}

// awsRegion returns the region named by an AWS S3 endpoint
// (s3.REGION.amazonaws.com, s3-REGION.amazonaws.com,
// s3.dualstack.REGION.amazonaws.com), "" for any other host.
func awsRegion(host string) string {
	h, ok := strings.CutSuffix(host, ".amazonaws.com")
	if !ok {
		h, ok = strings.CutSuffix(host, ".amazonaws.com.cn")
	}
	if !ok {
		return ""
	}
	parts := strings.Split(h, ".")
	last := parts[len(parts)-1]
	switch {
	case strings.HasPrefix(last, "s3-") && strings.Count(last, "-") >= 3: // s3-eu-west-1
		return last[3:]
	case len(parts) >= 2 && !strings.HasPrefix(last, "s3") && strings.Count(last, "-") >= 2:
		return last
	}
	return ""
}

// host returns the endpoint's host name without port.
func (c *Client) host() string {
	h, _, err := net.SplitHostPort(c.cfg.Endpoint)
	if err != nil {
		return c.cfg.Endpoint
	}
	return h
}

// virtualHost reports whether bucket is addressed as a host name.
func (c *Client) virtualHost(bucket string) bool {
	if c.cfg.PathStyle {
		return false
	}
	h := c.host()
	if !strings.HasSuffix(h, ".amazonaws.com") && !strings.HasSuffix(h, ".amazonaws.com.cn") {
		return false
	}
	if len(bucket) < 3 || len(bucket) > 63 || c.cfg.TLS && strings.Contains(bucket, ".") {
		return false // a dotted name does not match the *.s3 certificate
	}
	for i := 0; i < len(bucket); i++ {
		ch := bucket[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}

// do sends rq and returns the answer when its status is 2xx; any other
// answer is read, closed and returned as *Error.
func (c *Client) do(ctx context.Context, rq *request) (*http.Response, error) {
	fail := func(err error) error { return &Error{Op: rq.op, Bucket: rq.bucket, Key: rq.key, Err: err} }
	region := rq.region
	if region == "" {
		r, err := c.region(ctx, rq.bucket)
		if err != nil {
			return nil, err
		}
		region = r
	}
	u := &url.URL{Scheme: "http", Host: c.cfg.Endpoint, RawQuery: rq.query}
	if c.cfg.TLS {
		u.Scheme = "https"
	}
	if c.virtualHost(rq.bucket) {
		u.Host = rq.bucket + "." + c.cfg.Endpoint
		u.Path = "/" + rq.key
	} else {
		u.Path = "/" + rq.bucket
		if rq.key != "" {
			u.Path += "/" + rq.key
		}
	}
	u.RawPath = encode(u.Path, false)
	body := rq.body
	if rq.size == 0 {
		body = http.NoBody // a non-nil body of length 0 would be sent chunked
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return nil, fail(err)
	}
	req.ContentLength = rq.size
	for k, v := range rq.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "edged")
	sha := rq.sha
	if sha == "" {
		sha = emptySHA256
	}
	if c.cfg.AccessKey != "" { // else anonymous: unsigned
		c.mu.Lock()
		skew := c.skew
		c.mu.Unlock()
		sign(req, sha, region, c.cfg.AccessKey, c.cfg.SecretKey, c.cfg.SessionToken, c.cfg.Now().Add(skew))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Op: rq.op, Bucket: rq.bucket, Key: rq.key, Status: resp.StatusCode,
		Code: elem(doc, "Code"), Message: elem(doc, "Message"), RequestID: elem(doc, "RequestId"),
		Region: resp.Header.Get("X-Amz-Bucket-Region")}
	if e.Region == "" {
		e.Region = elem(doc, "Region")
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Amz-Request-Id")
	}
	if e.Code == "" {
		e.Code = statusCode(resp.StatusCode, rq.key != "")
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())
	if e.Code == "RequestTimeTooSkewed" {
		// A gateway without a real-time clock may sign with a wrong
		// time until NTP syncs: the next requests sign with the
		// server's clock (as the AWS SDKs do).
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			c.mu.Lock()
			c.skew = t.Sub(c.cfg.Now())
			c.mu.Unlock()
			e.Message += " (the next request corrects the clock by the server's Date)"
		}
	}
	return nil, e
}

// refusesAnyRequest reports whether code refuses every request of the
// caller to the bucket, not just one operation.
func refusesAnyRequest(code string) bool {
	switch code {
	case "NoSuchBucket", "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken",
		"XAdminUserNotFound": // versitygw: unknown access key
		return true
	}
	return false
}

// statusCode names an error status that came without an XML document
// (HEAD answers).
func statusCode(status int, object bool) string {
	switch status {
	case http.StatusNotFound:
		if object {
			return "NotFound"
		}
		return "NoSuchBucket"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusPreconditionFailed:
		return "PreconditionFailed"
	case http.StatusMovedPermanently:
		return "PermanentRedirect"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
