package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const queryUsage = `usage: edgectl query PIPELINE --step NAME [--where EXPR] [--limit N] [flags]
       edgectl query --table NAME [--key VALUE]... [--from TIME] [--to TIME] [--limit N] [flags]

Reads the live state of a step (open windows, per-key aggregates) on every
targeted node, each from a consistent snapshot between two epochs, and
merges the rows into one table with a NODE column, sorted by the step's
columns. --where is a filter in the pipeline expression language, evaluated
on each node (e.g. --where 'avg_temp > 30').

With --table, reads the rows of a history table (a pipeline's history step
writes it) from one snapshot on each node: those of one key (one --key per
key column, in order; none for every key) with a time in [--from, --to]
(RFC 3339, e.g. 2026-03-01T12:00:00Z; open ends when left out).
`

// queryAnswer is the node's /api/v1/query answer.
type queryAnswer struct {
	Epoch     uint64            `json:"epoch"`
	Columns   []string          `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
	Truncated bool              `json:"truncated"`
}

func cmdQuery(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("query", queryUsage)
	step := fs.String("step", "", "the `step` whose state to read (required)")
	where := fs.String("where", "", "filter `expression`")
	limit := fs.Int("limit", 1000, "rows per node at most")
	table := fs.String("table", "", "read the history `table` instead of a step's state")
	var keys repeated
	fs.Var(&keys, "key", "with --table: the `value` of a key column (repeat, one per column, in order)")
	from := fs.String("from", "", "with --table: the first row `time` (RFC 3339)")
	to := fs.String("to", "", "with --table: the last row `time` (RFC 3339)")
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	var path string
	if *table != "" {
		if len(pos) > 0 || *step != "" || *where != "" {
			return g.fail(exitUsage, "--table reads a history table: no PIPELINE, --step or --where")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}, "key": keys}
		for k, v := range map[string]string{"from": *from, "to": *to} {
			if v == "" {
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return g.fail(exitUsage, "--%s: %q is not an RFC 3339 time (e.g. 2026-03-01T12:00:00Z)", k, v)
			}
			q.Set(k, v)
		}
		path = "/api/v1/tables/" + url.PathEscape(*table) + "?" + q.Encode()
	} else if len(pos) != 1 {
		return g.fail(exitUsage, "want one PIPELINE (or --table NAME)")
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	if path == "" {
		if *step == "" {
			return g.fail(exitUsage, "--step: required; %s", stepHint(ctx, g, ts[0], pos[0]))
		}
		q := url.Values{"pipeline": {pos[0]}, "step": {*step}, "limit": {strconv.Itoa(*limit)}}
		if *where != "" {
			q.Set("filter", *where)
		}
		path = "/api/v1/query?" + q.Encode()
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (queryAnswer, error) {
		var a queryAnswer
		return a, c.getJSON(ctx, path, &a)
	})
	code = report(g, res)
	var cols []string
	type row struct {
		node  string
		epoch uint64
		vals  map[string]any
	}
	var rows []row
	for _, r := range res {
		if r.err != nil {
			continue
		}
		if cols == nil {
			cols = r.v.Columns
		}
		if r.v.Truncated {
			fmt.Fprintf(g.stderr, "edgectl query: node %s: more than %d rows; raise --limit or narrow --where\n", r.t.Name, *limit)
		}
		for _, raw := range r.v.Rows {
			m := map[string]any{}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			dec.Decode(&m)
			rows = append(rows, row{r.t.Name, r.v.Epoch, m})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		for _, c := range cols {
			a, b := cell(rows[i].vals[c]), cell(rows[j].vals[c])
			if a != b {
				return lessCell(a, b)
			}
		}
		return rows[i].node < rows[j].node
	})
	if g.output != "table" {
		out := make([]map[string]any, 0, len(rows))
		for _, r := range rows {
			m := map[string]any{"_node": r.node, "_epoch": r.epoch}
			for k, v := range r.vals {
				m[k] = v
			}
			out = append(out, m)
		}
		emit(g.stdout, g.output, map[string]any{"columns": cols, "rows": out, "partial": code != exitOK})
		return code
	}
	if len(rows) == 0 {
		if code != exitFailed {
			fmt.Fprintln(g.stdout, "no rows")
		}
		return code
	}
	hdr := []string{"NODE"}
	for _, c := range cols {
		hdr = append(hdr, strings.ToUpper(c))
	}
	tw := newTable(g.stdout, hdr...)
	for _, r := range rows {
		line := []string{r.node}
		for _, c := range cols {
			line = append(line, cell(r.vals[c]))
		}
		tw.row(line...)
	}
	tw.flush()
	return code
}

// repeated is a repeatable flag whose values are taken whole (a key may
// hold commas).
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// cell formats a JSON value for a table cell; numbers get at most 3 decimals.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		f, _ := x.Float64()
		s := strconv.FormatFloat(f, 'f', 3, 64)
		return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// lessCell orders numbers numerically and the rest as text.
func lessCell(a, b string) bool {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		return fa < fb
	}
	return a < b
}

const deadlettersUsage = `usage: edgectl deadletters list [--pipeline P] [--step S] [--limit N] [flags]
       edgectl deadletters replay [--pipeline P] [--id N...] [--limit N] [flags]

list shows dead letters (payloads that did not decode, records steps
rejected) with their reason; replay feeds them back into their source's input
log (those of one pipeline with --pipeline, or the given --id) and removes
them.
`

func cmdDeadLetters(ctx context.Context, g *globals, args []string) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(g.stderr, deadlettersUsage)
		return exitUsage
	}
	sub := args[0]
	fs := g.flagSet("deadletters "+sub, deadlettersUsage)
	pipeline := fs.String("pipeline", "", "only this `pipeline`")
	step := fs.String("step", "", "only this `step`")
	limit := fs.Int("limit", 100, "dead letters per node at most")
	var ids stringList
	if sub == "replay" {
		fs.Var(&ids, "id", "replay only this dead-letter `id` (repeatable)")
	}
	pos, code := g.parse(fs, args[1:])
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return g.fail(exitUsage, "unexpected arguments %q", pos)
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *pipeline != "" {
		q.Set("pipeline", *pipeline)
	}
	if *step != "" {
		q.Set("step", *step)
	}
	ts, err := g.resolve(sub == "replay")
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	if sub == "replay" {
		var body struct {
			IDs []uint64 `json:"ids"`
		}
		for _, s := range ids {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return g.fail(exitUsage, "--id: %q is not a dead-letter id", s)
			}
			body.IDs = append(body.IDs, v)
		}
		b, _ := json.Marshal(body)
		type replayed struct {
			Replayed int      `json:"replayed"`
			Skipped  int      `json:"skipped"`
			Reasons  []string `json:"skippedReasons"`
		}
		res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (replayed, error) {
			var r replayed
			out, _, err := c.do(ctx, "POST", "/api/v1/deadletters/replay?"+q.Encode(), b)
			if err == nil {
				err = json.Unmarshal(out, &r)
			}
			return r, err
		})
		code = report(g, res)
		for _, r := range res {
			if r.err == nil {
				fmt.Fprintf(g.stdout, "%s: %d replayed, %d skipped", r.t.Name, r.v.Replayed, r.v.Skipped)
				if len(r.v.Reasons) > 0 {
					fmt.Fprintf(g.stdout, " (%s)", strings.Join(r.v.Reasons, "; "))
				}
				fmt.Fprintln(g.stdout)
			}
		}
		return code
	}
	type dl struct {
		ID            uint64 `json:"id"`
		Pipeline      string `json:"pipeline"`
		Source        string `json:"source"`
		Step          string `json:"step"`
		Reason        string `json:"reason"`
		Time          string `json:"time"`
		Payload       string `json:"payload"`
		PayloadBase64 string `json:"payloadBase64"`
	}
	type answer struct {
		DeadLetters []dl              `json:"deadLetters"`
		Counts      map[string]uint64 `json:"counts"`
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (answer, error) {
		var a answer
		return a, c.getJSON(ctx, "/api/v1/deadletters?"+q.Encode(), &a)
	})
	code = report(g, res)
	if g.output != "table" {
		var out []map[string]any
		for _, r := range res {
			if r.err == nil {
				out = append(out, map[string]any{"node": r.t.Name, "deadLetters": r.v.DeadLetters, "counts": r.v.Counts})
			}
		}
		emit(g.stdout, g.output, out)
		return code
	}
	// 80 columns: the payload is in -o json|yaml; the node column only
	// when several nodes answer.
	many := len(ts) > 1
	hdr := []string{"ID", "TIME", "PIPELINE", "FROM", "REASON"}
	if many {
		hdr = append([]string{"NODE"}, hdr...)
	}
	tw := newTable(g.stdout, hdr...)
	n := 0
	for _, r := range res {
		for _, d := range r.v.DeadLetters {
			n++
			from := d.Source
			if from == "" {
				from = d.Step
			}
			tm := d.Time
			if len(tm) >= 19 {
				tm = tm[11:19]
			}
			row := []string{fmt.Sprint(d.ID), tm, trunc(d.Pipeline, 12), trunc(orDash(from), 10), trunc(oneLine(d.Reason), 38)}
			if many {
				row = append([]string{trunc(r.t.Name, 10)}, row...)
			}
			tw.row(row...)
		}
	}
	if n == 0 {
		if code != exitFailed {
			fmt.Fprintln(g.stdout, "no dead letters")
		}
		return code
	}
	tw.flush()
	return code
}

// errNoMesh is a node's answer when it is not part of a mesh (the
// partition and drain endpoints do not exist there).
var errNoMesh = errors.New("no mesh on this node")

// printPartitions prints a node's holding table (GET /api/v1/partitions of
// a mesh member): JSON with -o json|yaml, else one row per partition.
func printPartitions(g *globals, node string, body json.RawMessage) {
	var p struct {
		Partitions []struct {
			Pipeline  string   `json:"pipeline"`
			Partition int      `json:"partition"`
			Owner     string   `json:"owner"`
			Standbys  []string `json:"standbys"`
			Term      uint64   `json:"term"`
		} `json:"partitions"`
	}
	if g.output != "table" && g.output != "" || json.Unmarshal(body, &p) != nil {
		var buf bytes.Buffer
		json.Indent(&buf, body, "", "  ")
		fmt.Fprintf(g.stdout, "%s:\n%s\n", node, buf.String())
		return
	}
	fmt.Fprintf(g.stdout, "%s:\n", node)
	tw := newTable(g.stdout, "PIPELINE", "PARTITION", "OWNER", "STANDBYS", "TERM")
	for _, h := range p.Partitions {
		tw.row(h.Pipeline, strconv.Itoa(h.Partition), h.Owner, strings.Join(h.Standbys, ","), strconv.FormatUint(h.Term, 10))
	}
	tw.flush()
}

const partitionsUsage = `usage: edgectl partitions [node selection flags]

Shows which node holds which partition of each pipeline (with the mesh).
`

// cmdPartitions asks the nodes for their partition table; a node without a
// mesh says so.
func cmdPartitions(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("partitions", partitionsUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return g.fail(exitUsage, "unexpected arguments %q", pos)
	}
	ts, err := g.resolve(false)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (json.RawMessage, error) {
		body, status, err := c.do(ctx, "GET", "/api/v1/partitions", nil)
		if status == 404 || status == 501 {
			return nil, errNoMesh
		}
		if err == nil {
			var p struct {
				Mesh bool `json:"mesh"`
			}
			if json.Unmarshal(body, &p) == nil && !p.Mesh {
				return nil, errNoMesh
			}
		}
		return body, err
	})
	var failed []result[json.RawMessage]
	for _, r := range res {
		switch {
		case r.err == errNoMesh:
			fmt.Fprintf(g.stdout, "%s: no mesh on this node: it holds every partition of its pipelines\n", r.t.Name)
		case r.err != nil:
			failed = append(failed, r)
		default:
			printPartitions(g, r.t.Name, r.v)
		}
	}
	if len(failed) == 0 {
		return exitOK
	}
	report(g, failed)
	if len(failed) == len(res) {
		return exitFailed
	}
	return exitPartial
}

const drainUsage = `usage: edgectl drain NODE [flags]

Hands a node's partitions to its peers before maintenance (with the mesh).
`

func cmdDrain(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("drain", drainUsage)
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		return g.fail(exitUsage, "want one NODE")
	}
	g.nodes = stringList{pos[0]}
	ts, err := g.resolve(true)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (json.RawMessage, error) {
		body, status, err := c.do(ctx, "POST", "/api/v1/drain", nil)
		if status == 404 || status == 405 || status == 501 {
			return nil, errNoMesh
		}
		return body, err
	})
	r := res[0]
	switch {
	case r.err == errNoMesh:
		return g.fail(exitFailed, "node %s: no mesh on this node: there is no peer to hand its partitions to", r.t.Name)
	case r.err != nil:
		return report(g, res)
	}
	fmt.Fprintf(g.stdout, "%s: drained\n", r.t.Name)
	return exitOK
}

// stepHint names the steps of a pipeline as the first node runs it.
func stepHint(ctx context.Context, g *globals, t target, name string) string {
	c, err := g.client(t)
	if err != nil {
		return "see edgectl get " + name + " -o yaml"
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	doc, err := currentDoc(ctx, c, name)
	if err != nil || doc == nil {
		return fmt.Sprintf("and node %s runs no pipeline %q", t.Name, name)
	}
	var spec struct {
		Spec struct {
			Steps []struct {
				Name string `yaml:"name"`
			} `yaml:"steps"`
		} `yaml:"spec"`
	}
	yaml.Unmarshal(doc, &spec)
	var names []string
	for _, s := range spec.Spec.Steps {
		names = append(names, s.Name)
	}
	return fmt.Sprintf("the steps of %s: %s", name, strings.Join(names, ", "))
}
