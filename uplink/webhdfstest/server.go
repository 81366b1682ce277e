// Package webhdfstest is an in-process WebHDFS server for tests. It follows
// the WebHDFS REST API documentation (Hadoop 3, "WebHDFS REST API") for the
// operations edged uses: CREATE with the two-step redirect (the namenode
// answers 307 with a datanode Location, the datanode receives the data and
// answers 201), OPEN (redirected the same way), RENAME, DELETE,
// GETFILESTATUS, LISTSTATUS, MKDIRS, and SETXATTR / GETXATTRS (of files,
// values in the text, hex and base64 encodings), with errors as
// RemoteException JSON.
// It is not a Hadoop cluster: no blocks, permissions only through User and
// injected failures.
package webhdfstest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is an in-memory WebHDFS namenode and datanode on one httptest
// server (the datanode lives under /datanode).
type Server struct {
	*httptest.Server
	// User, when set, is the only user.name allowed (others get 403
	// AccessControlException).
	User string

	mu    sync.Mutex
	files map[string]*file
	dirs  map[string]bool
	ops   []string
	fail  []Failure
}

type file struct {
	data        []byte
	replication int
	mtime       int64
	xattrs      map[string][]byte
}

// Failure is an injected error answer for the next request(s) of Op.
type Failure struct {
	Op        string // "CREATE", "RENAME", ...; "" matches any
	Status    int
	Exception string
	Message   string
}

// New starts a server; Close it when done.
func New() *Server {
	s := &Server{files: map[string]*file{}, dirs: map[string]bool{"/": true}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Fail queues injected failures, consumed in order by matching requests.
func (s *Server) Fail(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, f...)
}

// Ops returns the operations served so far ("nn:CREATE", "dn:CREATE", ...).
func (s *Server) Ops() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ops...)
}

// Files returns a copy of every file's content by absolute path.
func (s *Server) Files() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for p, f := range s.files {
		out[p] = append([]byte(nil), f.data...)
	}
	return out
}

// Replication returns the replication a file was created with.
func (s *Server) Replication(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[p]; f != nil {
		return f.replication
	}
	return 0
}

func remote(w http.ResponseWriter, status int, exc, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	java := map[string]string{
		"FileNotFoundException":      "java.io.FileNotFoundException",
		"AccessControlException":     "org.apache.hadoop.security.AccessControlException",
		"FileAlreadyExistsException": "org.apache.hadoop.fs.FileAlreadyExistsException",
		"IllegalArgumentException":   "java.lang.IllegalArgumentException",
		"StandbyException":           "org.apache.hadoop.ipc.StandbyException",
	}[exc]
	json.NewEncoder(w).Encode(map[string]any{"RemoteException": map[string]string{
		"exception": exc, "javaClassName": java, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) mkdirs(p string) {
	for p != "/" && p != "." {
		s.dirs[p] = true
		p = path.Dir(p)
	}
}

func (s *Server) status(p string) (map[string]any, bool) {
	name := path.Base(p)
	if f := s.files[p]; f != nil {
		return map[string]any{"pathSuffix": name, "type": "FILE", "length": len(f.data),
			"replication": f.replication, "modificationTime": f.mtime, "permission": "644",
			"owner": "edged", "group": "supergroup", "blockSize": 134217728}, true
	}
	if s.dirs[p] {
		return map[string]any{"pathSuffix": name, "type": "DIRECTORY", "length": 0, "replication": 0,
			"modificationTime": 0, "permission": "755", "owner": "edged", "group": "supergroup"}, true
	}
	return nil, false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	role, p := "nn", r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/datanode"); ok {
		role, p = "dn", rest
	}
	p, ok := strings.CutPrefix(p, "/webhdfs/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if p == "" {
		p = "/"
	}
	p = path.Clean(p)
	q := r.URL.Query()
	op := strings.ToUpper(q.Get("op"))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, role+":"+op)
	for i, f := range s.fail {
		if f.Op == "" || f.Op == op {
			s.fail = append(s.fail[:i], s.fail[i+1:]...)
			remote(w, f.Status, f.Exception, f.Message)
			return
		}
	}
	if s.User != "" && q.Get("user.name") != s.User {
		remote(w, http.StatusForbidden, "AccessControlException",
			fmt.Sprintf("Permission denied: user=%s, access=WRITE, inode=%q", q.Get("user.name"), p))
		return
	}
	redirect := func() {
		u := *r.URL
		u.Path = "/datanode" + r.URL.Path
		q2 := u.Query()
		q2.Set("namenoderpcaddress", "localhost:8020")
		u.RawQuery = q2.Encode()
		w.Header().Set("Location", s.URL+u.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
	}
	switch {
	case r.Method == http.MethodPut && op == "CREATE" && role == "nn":
		if s.dirs[p] {
			remote(w, http.StatusForbidden, "FileAlreadyExistsException", p+" is a directory")
			return
		}
		if s.files[p] != nil && q.Get("overwrite") != "true" {
			remote(w, http.StatusForbidden, "FileAlreadyExistsException", p+" for client already exists")
			return
		}
		io.Copy(io.Discard, r.Body) // step one carries no data
		redirect()
	case r.Method == http.MethodPut && op == "CREATE" && role == "dn":
		data, err := io.ReadAll(r.Body)
		if err != nil {
			remote(w, http.StatusInternalServerError, "IOException", err.Error())
			return
		}
		repl, _ := strconv.Atoi(q.Get("replication"))
		if repl == 0 {
			repl = 3
		}
		s.mkdirs(path.Dir(p))
		s.files[p] = &file{data: data, replication: repl, mtime: time.Now().UnixMilli()}
		w.Header().Set("Location", "hdfs://localhost:8020"+p)
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodGet && op == "OPEN" && role == "nn":
		if s.files[p] == nil {
			remote(w, http.StatusNotFound, "FileNotFoundException", "File does not exist: "+p)
			return
		}
		redirect()
	case r.Method == http.MethodGet && op == "OPEN" && role == "dn":
		f := s.files[p]
		if f == nil {
			remote(w, http.StatusNotFound, "FileNotFoundException", "File does not exist: "+p)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(f.data)
	case r.Method == http.MethodPut && op == "RENAME":
		dst := path.Clean(q.Get("destination"))
		if !strings.HasPrefix(dst, "/") {
			remote(w, http.StatusBadRequest, "IllegalArgumentException", "Invalid value for webhdfs parameter \"destination\"")
			return
		}
		f := s.files[p]
		if f == nil || s.files[dst] != nil || s.dirs[dst] || !s.dirs[path.Dir(dst)] {
			writeJSON(w, map[string]bool{"boolean": false})
			return
		}
		delete(s.files, p)
		s.files[dst] = f
		writeJSON(w, map[string]bool{"boolean": true})
	case r.Method == http.MethodDelete && op == "DELETE":
		if s.files[p] != nil {
			delete(s.files, p)
			writeJSON(w, map[string]bool{"boolean": true})
			return
		}
		writeJSON(w, map[string]bool{"boolean": false})
	case r.Method == http.MethodPut && op == "MKDIRS":
		s.mkdirs(p)
		writeJSON(w, map[string]bool{"boolean": true})
	case r.Method == http.MethodGet && op == "GETFILESTATUS":
		st, ok := s.status(p)
		if !ok {
			remote(w, http.StatusNotFound, "FileNotFoundException", "File does not exist: "+p)
			return
		}
		st["pathSuffix"] = ""
		writeJSON(w, map[string]any{"FileStatus": st})
	case r.Method == http.MethodGet && op == "LISTSTATUS":
		if !s.dirs[p] {
			if st, ok := s.status(p); ok { // a file lists itself
				st["pathSuffix"] = ""
				writeJSON(w, map[string]any{"FileStatuses": map[string]any{"FileStatus": []any{st}}})
				return
			}
			remote(w, http.StatusNotFound, "FileNotFoundException", "File "+p+" does not exist.")
			return
		}
		var names []string
		for c := range s.files {
			if path.Dir(c) == p {
				names = append(names, c)
			}
		}
		for c := range s.dirs {
			if c != p && path.Dir(c) == p {
				names = append(names, c)
			}
		}
		sort.Strings(names)
		list := []any{}
		for _, c := range names {
			st, _ := s.status(c)
			list = append(list, st)
		}
		writeJSON(w, map[string]any{"FileStatuses": map[string]any{"FileStatus": list}})
	case r.Method == http.MethodPut && op == "SETXATTR":
		f := s.files[p]
		if f == nil {
			remote(w, http.StatusNotFound, "FileNotFoundException", "File does not exist: "+p)
			return
		}
		name := q.Get("xattr.name")
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") {
			remote(w, http.StatusForbidden, "HadoopIllegalArgumentException",
				"An XAttr name must be prefixed with user/trusted/security/system/raw, followed by a '.'")
			return
		}
		v, err := decodeXAttr(q.Get("xattr.value"))
		if err != nil {
			remote(w, http.StatusBadRequest, "IllegalArgumentException", err.Error())
			return
		}
		_, exists := f.xattrs[name]
		if flag := strings.ToUpper(q.Get("flag")); flag == "CREATE" && exists || flag == "REPLACE" && !exists {
			remote(w, http.StatusForbidden, "IOException", "XAttr: "+name+" flag "+flag+" refused")
			return
		}
		if f.xattrs == nil {
			f.xattrs = map[string][]byte{}
		}
		f.xattrs[name] = v
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && op == "GETXATTRS":
		f := s.files[p]
		if f == nil {
			remote(w, http.StatusNotFound, "FileNotFoundException", "File does not exist: "+p)
			return
		}
		var names []string
		for n := range f.xattrs {
			names = append(names, n)
		}
		sort.Strings(names)
		list := []any{}
		for _, n := range names {
			list = append(list, map[string]string{"name": n, "value": encodeXAttr(f.xattrs[n], q.Get("encoding"))})
		}
		writeJSON(w, map[string]any{"XAttrs": list})
	default:
		remote(w, http.StatusBadRequest, "IllegalArgumentException", "Invalid value for webhdfs parameter \"op\": No enum constant "+op)
	}
}

// decodeXAttr decodes an xattr value as WebHDFS does: "quoted" text,
// 0x hex, 0s base64, else the bytes as given.
func decodeXAttr(v string) ([]byte, error) {
	switch {
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		return []byte(v[1 : len(v)-1]), nil
	case strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X"):
		return hex.DecodeString(v[2:])
	case strings.HasPrefix(v, "0s") || strings.HasPrefix(v, "0S"):
		return base64.StdEncoding.DecodeString(v[2:])
	}
	return []byte(v), nil
}

// encodeXAttr encodes a value for GETXATTRS in encoding (hex, base64,
// else text: the value in double quotes).
func encodeXAttr(v []byte, encoding string) string {
	switch strings.ToLower(encoding) {
	case "hex":
		return "0x" + hex.EncodeToString(v)
	case "base64":
		return "0s" + base64.StdEncoding.EncodeToString(v)
	}
	return `"` + string(v) + `"`
}
