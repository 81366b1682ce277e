package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// localPipeline is one pipeline document read from the user's files.
type localPipeline struct {
	file    string
	raw     []byte
	name    string
	version string
}

// loadPipelineFiles reads FILE or every *.yaml / *.yml in DIR and checks
// what edgectl can check alone: the YAML parses, holds one document of kind
// Pipeline with a metadata.name. Every problem is returned, as FILE:LINE.
func loadPipelineFiles(paths []string) ([]localPipeline, error) {
	var files []string
	var errs []error
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, errors.Unwrap(err)))
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k := 0
		for _, e := range ents {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				files = append(files, filepath.Join(p, e.Name()))
				k++
			}
		}
		if k == 0 {
			errs = append(errs, fmt.Errorf("%s: no *.yaml or *.yml files", p))
		}
	}
	var out []localPipeline
	names := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lp, err := checkPipelineDoc(f, raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := names[lp.name]; ok {
			errs = append(errs, fmt.Errorf("%s: metadata.name: pipeline %q is also in %s", f, lp.name, prev))
			continue
		}
		names[lp.name] = f
		out = append(out, lp)
	}
	return out, errors.Join(errs...)
}

func checkPipelineDoc(file string, raw []byte) (localPipeline, error) {
	lp := localPipeline{file: file, raw: raw}
	var docs []yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			// yaml.v3 says "yaml: line 7: ...": make it FILE:7: ...
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if rest, ok := strings.CutPrefix(msg, "line "); ok {
				if num, tail, ok := strings.Cut(rest, ": "); ok {
					return lp, fmt.Errorf("%s:%s: %s", file, num, tail)
				}
			}
			return lp, fmt.Errorf("%s: %s", file, msg)
		}
		docs = append(docs, n)
	}
	if len(docs) == 0 {
		return lp, fmt.Errorf("%s: empty file", file)
	}
	if len(docs) > 1 {
		return lp, fmt.Errorf("%s:%d: one pipeline per file (a second document starts here)", file, docs[1].Line)
	}
	var head struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name    string `yaml:"name"`
			Version string `yaml:"version"`
		} `yaml:"metadata"`
	}
	root := &docs[0]
	if err := root.Decode(&head); err != nil {
		return lp, fmt.Errorf("%s:%d: %v", file, root.Line, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if head.Kind != "Pipeline" {
		return lp, fmt.Errorf("%s:%d: kind: want Pipeline, got %q", file, keyLine(root, "kind"), head.Kind)
	}
	if head.Metadata.Name == "" {
		return lp, fmt.Errorf("%s:%d: metadata.name: required", file, keyLine(root, "metadata"))
	}
	lp.name, lp.version = head.Metadata.Name, head.Metadata.Version
	return lp, nil
}

// keyLine returns the line of a top-level key (or of the document).
func keyLine(doc *yaml.Node, key string) int {
	m := doc
	if m.Kind == yaml.DocumentNode && len(m.Content) > 0 {
		m = m.Content[0]
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return m.Line
}

// validation is a node's answer to POST /api/v1/validate.
type validation struct {
	Valid     bool   `json:"valid"`
	Pipeline  string `json:"pipeline"`
	Exists    bool   `json:"exists"`
	Unchanged bool   `json:"unchanged"`
}

// invalidError lists the problems a node found in a pipeline file, each
// already FILE:LINE: ...
type invalidError struct{ lines []string }

func (e *invalidError) Error() string { return strings.Join(e.lines, "\n") }

// validateOn asks a node to check a document without applying it.
func validateOn(ctx context.Context, c *client, lp localPipeline) (validation, error) {
	var v validation
	body, status, err := c.do(ctx, "POST", "/api/v1/validate?file="+url.QueryEscape(lp.file), lp.raw)
	switch {
	case status == 404:
		return v, &nodeError{c.t.Name, "incompatible API: the node has no /api/v1/validate (an older edged)"}
	case status == 400:
		var e struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		json.Unmarshal(body, &e)
		lines := e.Errors
		if len(lines) == 0 {
			lines = strings.Split(e.Error, "\n")
		}
		return v, &invalidError{lines}
	case err != nil:
		return v, err
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, &nodeError{c.t.Name, "validate: answer is not JSON: is this an edged node?"}
	}
	if v.Pipeline != lp.name {
		return v, &invalidError{[]string{fmt.Sprintf("%s: metadata.name: the node reads %q, edgectl %q", lp.file, v.Pipeline, lp.name)}}
	}
	return v, nil
}

// applyOn PUTs a document on a node.
func applyOn(ctx context.Context, c *client, name string, raw []byte) (created bool, err error) {
	body, _, err := c.do(ctx, "PUT", "/api/v1/pipelines/"+url.PathEscape(name), raw)
	if err != nil {
		return false, err
	}
	var r struct {
		Created bool `json:"created"`
	}
	json.Unmarshal(body, &r)
	return r.Created, nil
}

// currentDoc GETs the document a node runs for name (nil when it runs none).
func currentDoc(ctx context.Context, c *client, name string) ([]byte, error) {
	body, status, err := c.do(ctx, "GET", "/api/v1/pipelines/"+url.PathEscape(name), nil)
	if status == 404 {
		return nil, nil
	}
	return body, err
}

// validateAll checks every file on every target; it prints every problem
// once (the same file line from several nodes is one problem) and returns
// the targets that answered and whether all files are valid.
func validateAll(ctx context.Context, g *globals, ts []target, lps []localPipeline) (map[string][]validation, []target, bool, int) {
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) ([]validation, error) {
		var out []validation
		var inv []string
		for _, lp := range lps {
			v, err := validateOn(ctx, c, lp)
			var ie *invalidError
			if errors.As(err, &ie) {
				inv = append(inv, ie.lines...)
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(inv) > 0 {
			return nil, &invalidError{inv}
		}
		return out, nil
	})
	seen := map[string]bool{}
	valid := true
	var ok []target
	byNode := map[string][]validation{}
	var failed []result[[]validation]
	for _, r := range res {
		var ie *invalidError
		switch {
		case errors.As(r.err, &ie):
			valid = false
			for _, l := range ie.lines {
				if !seen[l] {
					seen[l] = true
					fmt.Fprintf(g.stderr, "%s\n", l)
				}
			}
		case r.err != nil:
			failed = append(failed, r)
		default:
			ok = append(ok, r.t)
			byNode[r.t.Name] = r.v
		}
	}
	code := exitOK
	if len(failed) > 0 {
		report(g, failed)
		code = exitPartial
		if len(ok) == 0 {
			code = exitFailed
		}
	}
	return byNode, ok, valid, code
}

const applyUsage = `usage: edgectl apply -f FILE|DIR [-f ...] [node selection flags]

Checks each pipeline file locally (YAML, kind, metadata.name), then has every
targeted node validate it without applying it (POST /api/v1/validate; errors
are FILE:LINE: ...). Only when every file is valid on every node that answers
is anything applied. A node that runs the same document already is left
alone. Exit status: 0 applied everywhere, 2 a file is invalid, 3 some nodes
failed, 1 all failed.
`

// parseFileArgs parses the flags of a command that takes -f FILE|DIR
// (repeatable) and no arguments, and loads (and checks locally) the
// pipeline files. A code >= 0 means: stop with it.
func parseFileArgs(g *globals, name, usage string, args []string) ([]localPipeline, int) {
	fs := g.flagSet(name, usage)
	var files stringList
	fs.Var(&files, "f", "pipeline `file` or directory (repeatable)")
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return nil, code
	}
	if len(pos) > 0 || len(files) == 0 {
		return nil, g.fail(exitUsage, "want -f FILE|DIR and no arguments")
	}
	lps, err := loadPipelineFiles(files)
	if err != nil {
		fmt.Fprintln(g.stderr, err)
		return nil, exitUsage
	}
	return lps, -1
}

func cmdApply(ctx context.Context, g *globals, args []string) int {
	lps, code := parseFileArgs(g, "apply", applyUsage, args)
	if code >= 0 {
		return code
	}
	ts, err := g.resolve(true)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	vals, ok, valid, code := validateAll(ctx, g, ts, lps)
	if !valid {
		return exitUsage
	}
	type applied struct {
		Node     string `json:"node"`
		Pipeline string `json:"pipeline"`
		Result   string `json:"result"`
		Error    string `json:"error,omitempty"`
	}
	var mu sync.Mutex
	var out []applied
	prog := newProgress(g.stderr, "apply", len(ok)*len(lps))
	res := fanOut(ctx, g, ok, func(ctx context.Context, c *client) (struct{}, error) {
		var errs []error
		for i, lp := range lps {
			a := applied{Node: c.t.Name, Pipeline: lp.name}
			var err error
			if v := vals[c.t.Name]; i < len(v) && v[i].Unchanged {
				a.Result = "unchanged"
			} else {
				var created bool
				created, err = applyOn(ctx, c, lp.name, lp.raw)
				a.Result = map[bool]string{true: "created", false: "configured"}[created]
				if err != nil {
					a.Result, a.Error = "failed", err.Error()
					errs = append(errs, err)
				}
			}
			mu.Lock()
			out = append(out, a)
			prog.step(c.t.Name+" "+lp.name, err)
			mu.Unlock()
		}
		return struct{}{}, errors.Join(errs...)
	})
	// Nodes that did not answer the validation failed already (code);
	// those that failed now add to them.
	applyFailed := 0
	for _, r := range res {
		if r.err != nil {
			applyFailed++
		}
	}
	report(g, res)
	switch failed := len(ts) - len(ok) + applyFailed; {
	case failed == 0:
		code = exitOK
	case failed == len(ts):
		code = exitFailed
	default:
		code = exitPartial
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Pipeline < out[j].Pipeline
	})
	if g.output != "table" {
		emit(g.stdout, g.output, map[string]any{"applied": out, "partial": code != exitOK})
		return code
	}
	tw := newTable(g.stdout, "NODE", "PIPELINE", "RESULT")
	for _, a := range out {
		tw.row(a.Node, a.Pipeline, a.Result)
	}
	tw.flush()
	return code
}

const getUsage = `usage: edgectl get [PIPELINE] [-o table|json|yaml] [node selection flags]

Lists the pipelines of every targeted node. With PIPELINE and -o yaml, prints
the document the nodes run (once when they all run the same one).
`

func cmdGet(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("get", getUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 1 {
		return g.fail(exitUsage, "want at most one PIPELINE, got %q", pos)
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	if len(pos) == 1 && g.output == "yaml" {
		name := pos[0]
		res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) ([]byte, error) {
			doc, err := currentDoc(ctx, c, name)
			if err == nil && doc == nil {
				err = &nodeError{c.t.Name, fmt.Sprintf("no pipeline %q", name)}
			}
			return doc, err
		})
		code := report(g, res)
		docs := map[string][]string{}
		var order []string
		for _, r := range res {
			if r.err == nil {
				k := string(r.v)
				if docs[k] == nil {
					order = append(order, k)
				}
				docs[k] = append(docs[k], r.t.Name)
			}
		}
		for i, k := range order {
			if len(order) > 1 {
				if i > 0 {
					fmt.Fprintln(g.stdout, "---")
				}
				fmt.Fprintf(g.stdout, "# nodes: %s\n", strings.Join(docs[k], ", "))
			}
			fmt.Fprint(g.stdout, k)
		}
		return code
	}
	res := fanOut(ctx, g, ts, fetchInfo)
	code = report(g, res)
	type row struct {
		Node string `json:"node"`
		pipelineInfo
		Rates pipelineRates `json:"rates"`
	}
	var rows []row
	for _, r := range res {
		if r.err != nil {
			continue
		}
		for _, p := range r.v.Status.Pipelines {
			if len(pos) == 1 && p.Name != pos[0] {
				continue
			}
			rows = append(rows, row{r.t.Name, p, r.v.Rates[p.Name]})
		}
	}
	if len(pos) == 1 && len(rows) == 0 && code == exitOK {
		return g.fail(exitFailed, "no pipeline %q on any targeted node", pos[0])
	}
	if g.output != "table" {
		emit(g.stdout, g.output, map[string]any{"pipelines": rows, "partial": code != exitOK})
		return code
	}
	tw := newTable(g.stdout, "NODE", "PIPELINE", "VERSION", "EPOCH", "IN/S", "LAG", "BACKLOG", "STATE")
	for _, r := range rows {
		var backlog uint64
		for _, b := range r.Backlog {
			backlog += b
		}
		state := "running"
		if r.LastError != "" {
			state = "FAILING"
		}
		tw.row(trunc(r.Node, 14), r.Name, trunc(orDash(r.Version), 10), fmt.Sprint(r.Epoch), fmtRate(r.Rates.InPerSec),
			fmtAge(r.LagSeconds), fmt.Sprint(backlog), state)
	}
	tw.flush()
	return code
}

const describeUsage = `usage: edgectl describe PIPELINE [node selection flags]

Shows a pipeline on each targeted node: version, interval, epoch, watermark
lag, input backlog per source, rates, decode errors, dead letters, sources,
sinks and the last error.
`

func cmdDescribe(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("describe", describeUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		return g.fail(exitUsage, "want one PIPELINE")
	}
	name := pos[0]
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	type desc struct {
		Node        string        `json:"node"`
		Pipeline    pipelineInfo  `json:"pipeline"`
		Rates       pipelineRates `json:"rates"`
		DeadLetters uint64        `json:"deadLetters"`
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (desc, error) {
		info, err := fetchInfo(ctx, c)
		if err != nil {
			return desc{}, err
		}
		for _, p := range info.Status.Pipelines {
			if p.Name == name {
				d := desc{Node: c.t.Name, Pipeline: p, Rates: info.Rates[name]}
				var dl struct {
					Counts map[string]uint64 `json:"counts"`
				}
				if err := c.getJSON(ctx, "/api/v1/deadletters?limit=1&pipeline="+url.QueryEscape(name), &dl); err == nil {
					d.DeadLetters = dl.Counts[name]
				}
				return d, nil
			}
		}
		return desc{}, &nodeError{c.t.Name, fmt.Sprintf("no pipeline %q", name)}
	})
	code = report(g, res)
	var out []desc
	for _, r := range res {
		if r.err == nil {
			out = append(out, r.v)
		}
	}
	if g.output != "table" {
		emit(g.stdout, g.output, out)
		return code
	}
	for i, d := range out {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		p := d.Pipeline
		w := g.stdout
		fmt.Fprintf(w, "node:          %s\npipeline:      %s\nversion:       %s\ninterval:      %s\nepoch:         %d (lag %s)\n",
			d.Node, p.Name, orDash(p.Version), p.Interval, p.Epoch, fmtAge(p.LagSeconds))
		fmt.Fprintf(w, "rates:         in %s/s, out %s/s, late %s/s, invalid %s/s\n",
			fmtRate(d.Rates.InPerSec), fmtRate(d.Rates.OutPerSec), fmtRate(d.Rates.LatePerSec), fmtRate(d.Rates.InvalidPerSec))
		fmt.Fprintf(w, "sources:       %s\nsinks:         %s\n", strings.Join(p.Sources, ", "), strings.Join(p.Sinks, ", "))
		srcs := make([]string, 0, len(p.Backlog))
		for s, b := range p.Backlog {
			srcs = append(srcs, fmt.Sprintf("%s=%d", s, b))
		}
		sort.Strings(srcs)
		fmt.Fprintf(w, "backlog:       %s\n", orDash(strings.Join(srcs, ", ")))
		fmt.Fprintf(w, "decode errors: %d\ndead letters:  %d stored\n", p.DecodeError, d.DeadLetters)
		fmt.Fprintf(w, "last error:    %s\n", orDash(p.LastError))
	}
	return code
}

const deleteUsage = `usage: edgectl delete PIPELINE... [--ignore-not-found] [node selection flags]

Stops and removes pipelines on the targeted nodes.
`

func cmdDelete(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("delete", deleteUsage)
	ignore := fs.Bool("ignore-not-found", false, "a node without the pipeline is not an error")
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) == 0 {
		return g.fail(exitUsage, "want at least one PIPELINE")
	}
	ts, err := g.resolve(true)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) ([]string, error) {
		var done []string
		var errs []error
		for _, name := range pos {
			_, status, err := c.do(ctx, "DELETE", "/api/v1/pipelines/"+url.PathEscape(name), nil)
			switch {
			case status == 404 && *ignore:
			case status == 404:
				errs = append(errs, &nodeError{c.t.Name, fmt.Sprintf("no pipeline %q", name)})
			case err != nil:
				errs = append(errs, err)
			default:
				done = append(done, name)
			}
		}
		return done, errors.Join(errs...)
	})
	code = report(g, res)
	for _, r := range res {
		for _, name := range r.v {
			fmt.Fprintf(g.stdout, "%s: pipeline %s deleted\n", r.t.Name, name)
		}
	}
	return code
}

const diffUsage = `usage: edgectl diff -f FILE|DIR [node selection flags]

Shows, for each targeted node, how the pipelines it runs differ from the
files (unified diff; "new" when the node does not run it). Exit status: 0 no
differences, 1 differences, 3 some nodes failed.
`

func cmdDiff(ctx context.Context, g *globals, args []string) int {
	lps, code := parseFileArgs(g, "diff", diffUsage, args)
	if code >= 0 {
		return code
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) ([][]byte, error) {
		var out [][]byte
		for _, lp := range lps {
			doc, err := currentDoc(ctx, c, lp.name)
			if err != nil {
				return nil, err
			}
			out = append(out, doc)
		}
		return out, nil
	})
	code = report(g, res)
	differ := false
	for _, r := range res {
		if r.err != nil {
			continue
		}
		for i, lp := range lps {
			cur := r.v[i]
			switch {
			case cur == nil:
				differ = true
				fmt.Fprintf(g.stdout, "%s: %s: new pipeline (from %s)\n", r.t.Name, lp.name, lp.file)
			case string(cur) == string(lp.raw):
				fmt.Fprintf(g.stdout, "%s: %s: unchanged\n", r.t.Name, lp.name)
			default:
				differ = true
				fmt.Fprintf(g.stdout, "%s: %s: changed\n", r.t.Name, lp.name)
				fmt.Fprint(g.stdout, unifiedDiff(r.t.Name+"/"+lp.name+" (running)", lp.file, string(cur), string(lp.raw)))
			}
		}
	}
	if code == exitOK && differ {
		return exitFailed
	}
	return code
}
