package uplink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WebHDFSTarget writes objects to HDFS through the WebHDFS REST API with a
// plain net/http client (no Hadoop dependency, so it is always built in).
// Put creates the file under a temporary name in the final directory
// (".NAME.NONCE.tmp", ignored by Hive, Spark and Trino) with the two-step
// CREATE (the namenode redirects to a datanode, which receives the data),
// then RENAMEs it to the key; HDFS refuses to rename over an existing file,
// so an existing object (a retried upload) is deleted first. Readers never
// see a partial file. WebHDFSTarget is an ObjectStore and is safe for
// concurrent use.
type WebHDFSTarget struct {
	cfg    WebHDFSConfig
	client *http.Client
}

// NewWebHDFSTarget returns a WebHDFS target; hc nil uses a client with no
// overall timeout (the Uploader bounds each attempt with Config.Timeout).
func NewWebHDFSTarget(cfg WebHDFSConfig, hc *http.Client) *WebHDFSTarget {
	c := &http.Client{}
	if hc != nil {
		cc := *hc
		c = &cc
	}
	// The redirect of CREATE is followed by hand: the data goes only to the
	// datanode.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &WebHDFSTarget{cfg: cfg, client: c}
}

// RemoteException is the error JSON of WebHDFS:
// {"RemoteException":{"exception":..., "javaClassName":..., "message":...}}.
type RemoteException struct {
	Status        int    `json:"-"`
	Exception     string `json:"exception"`
	JavaClassName string `json:"javaClassName"`
	Message       string `json:"message"`
}

func (e *RemoteException) Error() string {
	return fmt.Sprintf("webhdfs: HTTP %d %s: %s", e.Status, e.Exception, e.Message)
}

// FileStatus is the WebHDFS FileStatus object (the fields edged uses).
type FileStatus struct {
	PathSuffix       string `json:"pathSuffix"`
	Type             string `json:"type"` // FILE or DIRECTORY
	Length           int64  `json:"length"`
	Replication      int    `json:"replication"`
	ModificationTime int64  `json:"modificationTime"`
}

func (t *WebHDFSTarget) url(p, op string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("op", op)
	if t.cfg.User != "" {
		q.Set("user.name", t.cfg.User)
	}
	return strings.TrimRight(t.cfg.NameNode, "/") + "/webhdfs/v1" + (&url.URL{Path: p}).EscapedPath() + "?" + q.Encode()
}

func (t *WebHDFSTarget) abs(key string) string {
	return path.Join(t.cfg.Root, key)
}

// do sends a request and decodes a JSON answer into out (nil: discard);
// non-2xx answers become *RemoteException wrapped in a TargetError.
func (t *WebHDFSTarget) do(ctx context.Context, method, u string, body io.Reader, size int64, want int, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		k, _ := classify(err)
		return nil, &TargetError{Kind: k, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return resp, httpError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, &TargetError{Kind: ErrServer, Err: fmt.Errorf("webhdfs: %s: bad JSON answer: %w", req.URL.Query().Get("op"), err)}
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp, nil
}

func httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env struct {
		RemoteException *RemoteException `json:"RemoteException"`
	}
	re := &RemoteException{Status: resp.StatusCode}
	if json.Unmarshal(b, &env) == nil && env.RemoteException != nil {
		re = env.RemoteException
		re.Status = resp.StatusCode
	} else {
		re.Exception = http.StatusText(resp.StatusCode)
		re.Message = strings.TrimSpace(string(b))
	}
	kind := ErrRequest
	switch { // the exception names first: HDFS answers 403 for several of them
	case re.Exception == "StandbyException" || re.Exception == "SafeModeException" || re.Exception == "RetriableException":
		kind = ErrServer
	case re.Exception == "DSQuotaExceededException" || re.Exception == "NSQuotaExceededException":
		kind = ErrDisk
	case re.Exception == "AccessControlException" || re.Exception == "SecurityException" ||
		resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		kind = ErrAuth
	case resp.StatusCode >= 500:
		kind = ErrServer
	case resp.StatusCode == http.StatusNotFound:
		kind = ErrNoBucket
	}
	var ra time.Duration
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			ra = time.Duration(n) * time.Second
		}
	}
	return &TargetError{Kind: kind, RetryAfter: ra, Err: re}
}

// Put implements Target.
func (t *WebHDFSTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	_, err := t.PutObject(ctx, key, r, size, PutOptions{})
	return err
}

// PutObject implements ObjectStore like Put: o.Metadata becomes user.NAME
// extended attributes (SETXATTR) of the temporary file, so they appear
// with the object at the rename. IfNoneMatch renames without replacing:
// HDFS refuses to rename over an existing file, atomically, so of two
// racing writers one wins. IfMatch is not supported (HDFS cannot replace
// a file only if it is unchanged) and is refused as a request error. The
// ETag returned is "" (HDFS has none).
func (t *WebHDFSTarget) PutObject(ctx context.Context, key string, r io.Reader, size int64, o PutOptions) (string, error) {
	final := t.abs(key)
	if o.IfMatch != "" {
		return "", &TargetError{Kind: ErrRequest, Err: fmt.Errorf("webhdfs: put %s: If-Match is not supported: HDFS cannot replace a file only if it is unchanged", final)}
	}
	for k, v := range o.Metadata {
		if !metadataName(k) || !printableASCII(v) {
			return "", &TargetError{Kind: ErrRequest, Err: fmt.Errorf("webhdfs: put %s: metadata %q=%q: want a lowercase name of letters, digits and '-' and a printable ASCII value", final, k, v)}
		}
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	tmp := path.Join(path.Dir(final), "."+path.Base(final)+"."+hex.EncodeToString(nonce[:])+".tmp")
	if err := t.create(ctx, tmp, r, size); err != nil {
		return "", err
	}
	var err error
	for k, v := range o.Metadata {
		if err = t.setXAttr(ctx, tmp, "user."+k, v); err != nil {
			break
		}
	}
	ok := false
	if err == nil {
		ok, err = t.Rename(ctx, tmp, final)
	}
	if err == nil && !ok {
		_, serr := t.Stat(ctx, final)
		switch {
		case serr == nil && o.IfNoneMatch:
			err = &TargetError{Kind: ErrRequest, Err: fmt.Errorf("webhdfs: put %s: %w: the file exists", final, ErrPreconditionFailed)}
		case serr == nil:
			// The destination exists (a retry of an upload that
			// succeeded): replace it. Its content is the same rows.
			if _, derr := t.Delete(ctx, final); derr != nil {
				err = derr
			} else {
				ok, err = t.Rename(ctx, tmp, final)
			}
		}
		if err == nil && !ok {
			err = &TargetError{Kind: ErrServer, Err: fmt.Errorf("webhdfs: rename %s to %s refused", tmp, final)}
		}
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		t.Delete(dctx, tmp) // best effort
		cancel()
	}
	return "", err
}

// setXAttr creates an extended attribute (SETXATTR); the value is sent
// in WebHDFS's text encoding (between double quotes, stored as is).
func (t *WebHDFSTarget) setXAttr(ctx context.Context, p, name, value string) error {
	q := url.Values{"xattr.name": {name}, "xattr.value": {`"` + value + `"`}, "flag": {"CREATE"}}
	_, err := t.do(ctx, http.MethodPut, t.url(p, "SETXATTR", q), nil, 0, http.StatusOK, nil)
	return err
}

// HeadObject implements ObjectStore: GETFILESTATUS for the size and time,
// GETXATTRS for the user.* attributes. A directory is not an object.
func (t *WebHDFSTarget) HeadObject(ctx context.Context, key string) (ObjectInfo, error) {
	p := t.abs(key)
	st, err := t.Stat(ctx, p)
	if err == nil && st.Type != "FILE" {
		err = fmt.Errorf("webhdfs: %s is a directory: %w", p, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	var out struct {
		XAttrs []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"XAttrs"`
	}
	if _, err := t.do(ctx, http.MethodGet, t.url(p, "GETXATTRS", url.Values{"encoding": {"text"}}), nil, 0, http.StatusOK, &out); err != nil {
		return ObjectInfo{}, err
	}
	oi := ObjectInfo{Key: key, Size: st.Length, Modified: time.UnixMilli(st.ModificationTime), Metadata: map[string]string{}}
	for _, x := range out.XAttrs {
		if name, ok := strings.CutPrefix(x.Name, "user."); ok {
			v := x.Value // text encoding: between double quotes
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			oi.Metadata[name] = v
		}
	}
	return oi, nil
}

// ListObjects implements ObjectStore with LISTSTATUS of the directories
// that can hold keys under prefix; the whole listing is read before the
// first object is yielded (to sort it). Temporary files of uploads in
// progress are left out.
func (t *WebHDFSTarget) ListObjects(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		var found []ObjectInfo
		var walk func(dir string) error // dir: a key prefix ending in '/', or ""
		walk = func(dir string) error {
			list, err := t.List(ctx, t.abs(dir))
			if isNotFound(err) {
				return nil // no such directory: no keys
			}
			if err != nil {
				return err
			}
			for _, st := range list {
				k := dir + st.PathSuffix
				switch {
				case st.Type == "DIRECTORY" && (strings.HasPrefix(k+"/", prefix) || strings.HasPrefix(prefix, k+"/")):
					if err := walk(k + "/"); err != nil {
						return err
					}
				case st.Type == "FILE" && strings.HasPrefix(k, prefix) &&
					!(strings.HasPrefix(st.PathSuffix, ".") && strings.HasSuffix(st.PathSuffix, ".tmp")):
					found = append(found, ObjectInfo{Key: k, Size: st.Length, Modified: time.UnixMilli(st.ModificationTime)})
				}
			}
			return nil
		}
		start := ""
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			start = prefix[:i+1]
		}
		if err := walk(start); err != nil {
			yield(ObjectInfo{}, err)
			return
		}
		slices.SortFunc(found, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		for _, o := range found {
			if !yield(o, nil) {
				return
			}
		}
	}
}

// isNotFound reports whether err is WebHDFS's answer for a missing path.
func isNotFound(err error) bool {
	var re *RemoteException
	return errors.As(err, &re) && (re.Status == http.StatusNotFound || re.Exception == "FileNotFoundException")
}

// DeleteObject implements ObjectStore.
func (t *WebHDFSTarget) DeleteObject(ctx context.Context, key string) error {
	_, err := t.Delete(ctx, t.abs(key))
	return err
}

// metadataName reports whether s is a metadata name both S3 and HDFS
// keep as is: lowercase letters, digits and '-'.
func metadataName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// create is the two-step CREATE: PUT to the namenode without data, which
// answers 307 with the datanode's Location; PUT the data there (201).
func (t *WebHDFSTarget) create(ctx context.Context, p string, r io.Reader, size int64) error {
	q := url.Values{"overwrite": {"true"}}
	if t.cfg.Replication > 0 {
		q.Set("replication", strconv.Itoa(t.cfg.Replication))
	}
	resp, err := t.do(ctx, http.MethodPut, t.url(p, "CREATE", q), nil, 0, http.StatusTemporaryRedirect, nil)
	if err != nil {
		return err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return &TargetError{Kind: ErrServer, Err: errors.New("webhdfs: CREATE: redirect without Location")}
	}
	_, err = t.do(ctx, http.MethodPut, loc, r, size, http.StatusCreated, nil)
	return err
}

// Rename renames src to dst (absolute HDFS paths); false when HDFS refused
// (dst exists or src is missing).
func (t *WebHDFSTarget) Rename(ctx context.Context, src, dst string) (bool, error) {
	var out struct {
		Boolean bool `json:"boolean"`
	}
	_, err := t.do(ctx, http.MethodPut, t.url(src, "RENAME", url.Values{"destination": {dst}}), nil, 0, http.StatusOK, &out)
	return out.Boolean, err
}

// Delete deletes a file (not recursively); false when it did not exist.
func (t *WebHDFSTarget) Delete(ctx context.Context, p string) (bool, error) {
	var out struct {
		Boolean bool `json:"boolean"`
	}
	_, err := t.do(ctx, http.MethodDelete, t.url(p, "DELETE", url.Values{"recursive": {"false"}}), nil, 0, http.StatusOK, &out)
	return out.Boolean, err
}

// Stat returns the status of an absolute path; a missing path gives an
// error wrapping ErrNotFound.
func (t *WebHDFSTarget) Stat(ctx context.Context, p string) (FileStatus, error) {
	var out struct {
		FileStatus FileStatus `json:"FileStatus"`
	}
	_, err := t.do(ctx, http.MethodGet, t.url(p, "GETFILESTATUS", nil), nil, 0, http.StatusOK, &out)
	if isNotFound(err) {
		return FileStatus{}, &TargetError{Kind: ErrRequest, Err: fmt.Errorf("webhdfs: %s: %w", p, ErrNotFound)}
	}
	return out.FileStatus, err
}

// List returns the entries of a directory (LISTSTATUS).
func (t *WebHDFSTarget) List(ctx context.Context, dir string) ([]FileStatus, error) {
	var out struct {
		FileStatuses struct {
			FileStatus []FileStatus `json:"FileStatus"`
		} `json:"FileStatuses"`
	}
	_, err := t.do(ctx, http.MethodGet, t.url(dir, "LISTSTATUS", nil), nil, 0, http.StatusOK, &out)
	return out.FileStatuses.FileStatus, err
}

// Open reads a file (OPEN, following the redirect to a datanode).
func (t *WebHDFSTarget) Open(ctx context.Context, p string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(p, "OPEN", nil), nil)
	if err != nil {
		return nil, err
	}
	c := *t.client
	c.CheckRedirect = nil
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpError(resp)
	}
	return io.ReadAll(resp.Body)
}
