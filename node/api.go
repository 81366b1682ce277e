package node

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/uplink"
)

// maxSpecBytes bounds a pipeline document sent to the API.
const maxSpecBytes = 1 << 20

// startAPI listens and serves the API in the background; a serve error is
// sent to done.
func (n *Node) startAPI(done chan<- error) (*http.Server, error) {
	l := n.listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", n.cfg.API.Listen); err != nil {
			return nil, fmt.Errorf("api.listen: %w", err)
		}
	}
	n.apiAddr.Store(l.Addr().String())
	go n.runHistory(n.runCtx) // the dashboard's rates (fleet.go)
	srv := &http.Server{Handler: guardLoopback(l.Addr(), n.Handler()), ErrorLog: nil}
	hardenServer(srv)
	go func() {
		var err error
		if n.cfg.API.TLSCert != "" {
			err = srv.ServeTLS(l, n.cfg.API.TLSCert, n.cfg.API.TLSKey)
		} else {
			err = srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			done <- err
		}
	}()
	n.log.Info("api listening", "addr", l.Addr().String(), "tls", n.cfg.API.TLSCert != "")
	return srv, nil
}

// Handler returns the node's HTTP API. /healthz and /readyz need no token;
// everything else needs "Authorization: Bearer TOKEN" when api.token is set
// (which Validate demands unless api.listen is loopback).
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.Ready() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		// Every configured listener and subscription must be up: the
		// embedded broker listening, or the source connected to a broker.
		if n.mq != nil {
			if st := n.MQTTStatus(); st.State != "listening" && st.State != "connected" {
				http.Error(w, "not ready: mqtt "+st.State+"\n", http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	})
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if tok := n.cfg.API.Token; tok != "" {
				got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
					w.Header().Set("WWW-Authenticate", `Bearer realm="edged"`)
					writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token (header Authorization: Bearer TOKEN)"))
					return
				}
			}
			if n.db == nil {
				writeErr(w, http.StatusServiceUnavailable, ErrNotReady)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /metrics", auth(n.handleMetrics))
	mux.HandleFunc("GET /api/v1/status", auth(n.handleStatus))
	mux.HandleFunc("GET /api/v1/partitions", auth(n.handlePartitions))
	mux.HandleFunc("POST /api/v1/drain", auth(n.handleDrain))
	mux.HandleFunc("GET /api/v1/mesh/snapshot/{pipeline}/{partition}", auth(n.handleSnapshot))
	mux.HandleFunc("GET /api/v1/pipelines", auth(n.handleList))
	mux.HandleFunc("GET /api/v1/pipelines/{name}", auth(n.handleGet))
	mux.HandleFunc("PUT /api/v1/pipelines/{name}", auth(n.handleApply))
	mux.HandleFunc("DELETE /api/v1/pipelines/{name}", auth(n.handleDelete))
	mux.HandleFunc("POST /api/v1/reload", auth(n.handleReload))
	mux.HandleFunc("POST /api/v1/pipelines/{name}/backfill", auth(n.handleBackfill))
	mux.HandleFunc("GET /api/v1/pipelines/{name}/backfill", auth(n.handleBackfills))
	mux.HandleFunc("GET /api/v1/pipelines/{name}/backfill/{id}", auth(n.handleBackfillGet))
	mux.HandleFunc("DELETE /api/v1/pipelines/{name}/backfill/{id}", auth(n.handleBackfillGet))
	mux.HandleFunc("GET /api/v1/query", auth(n.handleQuery))
	mux.HandleFunc("GET /api/v1/tables", auth(n.handleTables))
	mux.HandleFunc("GET /api/v1/tables/{name}", auth(n.handleTableRows))
	mux.HandleFunc("GET /api/v1/deadletters", auth(n.handleDeadLetters))
	mux.HandleFunc("POST /api/v1/deadletters/replay", auth(n.handleReplay))
	mux.HandleFunc("POST /api/v1/ingest/{pipeline}/{source}", auth(n.handlePush))
	n.fleetRoutes(mux, auth) // info, history, validate, dashboard (fleet.go)
	// The mesh's pipeline set (meshpipelines.go).
	n.meshPipelineRoutes(mux, auth)
	if n.cfg.API.Pprof {
		mux.HandleFunc("GET /debug/pprof/", auth(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/cmdline", auth(pprof.Cmdline))
		mux.HandleFunc("GET /debug/pprof/profile", auth(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", auth(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", auth(pprof.Trace))
	}
	// GET /api/v1/uplink/status, POST /api/v1/uplink/flush?sink=&timeout=
	// (see uplink.Handler), over the uploaders running now.
	mux.HandleFunc("/api/v1/uplink/", auth(func(w http.ResponseWriter, r *http.Request) {
		http.StripPrefix("/api/v1/uplink", uplink.Handler(n.uploaderMap())).ServeHTTP(w, r)
	}))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every error response: the message, and each
// problem on its own when there are several.
type apiError struct {
	Error  string   `json:"error"`
	Errors []string `json:"errors,omitempty"`
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error(), Errors: splitErrors(err)})
}

// splitErrors flattens errors.Join trees into their messages.
func splitErrors(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		out = append(out, e.Error())
	}
	walk(err)
	if len(out) < 2 {
		return nil
	}
	return out
}

// PipelineInfo is one pipeline in the list and status responses.
type PipelineInfo struct {
	Name        string            `json:"name"`
	File        string            `json:"file"`
	Version     string            `json:"version,omitempty"`
	Interval    string            `json:"interval"`
	Epoch       uint64            `json:"epoch"`
	EpochTime   int64             `json:"epochTimeMs"`
	Watermark   *int64            `json:"watermarkMs,omitempty"`
	LagSeconds  float64           `json:"epochLagSeconds"`
	Backlog     map[string]uint64 `json:"inputBacklog"`
	DecodeError uint64            `json:"decodeErrors"`
	DeadLetters uint64            `json:"operatorDeadLetters"`
	Sources     []string          `json:"sources"`
	Sinks       []string          `json:"sinks"`
	LastError   string            `json:"lastError,omitempty"`
	// Partitions is how many partitions the pipeline is split into;
	// PartitionsHeld how many of them this node runs.
	Partitions     int `json:"partitions"`
	PartitionsHeld int `json:"partitionsHeld"`
}

func (n *Node) pipeInfo(p *pipe) PipelineInfo {
	st := p.r.Status() // never waits for a running epoch
	pi := PipelineInfo{Name: p.name, File: p.file, Version: p.spec.Metadata.Version,
		Interval: p.c.Interval.String(), Epoch: st.Epoch, EpochTime: st.LastTime,
		Backlog: map[string]uint64{}, DecodeError: st.DecodeErrors, DeadLetters: st.OperatorRejects,
		Sources: p.c.Plan.Sources(), Sinks: p.c.Plan.Sinks(), LastError: st.LastError,
		Partitions: st.Partitions, PartitionsHeld: len(st.Held)}
	if wm := st.Watermark; wm != engine.NoWatermark {
		pi.Watermark = &wm
	}
	if st.LastTime > 0 {
		pi.LagSeconds = float64(n.clock.Now().UnixMilli()-st.LastTime) / 1000
	}
	for _, s := range p.sources {
		pi.Backlog[s.name] = st.Backlog[s.log]
	}
	return pi
}

func (n *Node) sortedPipes() []*pipe {
	n.mu.RLock()
	out := make([]*pipe, 0, len(n.pipes))
	for _, p := range n.pipes {
		out = append(out, p)
	}
	n.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	out := []PipelineInfo{}
	for _, p := range n.sortedPipes() {
		out = append(out, n.pipeInfo(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": out})
}

func (n *Node) pipeByName(name string) *pipe {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.pipes[name]
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	p := n.pipeByName(r.PathValue("name"))
	if p == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no pipeline %q", r.PathValue("name")))
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(p.yaml)
}

func (n *Node) handleApply(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	if len(raw) > maxSpecBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body: pipeline document larger than %d bytes", maxSpecBytes))
		return
	}
	created, err := n.Apply(name, raw)
	var ae *ApplyError
	switch {
	case errors.As(err, &ae):
		writeErr(w, http.StatusBadRequest, ae.Err)
		return
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, map[string]any{"pipeline": name, "created": created})
}

func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ok, err := n.Delete(name)
	switch {
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
	case !ok:
		writeErr(w, http.StatusNotFound, fmt.Errorf("no pipeline %q", name))
	default:
		writeJSON(w, http.StatusOK, map[string]any{"pipeline": name, "deleted": true})
	}
}

func (n *Node) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := n.Reload(); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
}

// ApplyError is a pipeline document that does not parse, validate or
// compile; nothing was changed.
type ApplyError struct{ Err error }

func (e *ApplyError) Error() string { return e.Err.Error() }
func (e *ApplyError) Unwrap() error { return e.Err }

// Apply validates and compiles a pipeline document, then starts it (or
// replaces the running pipeline of that name at its epoch boundary, its
// state restored from the last checkpoint) and writes it into the pipelines
// directory. Nothing changes when the document is invalid (*ApplyError
// listing every problem). It reports whether the pipeline is new.
func (n *Node) Apply(name string, raw []byte) (created bool, err error) {
	if !n.Ready() {
		return false, ErrNotReady
	}
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	return n.applyLocked(name, raw)
}

// applyLocked is Apply; the caller holds swapMu.
func (n *Node) applyLocked(name string, raw []byte) (created bool, err error) {
	file := filepath.Join(n.cfg.pipelinesDir(), name+".yaml")
	old := n.pipeByName(name)
	if old != nil && old.file != "" {
		file = old.file
	}
	// Problems of the applied body name the document the user sent
	// (NAME.yaml and its lines), not the file it becomes on the node.
	bad := func(err error) error { return &ApplyError{Err: renameFile(err, file, name+".yaml")} }
	if err := checkEnrichFiles(n.cfg, file, raw); err != nil {
		return false, bad(err)
	}
	c, err := compile(file, raw)
	if err != nil {
		return false, bad(err)
	}
	if c.Plan.Name() != name {
		return false, bad(fmt.Errorf("%s: metadata.name: %q does not match the pipeline %q in the URL", file, c.Plan.Name(), name))
	}
	if err := CheckPipeline(n.cfg, c); err != nil {
		return false, bad(fmt.Errorf("%s: %w", file, err))
	}
	if err := n.checkCustoms(c.Spec); err != nil {
		return false, bad(fmt.Errorf("%s: pipeline %q: %w", file, name, err))
	}
	if err := n.checkTables(c); err != nil {
		return false, bad(err)
	}
	if err := n.start(c, raw, file); err != nil {
		return false, err
	}
	if err := writeFileAtomic(file, raw); err != nil {
		return old == nil, fmt.Errorf("pipeline %q runs but was not saved: %w", name, err)
	}
	n.log.Info("pipeline applied", "pipeline", name, "file", file)
	n.pipelineChanged(name, raw) // spread through the mesh (meshpipelines.go)
	return old == nil, nil
}

// renameFile rewrites the file name in err's messages, keeping a joined
// error's list of problems.
func renameFile(err error, from, to string) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, renameFile(e, from, to))
		}
		return errors.Join(out...)
	}
	if w := errors.Unwrap(err); w != nil && strings.HasSuffix(err.Error(), w.Error()) {
		if _, joined := w.(interface{ Unwrap() []error }); joined {
			prefix := strings.ReplaceAll(strings.TrimSuffix(err.Error(), w.Error()), from, to)
			inner := renameFile(w, from, to).(interface{ Unwrap() []error }).Unwrap()
			for i := range inner {
				inner[i] = errors.New(prefix + inner[i].Error())
			}
			return errors.Join(inner...)
		}
	}
	return errors.New(strings.ReplaceAll(err.Error(), from, to))
}

// Delete stops a pipeline and removes its file. Its sinks deliver what it
// spooled first; then its state, checkpoints and input positions are freed
// (applying it again before that resumes from them).
func (n *Node) Delete(name string) (bool, error) {
	if !n.Ready() {
		return false, ErrNotReady
	}
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	return n.deleteLocked(name)
}

// deleteLocked is Delete; the caller holds swapMu.
func (n *Node) deleteLocked(name string) (bool, error) {
	p := n.pipeByName(name)
	if p == nil {
		return false, nil
	}
	n.remove(name)
	if p.file != "" {
		if err := os.Remove(p.file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return true, err
		}
	}
	n.log.Info("pipeline deleted", "pipeline", name)
	n.pipelineChanged(name, nil) // spread through the mesh (meshpipelines.go)
	return true, nil
}

// Reload re-reads the pipelines directory: changed pipelines are swapped at
// their epoch boundary, new ones started, missing ones stopped. If any file
// is invalid nothing changes and every problem is returned.
func (n *Node) Reload() error {
	if !n.Ready() {
		return ErrNotReady
	}
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	lds, err := LoadPipelines(n.cfg.pipelinesDir())
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	var errs []error
	for _, ld := range lds {
		name := ld.c.Plan.Name()
		keep[name] = true
		if p := n.pipeByName(name); p != nil && string(p.yaml) == string(ld.raw) {
			continue
		}
		if err := n.start(ld.c, ld.raw, ld.file); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range n.sortedPipes() {
		if !keep[p.name] {
			n.remove(p.name)
		}
	}
	n.log.Info("pipelines reloaded", "pipelines", len(lds))
	n.reconcilePipelines() // spread the changes through the mesh (meshpipelines.go)
	return errors.Join(errs...)
}

func writeFileAtomic(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// queryLimit is the default and maximum number of rows a query returns.
const (
	queryLimit    = 1000
	queryMaxLimit = 100000
)

func (n *Node) handleQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, step, filter := q.Get("pipeline"), q.Get("step"), q.Get("filter")
	switch {
	case name == "":
		writeErr(w, http.StatusBadRequest, errors.New("parameter pipeline: required"))
		return
	case step == "":
		writeErr(w, http.StatusBadRequest, errors.New("parameter step: required"))
		return
	}
	limit, err := intParam(q.Get("limit"), queryLimit)
	if err != nil || limit <= 0 || limit > queryMaxLimit {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("parameter limit: want 1..%d, got %q", queryMaxLimit, q.Get("limit")))
		return
	}
	p := n.pipeByName(name)
	if p == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("parameter pipeline: no pipeline %q", name))
		return
	}
	res, err := p.query(step, filter, limit)
	if err != nil {
		code := http.StatusBadRequest
		var se *stepError
		if errors.As(err, &se) && errors.Is(err, engine.ErrUnknownField) {
			code = http.StatusNotFound
		}
		writeErr(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// QueryResult is the answer of /api/v1/query: the rows of a step's live
// state after epoch Epoch, read between epochs.
type QueryResult struct {
	Pipeline  string            `json:"pipeline"`
	Step      string            `json:"step"`
	Epoch     uint64            `json:"epoch"`
	Columns   []string          `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
	Truncated bool              `json:"truncated,omitempty"`
}

// query reads the rows of a step's state under the pipe's lock, so the answer
// is the state after one whole epoch.
func (p *pipe) query(step, filter string, limit int) (*QueryResult, error) {
	res := &QueryResult{Pipeline: p.name, Step: step, Columns: []string{}, Rows: []json.RawMessage{}}
	var expr *engine.Expr
	var ferr error
	var buf []byte
	epoch, err := p.r.Query(step, func(s *engine.Schema, r *engine.Record) bool {
		if len(res.Columns) == 0 {
			for _, f := range s.Fields() {
				res.Columns = append(res.Columns, f.Name)
			}
			if filter != "" {
				if expr, ferr = engine.CompileExpr(filter, s); ferr != nil {
					return false
				}
			}
		}
		if expr != nil && !expr.EvalBool(r) {
			return true
		}
		if len(res.Rows) >= limit {
			res.Truncated = true
			return false
		}
		buf = appendRFC3339(decode.AppendJSON(buf[:0], s, r), s, r)
		res.Rows = append(res.Rows, json.RawMessage(append([]byte(nil), buf...)))
		return true
	})
	if err != nil {
		return nil, &stepError{err}
	}
	if ferr != nil {
		return nil, fmt.Errorf("parameter filter: %w", ferr)
	}
	res.Epoch = epoch
	return res, nil
}

// appendRFC3339 adds to the JSON object row (ending in '}') a twin of every
// time column in RFC 3339 (UTC, milliseconds): "window_start" (epoch ms) gets
// "window_start_rfc3339".
func appendRFC3339(row []byte, s *engine.Schema, r *engine.Record) []byte {
	if len(row) < 2 || row[len(row)-1] != '}' {
		return row
	}
	for i := range s.Len() {
		f := s.Field(i)
		if f.Kind != engine.KindTime || r.Vals[i].Kind != engine.KindTime {
			continue
		}
		row = row[:len(row)-1]
		if row[len(row)-1] != '{' {
			row = append(row, ',')
		}
		row = strconv.AppendQuote(row, f.Name+"_rfc3339")
		row = append(row, ':', '"')
		row = time.UnixMilli(r.Vals[i].Millis()).UTC().AppendFormat(row, "2006-01-02T15:04:05.000Z07:00")
		row = append(row, '"', '}')
	}
	return row
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

// DeadLetterJSON is one dead letter in API responses. Payload holds the
// payload when it is valid UTF-8, PayloadBase64 otherwise.
type DeadLetterJSON struct {
	ID            uint64 `json:"id"`
	Pipeline      string `json:"pipeline"`
	Source        string `json:"source,omitempty"`
	Step          string `json:"step,omitempty"`
	Reason        string `json:"reason"`
	Time          string `json:"time"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payloadBase64,omitempty"`
}

func dlJSON(d storage.DeadLetter) DeadLetterJSON {
	j := DeadLetterJSON{ID: d.ID, Pipeline: d.Pipeline, Source: d.Source, Step: d.Step,
		Reason: d.Reason, Time: d.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	if utf8.Valid(d.Payload) {
		j.Payload = string(d.Payload)
	} else {
		j.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	return j
}

func (n *Node) dlFilter(r *http.Request) (storage.DeadLetterFilter, int, error) {
	q := r.URL.Query()
	f := storage.DeadLetterFilter{Pipeline: q.Get("pipeline"), Step: q.Get("step")}
	if a := q.Get("after"); a != "" {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return f, 0, fmt.Errorf("parameter after: %q is not a dead-letter id", a)
		}
		f.AfterID = v
	}
	limit, err := intParam(q.Get("limit"), 100)
	if err != nil || limit <= 0 || limit > queryMaxLimit {
		return f, 0, fmt.Errorf("parameter limit: want 1..%d, got %q", queryMaxLimit, q.Get("limit"))
	}
	return f, limit, nil
}

func (n *Node) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	f, limit, err := n.dlFilter(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	dls, err := n.db.ListDeadLetters(f, limit)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]DeadLetterJSON, 0, len(dls))
	for _, d := range dls {
		out = append(out, dlJSON(d))
	}
	counts, _ := n.db.DeadLetterCounts()
	writeJSON(w, http.StatusOK, map[string]any{"deadLetters": out, "counts": counts})
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Replayed int      `json:"replayed"`
	Skipped  int      `json:"skipped"`
	Reasons  []string `json:"skippedReasons,omitempty"`
}

func (n *Node) handleReplay(w http.ResponseWriter, r *http.Request) {
	f, limit, err := n.dlFilter(r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	var body struct {
		IDs []uint64 `json:"ids"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, maxSpecBytes)).Decode(&body); err != nil && err != io.EOF {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("body: want {\"ids\": [...]}: %w", err))
			return
		}
	}
	res, err := n.ReplayDeadLetters(r.Context(), f, limit, body.IDs)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// stepError is a query error about the step parameter.
type stepError struct{ err error }

func (e *stepError) Error() string { return "parameter step: " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }
