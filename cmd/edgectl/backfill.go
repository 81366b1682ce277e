package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"
)

const backfillUsage = `usage: edgectl backfill start PIPELINE --from T1 --to T2 [-f NEW.yaml] [--partial] [--cpu 0.5] [flags]
       edgectl backfill list PIPELINE [flags]
       edgectl backfill cancel PIPELINE ID [flags]

start   runs PIPELINE (or the new version in -f) over the input each node's
        log retained for [T1, T2) (RFC 3339), beside the live pipeline: its
        outputs carry PIPELINE@ID. A period the log no longer holds is refused,
        naming the missing part, unless --partial.
list    the pipeline's backfills: state, period, progress, entries read.
cancel  stops a running backfill; what it committed is still delivered.
`

// backfillInfo is the node's answer for one backfill (node.BackfillInfo;
// edgectl speaks HTTP only, so it decodes into its own struct).
type backfillInfo struct {
	ID       string    `json:"id"`
	Pipeline string    `json:"pipeline"`
	Name     string    `json:"name"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Missing  []struct {
		Log  string    `json:"log"`
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	} `json:"missing,omitempty"`
	Progress float64 `json:"progress"`
	Entries  uint64  `json:"entries"`
}

func cmdBackfill(ctx context.Context, g *globals, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(g.stderr, backfillUsage)
		return exitUsage
	}
	sub := args[0]
	if sub != "start" && sub != "list" && sub != "cancel" {
		return g.fail(exitUsage, "unknown subcommand %q (want start, list or cancel)", sub)
	}
	fs := g.flagSet("backfill "+sub, backfillUsage)
	var from, to, file string
	var partial bool
	var cpu float64
	if sub == "start" {
		fs.StringVar(&from, "from", "", "start of the period, RFC 3339 `time`")
		fs.StringVar(&to, "to", "", "end of the period, RFC 3339 `time`")
		fs.StringVar(&file, "f", "", "a new version of the pipeline to run (`file`); default the running one")
		fs.BoolVar(&partial, "partial", false, "run on what the log holds when part of the period is gone")
		fs.Float64Var(&cpu, "cpu", 0, "share of one core the backfill may use (default the node's, 0.5)")
	}
	pos, code := g.parse(fs, args[1:])
	if code >= 0 {
		return code
	}
	want := map[string]int{"start": 1, "list": 1, "cancel": 2}[sub]
	if len(pos) != want {
		return g.fail(exitUsage, "want %d argument(s), got %q (see edgectl backfill -h)", want, pos)
	}
	p := url.PathEscape(pos[0])
	var body []byte
	method, path := "GET", "/api/v1/pipelines/"+p+"/backfill"
	switch sub {
	case "start":
		for _, f := range []struct{ name, v string }{{"from", from}, {"to", to}} {
			if _, err := time.Parse(time.RFC3339Nano, f.v); err != nil {
				return g.fail(exitUsage, "--%s: want an RFC 3339 time such as 2026-12-06T10:00:00Z, got %q", f.name, f.v)
			}
		}
		q := url.Values{"from": {from}, "to": {to}}
		if partial {
			q.Set("partial", "true")
		}
		if cpu != 0 {
			q.Set("cpu", strconv.FormatFloat(cpu, 'g', -1, 64))
		}
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return g.fail(exitUsage, "-f: %v", err)
			}
			body = b
		}
		method, path = "POST", path+"?"+q.Encode()
	case "cancel":
		method, path = "DELETE", path+"/"+url.PathEscape(pos[1])
	}
	ts, err := g.resolve(sub != "list")
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) ([]backfillInfo, error) {
		b, _, err := c.do(ctx, method, path, body)
		if err != nil {
			return nil, err
		}
		if sub == "list" {
			var l struct {
				Backfills []backfillInfo `json:"backfills"`
			}
			err = json.Unmarshal(b, &l)
			return l.Backfills, err
		}
		var one backfillInfo
		err = json.Unmarshal(b, &one)
		return []backfillInfo{one}, err
	})
	code = report(g, res)
	if g.output != "table" {
		out := map[string][]backfillInfo{}
		for _, r := range res {
			if r.err == nil {
				out[r.t.Name] = r.v
			}
		}
		emit(g.stdout, g.output, out)
		return code
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tSTATE\tFROM\tTO\tPROGRESS\tENTRIES\tNOTE")
	for _, r := range res {
		for _, b := range r.v {
			note := b.Error
			for _, m := range b.Missing {
				note += fmt.Sprintf("log %s missing %s to %s ", m.Log, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f%%\t%d\t%s\n", r.t.Name, b.ID, b.State,
				b.From.Format(time.RFC3339), b.To.Format(time.RFC3339), 100*b.Progress, b.Entries, note)
		}
	}
	tw.Flush()
	return code
}
