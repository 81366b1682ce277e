package node

import (
	"context"
	"fmt"
	"github.com/edgedio/edged/pipeline"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/edgedio/edged/internal/version"
)

// APIVersion is the version of the node API that /api/v1/info reports.
// edgectl refuses nodes that report another one.
const APIVersion = "v1"

// processStart is when this process started: the node's uptime counts from it.
var processStart = time.Now()

// The dashboard history: one sample every histInterval, the last histKeep
// of them (five minutes).
const (
	histInterval = 2 * time.Second
	histKeep     = 150
)

// NodeInfo is the /api/v1/info document: what edgectl nodes and the
// dashboard show about one node, in one request.
type NodeInfo struct {
	APIVersion    string    `json:"apiVersion"`
	Version       string    `json:"version"`
	Hostname      string    `json:"hostname"`
	StartedAt     time.Time `json:"startedAt"`
	UptimeSeconds float64   `json:"uptimeSeconds"`
	// Mesh is false until the node is part of a mesh; Partitions is then
	// the number of partitions it holds.
	Mesh       bool `json:"mesh"`
	Partitions int  `json:"partitions"`
	// RecordsPerSec is the sum of the pipelines' input rates over the last
	// samples (records entering each pipeline's first step).
	RecordsPerSec float64 `json:"recordsPerSec"`
	// Rates are per pipeline, over the last samples (absent until two
	// samples exist).
	Rates map[string]PipelineRates `json:"rates"`
	// Totals are per pipeline, counted since the running version of the
	// pipeline started (an apply starts them again), after its last epoch.
	Totals map[string]PipelineTotals `json:"totals"`
	Status Status                    `json:"status"`
}

// PipelineTotals are a pipeline's counters since its running version started.
type PipelineTotals struct {
	In      uint64 `json:"in"`      // records entering its first step
	Out     uint64 `json:"out"`     // records its steps emitted
	Late    uint64 `json:"late"`    // records dropped as late
	Invalid uint64 `json:"invalid"` // decode errors and records steps rejected
}

// PipelineRates are a pipeline's rates between two samples.
type PipelineRates struct {
	InPerSec      float64 `json:"inPerSec"`
	OutPerSec     float64 `json:"outPerSec"`
	LatePerSec    float64 `json:"latePerSec"`
	InvalidPerSec float64 `json:"invalidPerSec"` // decode errors and records steps rejected
	LagSeconds    float64 `json:"lagSeconds"`
	Backlog       uint64  `json:"backlog"`
}

// HistoryPoint is one point of /api/v1/history.
type HistoryPoint struct {
	TimeMs           int64                    `json:"t"`
	Pipelines        map[string]PipelineRates `json:"pipelines"`
	SpoolDepth       uint64                   `json:"spoolDepth"`
	StorageUsedBytes int64                    `json:"storageUsedBytes"`
	DeadLetters      uint64                   `json:"deadLetters"`
}

// pipeCounters are a pipeline's cumulative counters at one sample.
type pipeCounters struct {
	in, out, late, invalid uint64
	lag                    float64
	backlog                uint64
}

type histSample struct {
	t     time.Time
	pipes map[string]pipeCounters
	point HistoryPoint // rates against the previous sample
}

// dashState is the node's short history of rates, sampled every
// histInterval while the API runs (and on demand when only Handler is
// used). It is safe for concurrent use.
type dashState struct {
	mu      sync.Mutex
	samples []histSample // oldest first, at most histKeep
}

// runHistory samples every histInterval until ctx ends.
func (n *Node) runHistory(ctx context.Context) {
	t := time.NewTicker(histInterval)
	defer t.Stop()
	n.sampleHistory(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.sampleHistory(now)
		}
	}
}

// sampleIfDue takes a sample unless the last one is recent.
func (n *Node) sampleIfDue() {
	now := time.Now()
	n.dash.mu.Lock()
	due := len(n.dash.samples) == 0 || now.Sub(n.dash.samples[len(n.dash.samples)-1].t) >= histInterval
	n.dash.mu.Unlock()
	if due {
		n.sampleHistory(now)
	}
}

// sampleHistory records the counters of every pipeline and the node's
// storage figures at now.
func (n *Node) sampleHistory(now time.Time) {
	s := histSample{t: now, pipes: map[string]pipeCounters{},
		point: HistoryPoint{TimeMs: now.UnixMilli(), Pipelines: map[string]PipelineRates{}}}
	s.pipes = n.pipeCounters()
	if n.db != nil {
		if ds, err := n.db.Stats(); err == nil {
			for _, sp := range ds.Spool {
				s.point.SpoolDepth += sp.Depth
			}
			s.point.StorageUsedBytes = ds.UsedBytes
			s.point.DeadLetters = ds.DeadLetters
		}
	}
	n.dash.mu.Lock()
	defer n.dash.mu.Unlock()
	if k := len(n.dash.samples); k > 0 {
		prev := n.dash.samples[k-1]
		dt := now.Sub(prev.t).Seconds()
		if dt < histInterval.Seconds()/2 { // a request raced the ticker: keep rates smooth
			return
		}
		for name, c := range s.pipes {
			pc, ok := prev.pipes[name]
			if !ok || c.in < pc.in { // new or restarted pipeline: no rate yet
				pc = c
			}
			s.point.Pipelines[name] = PipelineRates{
				InPerSec: rate(c.in, pc.in, dt), OutPerSec: rate(c.out, pc.out, dt),
				LatePerSec: rate(c.late, pc.late, dt), InvalidPerSec: rate(c.invalid, pc.invalid, dt),
				LagSeconds: c.lag, Backlog: c.backlog}
		}
	}
	n.dash.samples = append(n.dash.samples, s)
	if len(n.dash.samples) > histKeep {
		n.dash.samples = append(n.dash.samples[:0], n.dash.samples[len(n.dash.samples)-histKeep:]...)
	}
}

// pipeCounters returns every pipeline's counters after its last epoch.
func (n *Node) pipeCounters() map[string]pipeCounters {
	out := map[string]pipeCounters{}
	ms := n.clock.Now().UnixMilli()
	for _, p := range n.sortedPipes() {
		st := p.r.Status() // never waits for a running epoch
		var c pipeCounters
		for i, s := range st.Steps {
			if i == 0 {
				c.in = s.In
			}
			c.out += s.Out
			c.late += s.Late
			c.invalid += s.Invalid
		}
		c.invalid += st.DecodeErrors
		if st.LastTime > 0 {
			c.lag = float64(ms-st.LastTime) / 1000
		}
		for _, b := range st.Backlog {
			c.backlog += b
		}
		out[p.name] = c
	}
	return out
}

func rate(now, before uint64, dt float64) float64 {
	if now < before {
		return 0
	}
	return float64(now-before) / dt
}

// history returns the points with rates (every sample but the first).
func (n *Node) history() []HistoryPoint {
	n.dash.mu.Lock()
	defer n.dash.mu.Unlock()
	out := make([]HistoryPoint, 0, len(n.dash.samples))
	for i, s := range n.dash.samples {
		if i > 0 {
			out = append(out, s.point)
		}
	}
	return out
}

// Info returns the /api/v1/info document.
func (n *Node) Info() (NodeInfo, error) {
	n.sampleIfDue()
	host, _ := os.Hostname()
	now := time.Now()
	info := NodeInfo{APIVersion: APIVersion, Version: version.Version, Hostname: host,
		StartedAt: processStart.UTC(), UptimeSeconds: now.Sub(processStart).Seconds(),
		Rates: map[string]PipelineRates{}, Totals: map[string]PipelineTotals{}}
	for name, c := range n.pipeCounters() {
		info.Totals[name] = PipelineTotals{In: c.in, Out: c.out, Late: c.late, Invalid: c.invalid}
	}
	if h := n.history(); len(h) > 0 {
		last := h[len(h)-1]
		for name, r := range last.Pipelines {
			info.Rates[name] = r
			info.RecordsPerSec += r.InPerSec
		}
	}
	st, err := n.Status()
	info.Status = st
	return info, err
}

// fleetRoutes registers the routes edgectl and the dashboard use beyond the
// core API: the node summary, its rate history, the dry-run validation and
// the dashboard page (whose data calls carry the API's token).
func (n *Node) fleetRoutes(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("GET /api/v1/info", auth(n.handleInfo))
	mux.HandleFunc("GET /api/v1/history", auth(n.handleHistory))
	mux.HandleFunc("POST /api/v1/validate", auth(n.handleValidate))
	dashboardRoutes(mux)
}

func (n *Node) handleInfo(w http.ResponseWriter, r *http.Request) {
	info, err := n.Info()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (n *Node) handleHistory(w http.ResponseWriter, r *http.Request) {
	n.sampleIfDue()
	writeJSON(w, http.StatusOK, map[string]any{"intervalSeconds": histInterval.Seconds(), "points": n.history()})
}

// ValidateResult is the answer of POST /api/v1/validate for a valid
// document.
type ValidateResult struct {
	Valid    bool     `json:"valid"`
	Pipeline string   `json:"pipeline"`
	Version  string   `json:"version,omitempty"`
	Sources  []string `json:"sources"`
	Sinks    []string `json:"sinks"`
	// Exists says whether the node runs a pipeline of that name, and
	// Unchanged whether it runs exactly this document.
	Exists    bool `json:"exists"`
	Unchanged bool `json:"unchanged"`
}

// handleValidate is POST /api/v1/validate?file=NAME: a dry run of apply. It
// parses, validates and compiles the pipeline document in the body exactly
// as PUT /api/v1/pipelines/NAME would, changes nothing, and answers 200 with
// a ValidateResult, or 400 listing every problem, each as FILE:LINE: ... with
// FILE the file parameter (the caller's file name; default "pipeline.yaml").
func (n *Node) handleValidate(w http.ResponseWriter, r *http.Request) {
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "pipeline.yaml"
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	if len(raw) > maxSpecBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%s: larger than %d bytes", file, maxSpecBytes))
		return
	}
	if len(raw) == 0 {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%s: empty document", file))
		return
	}
	err = checkEnrichFiles(n.cfg, file, raw)
	var c *pipeline.Compiled
	if err == nil {
		c, err = compile(file, raw)
	}
	if err == nil {
		if cerr := CheckPipeline(n.cfg, c); cerr != nil {
			err = fmt.Errorf("%s: %w", file, cerr)
		}
	}
	if err == nil {
		err = n.checkTables(c)
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	res := ValidateResult{Valid: true, Pipeline: c.Plan.Name(), Version: c.Spec.Metadata.Version,
		Sources: c.Plan.Sources(), Sinks: c.Plan.Sinks()}
	if p := n.pipeByName(res.Pipeline); p != nil {
		res.Exists = true
		res.Unchanged = string(p.yaml) == string(raw)
	}
	writeJSON(w, http.StatusOK, res)
}
