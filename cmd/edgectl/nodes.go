package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// nodeInfo is the part of GET /api/v1/info that edgectl uses (edgectl
// speaks HTTP only and decodes into its own types).
type nodeInfo struct {
	APIVersion    string                   `json:"apiVersion"`
	Version       string                   `json:"version"`
	Hostname      string                   `json:"hostname"`
	UptimeSeconds float64                  `json:"uptimeSeconds"`
	Mesh          bool                     `json:"mesh"`
	Partitions    int                      `json:"partitions"`
	RecordsPerSec float64                  `json:"recordsPerSec"`
	Rates         map[string]pipelineRates `json:"rates"`
	Totals        map[string]struct {
		In      uint64 `json:"in"`
		Invalid uint64 `json:"invalid"`
	} `json:"totals"`
	Status nodeStatus `json:"status"`
}

type pipelineRates struct {
	InPerSec      float64 `json:"inPerSec"`
	OutPerSec     float64 `json:"outPerSec"`
	LatePerSec    float64 `json:"latePerSec"`
	InvalidPerSec float64 `json:"invalidPerSec"`
	LagSeconds    float64 `json:"lagSeconds"`
	Backlog       uint64  `json:"backlog"`
}

type nodeStatus struct {
	Ready     bool           `json:"ready"`
	Pipelines []pipelineInfo `json:"pipelines"`
	Storage   struct {
		UsedBytes     int64  `json:"usedBytes"`
		QuotaBytes    int64  `json:"quotaBytes"`
		QuotaExceeded bool   `json:"quotaExceeded"`
		DeadLetters   uint64 `json:"deadLetters"`
	} `json:"storage"`
	Sinks []struct {
		Name      string `json:"name"`
		Depth     uint64 `json:"spoolDepth"`
		LastError string `json:"lastError"`
	} `json:"sinks"`
	Uplink     map[string]uplinkStatus `json:"uplink"`
	Conditions []string                `json:"conditions"`
	Mesh       *meshStatus             `json:"mesh"`
}

// meshStatus is the part of a node's mesh status that edgectl status shows.
type meshStatus struct {
	Name         string `json:"name"`
	Alone        bool   `json:"alone"`
	Incompatible string `json:"incompatible"`
	Members      []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Owns     int    `json:"owns"`
		Standby  int    `json:"standby"`
		Draining bool   `json:"draining"`
	} `json:"members"`
	Pipelines *struct {
		Digest    string `json:"digest"`
		Converged bool   `json:"converged"`
		Pipelines []struct {
			Name    string `json:"name"`
			Version uint64 `json:"version"`
			Node    string `json:"node"`
			Deleted bool   `json:"deleted"`
			Failed  string `json:"failed"`
		} `json:"pipelines"`
		Lost []struct {
			Pipeline string `json:"pipeline"`
			Lost     string `json:"lost"`
			Winner   string `json:"winner"`
		} `json:"lost"`
	} `json:"pipelines"`
}

type pipelineInfo struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Interval    string            `json:"interval"`
	Epoch       uint64            `json:"epoch"`
	LagSeconds  float64           `json:"epochLagSeconds"`
	Backlog     map[string]uint64 `json:"inputBacklog"`
	DecodeError uint64            `json:"decodeErrors"`
	DeadLetters uint64            `json:"operatorDeadLetters"`
	Sources     []string          `json:"sources"`
	Sinks       []string          `json:"sinks"`
	LastError   string            `json:"lastError"`
}

// fetchInfo reads a node's summary and checks that it speaks our API.
func fetchInfo(ctx context.Context, c *client) (nodeInfo, error) {
	var info nodeInfo
	body, status, err := c.do(ctx, "GET", "/api/v1/info", nil)
	if status == 404 {
		return info, &nodeError{c.t.Name, "incompatible API: the node has no /api/v1/info (an older edged); upgrade it to use edgectl " + apiVersion}
	}
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, &nodeError{c.t.Name, fmt.Sprintf("GET /api/v1/info: answer is not the expected JSON (%v): is this an edged node?", err)}
	}
	if info.APIVersion != apiVersion {
		return info, &nodeError{c.t.Name, fmt.Sprintf("incompatible API version %q (edgectl speaks %q)", info.APIVersion, apiVersion)}
	}
	return info, nil
}

// nodeRow is one node in `edgectl nodes` (and its -o json|yaml).
type nodeRow struct {
	Node          string  `json:"node"`
	Site          string  `json:"site,omitempty"`
	URL           string  `json:"url"`
	Error         string  `json:"error,omitempty"`
	Version       string  `json:"version,omitempty"`
	UptimeSeconds float64 `json:"uptimeSeconds,omitempty"`
	Pipelines     int     `json:"pipelines"`
	RecordsPerSec float64 `json:"recordsPerSec"`
	MaxLagSeconds float64 `json:"maxLagSeconds"`
	SpoolDepth    uint64  `json:"spoolDepth"`
	Uplink        string  `json:"uplink"`
	DiskUsedBytes int64   `json:"diskUsedBytes"`
	DiskQuota     int64   `json:"diskQuotaBytes"`
	Partitions    *int    `json:"partitions,omitempty"`
	Conditions    int     `json:"conditions"`
}

func rowOf(t target, info nodeInfo) nodeRow {
	r := nodeRow{Node: t.Name, Site: t.Site, URL: t.URL, Version: info.Version, UptimeSeconds: info.UptimeSeconds,
		Pipelines: len(info.Status.Pipelines), RecordsPerSec: info.RecordsPerSec,
		DiskUsedBytes: info.Status.Storage.UsedBytes, DiskQuota: info.Status.Storage.QuotaBytes,
		Conditions: len(info.Status.Conditions), Uplink: uplinkState(info.Status.Uplink)}
	for _, p := range info.Status.Pipelines {
		r.MaxLagSeconds = max(r.MaxLagSeconds, p.LagSeconds)
	}
	for _, s := range info.Status.Sinks {
		r.SpoolDepth += s.Depth
	}
	if info.Mesh {
		k := info.Partitions
		r.Partitions = &k
	}
	return r
}

// uplinkState sums up a node's uplink sinks in one word.
func uplinkState(up map[string]uplinkStatus) string {
	if len(up) == 0 {
		return "none"
	}
	state := "ok"
	for _, s := range up {
		if s.LastError != "" && s.LastErrorAt.After(s.LastSuccess) {
			return "failing"
		}
		if s.OverQuota {
			state = "full"
		}
	}
	return state
}

func diskCell(used, quota int64) string {
	if quota <= 0 {
		return humanBytes(uint64(max(used, 0)))
	}
	return fmt.Sprintf("%d%%", used*100/quota)
}

// writeNodes prints the nodes table, 80 columns wide for typical values.
func writeNodes(w io.Writer, rows []nodeRow) {
	tw := newTable(w, "NODE", "VERSION", "UP", "PIPE", "REC/S", "LAG", "SPOOL", "UPLINK", "DISK", "PART")
	for _, r := range rows {
		if r.Error != "" {
			tw.row(trunc(r.Node, 16), "-", "-", "-", "-", "-", "-", "-", "-", "-")
			continue
		}
		parts := "-"
		if r.Partitions != nil {
			parts = fmt.Sprint(*r.Partitions)
		}
		name := r.Node
		if r.Conditions > 0 {
			name += " (!)"
		}
		tw.row(trunc(name, 16), trunc(r.Version, 9), fmtAge(r.UptimeSeconds), fmt.Sprint(r.Pipelines),
			fmtRate(r.RecordsPerSec), fmtAge(r.MaxLagSeconds), fmt.Sprint(r.SpoolDepth), r.Uplink,
			diskCell(r.DiskUsedBytes, r.DiskQuota), parts)
	}
	tw.flush()
}

const nodesUsage = `usage: edgectl nodes [--context C] [--site S | --node N... | --all] [-o FORMAT]

Asks every targeted node at once (each under --timeout) for its version,
uptime, pipelines, records/s, worst epoch lag, spooled outputs, uplink state,
disk budget used and partitions held. A node marked (!) reports conditions
(edgectl status NODE shows them). A node that fails is named on stderr and
the exit status is 3 (partial) or 1 (all failed).
`

func cmdNodes(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("nodes", nodesUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return g.fail(exitUsage, "unexpected arguments %q (select nodes with --node)", pos)
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	rows, code := collectNodes(ctx, g, ts)
	if g.output != "table" {
		emit(g.stdout, g.output, map[string]any{"nodes": rows, "partial": code != exitOK})
		return code
	}
	writeNodes(g.stdout, rows)
	return code
}

func collectNodes(ctx context.Context, g *globals, ts []target) ([]nodeRow, int) {
	res := fanOut(ctx, g, ts, fetchInfo)
	code := report(g, res)
	rows := make([]nodeRow, 0, len(res))
	for _, r := range res {
		if r.err != nil {
			rows = append(rows, nodeRow{Node: r.t.Name, Site: r.t.Site, URL: r.t.URL, Error: r.err.Error()})
			continue
		}
		rows = append(rows, rowOf(r.t, r.v))
	}
	return rows, code
}

const statusUsage = `usage: edgectl status [NODE] [flags]

Shows one node in detail: version, uptime, every pipeline with its rates and
lag, sinks, uplink, disk budget, and the conditions it reports.
`

func cmdStatus(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("status", statusUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 1 {
		return g.fail(exitUsage, "want at most one NODE, got %q", pos)
	}
	if len(pos) == 1 {
		g.nodes = stringList{pos[0]}
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, fetchInfo)
	code = report(g, res)
	if g.output != "table" {
		var out []map[string]any
		for _, r := range res {
			if r.err == nil {
				out = append(out, map[string]any{"node": r.t.Name, "info": r.v})
			}
		}
		emit(g.stdout, g.output, out)
		return code
	}
	for i, r := range res {
		if r.err != nil {
			continue
		}
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		writeStatus(g.stdout, r.t, r.v)
	}
	return code
}

func writeStatus(w io.Writer, t target, info nodeInfo) {
	st := info.Status
	fmt.Fprintf(w, "node:         %s (%s)\n", t.Name, t.URL)
	fmt.Fprintf(w, "host:         %s, edged %s, up %s\n", info.Hostname, info.Version, fmtAge(info.UptimeSeconds))
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "state:        %s, %s records/s\n", ready, fmtRate(info.RecordsPerSec))
	disk := humanBytes(uint64(max(st.Storage.UsedBytes, 0))) + " used, no quota"
	if st.Storage.QuotaBytes > 0 {
		disk = fmt.Sprintf("%s of %s (%s)", humanBytes(uint64(st.Storage.UsedBytes)), humanBytes(uint64(st.Storage.QuotaBytes)),
			diskCell(st.Storage.UsedBytes, st.Storage.QuotaBytes))
		if st.Storage.QuotaExceeded {
			disk += " QUOTA REACHED: input back-pressured"
		}
	}
	fmt.Fprintf(w, "disk:         %s\n", disk)
	fmt.Fprintf(w, "dead letters: %d stored\n", st.Storage.DeadLetters)
	if info.Mesh {
		fmt.Fprintf(w, "partitions:   %d held\n", info.Partitions)
	} else {
		fmt.Fprintf(w, "partitions:   no mesh on this node (it holds every partition)\n")
	}
	writeMesh(w, st.Mesh)
	fmt.Fprintln(w)
	tw := newTable(w, "PIPELINE", "VERSION", "EPOCH", "IN/S", "LATE/S", "INVALID/S", "LAG", "BACKLOG", "STATE")
	for _, p := range st.Pipelines {
		r := info.Rates[p.Name]
		state := "running"
		if p.LastError != "" {
			state = "FAILING"
		}
		var backlog uint64
		for _, b := range p.Backlog {
			backlog += b
		}
		tw.row(p.Name, orDash(p.Version), fmt.Sprint(p.Epoch), fmtRate(r.InPerSec), fmtRate(r.LatePerSec),
			fmtRate(r.InvalidPerSec), fmtAge(p.LagSeconds), fmt.Sprint(backlog), state)
	}
	tw.flush()
	if len(st.Sinks) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w, "SINK", "SPOOLED", "LAST ERROR")
		for _, s := range st.Sinks {
			tw.row(s.Name, fmt.Sprint(s.Depth), orDash(oneLine(s.LastError)))
		}
		tw.flush()
	}
	if len(st.Uplink) > 0 {
		fmt.Fprintln(w)
		names := make([]string, 0, len(st.Uplink))
		for k := range st.Uplink {
			names = append(names, k)
		}
		sort.Strings(names)
		tw = newTable(w, "UPLINK", "TARGET", "SPOOLED", "OBJECTS", "STATE")
		for _, k := range names {
			u := st.Uplink[k]
			tw.row(k, u.Target, fmt.Sprint(u.SpoolDepth), fmt.Sprint(u.Objects), uplinkState(map[string]uplinkStatus{k: u}))
		}
		tw.flush()
	}
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "\nconditions:")
		for _, c := range st.Conditions {
			fmt.Fprintf(w, "  - %s\n", c)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const topUsage = `usage: edgectl top [--interval 2s] [--iterations N] [node selection flags]

Refreshes the nodes table and every node's pipelines in the terminal until
interrupted (or for N refreshes).
`

func cmdTop(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("top", topUsage)
	interval := fs.Duration("interval", 2*time.Second, "refresh `interval`")
	iterations := fs.Int("iterations", 0, "stop after N refreshes (0: until interrupted)")
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 || *interval <= 0 {
		return g.fail(exitUsage, "want no arguments and a positive --interval")
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	clear := isTerminal(g.stdout)
	for i := 0; *iterations == 0 || i < *iterations; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return code
			case <-time.After(*interval):
			}
		}
		res := fanOut(ctx, g, ts, fetchInfo)
		var b strings.Builder
		if clear {
			b.WriteString("\x1b[H\x1b[2J")
		}
		fmt.Fprintf(&b, "edgectl top — %d nodes — %s\n\n", len(ts), time.Now().Format("15:04:05"))
		rows := make([]nodeRow, 0, len(res))
		for _, r := range res {
			if r.err != nil {
				rows = append(rows, nodeRow{Node: r.t.Name, Error: r.err.Error()})
			} else {
				rows = append(rows, rowOf(r.t, r.v))
			}
		}
		writeNodes(&b, rows)
		b.WriteString("\n")
		tw := newTable(&b, "NODE", "PIPELINE", "IN/S", "OUT/S", "LATE/S", "INVALID/S", "LAG", "BACKLOG")
		for _, r := range res {
			if r.err != nil {
				continue
			}
			for _, p := range r.v.Status.Pipelines {
				rt := r.v.Rates[p.Name]
				tw.row(trunc(r.t.Name, 18), p.Name, fmtRate(rt.InPerSec), fmtRate(rt.OutPerSec), fmtRate(rt.LatePerSec),
					fmtRate(rt.InvalidPerSec), fmtAge(p.LagSeconds), fmt.Sprint(rt.Backlog))
			}
		}
		tw.flush()
		for _, r := range res {
			if r.err != nil {
				fmt.Fprintf(&b, "! %s\n", oneLine(r.err.Error()))
			}
		}
		io.WriteString(g.stdout, b.String())
		code = exitOK
		for _, r := range res {
			if r.err != nil {
				code = exitPartial
			}
		}
	}
	return code
}

// writeMesh adds the mesh lines of edgectl status: the members as this node
// sees them and whether the site agrees on its pipeline set (a version that
// lost a conflict, or that does not validate on this node, is named).
func writeMesh(w io.Writer, m *meshStatus) {
	if m == nil {
		return
	}
	var members []string
	for _, mb := range m.Members {
		d := fmt.Sprintf("%s (%d owned, %d standby", mb.Name, mb.Owns, mb.Standby)
		if mb.State != "" && mb.State != "alive" {
			d += ", " + mb.State
		}
		if mb.Draining {
			d += ", draining"
		}
		members = append(members, d+")")
	}
	line := fmt.Sprintf("%d members: %s", len(m.Members), strings.Join(members, ", "))
	switch {
	case m.Incompatible != "":
		line = "REFUSED by the site, emits nothing: " + oneLine(m.Incompatible)
	case m.Alone:
		line += "; no seed of mesh.join answered: processing alone, still trying"
	}
	fmt.Fprintf(w, "mesh:         %s\n", line)
	p := m.Pipelines
	if p == nil {
		return
	}
	state := "converged"
	if !p.Converged {
		state = "NOT converged (members hold other versions)"
	}
	fmt.Fprintf(w, "pipeline set: %d pipelines, digest %s, %s\n", len(p.Pipelines), orDash(p.Digest), state)
	for _, v := range p.Pipelines {
		if v.Failed != "" {
			fmt.Fprintf(w, "              %s version %d (by %s) NOT RUN here: %s\n", v.Name, v.Version, v.Node, oneLine(v.Failed))
		}
	}
	for _, l := range p.Lost {
		fmt.Fprintf(w, "              %s: conflict: %s lost to %s\n", l.Pipeline, l.Lost, l.Winner)
	}
}
