package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

const uplinkUsage = `usage: edgectl uplink status [flags]
       edgectl uplink flush [--sink NAME] [--timeout 30s] [flags]

status  shows each uplink sink: spool depth and age, objects, rows and bytes
        uploaded, compression ratio, last success and last error.
flush   uploads everything spooled now (ignoring uplink.max_age) and waits
        until the target confirmed it, or --timeout (default 30s).
`

// uplinkStatus is the part of the node's uplink status (GET
// /api/v1/uplink/status, one per sink) that edgectl shows. edgectl talks
// HTTP only, so it decodes into its own struct.
type uplinkStatus struct {
	Target        string    `json:"target"`
	Format        string    `json:"format"`
	SpoolKnown    bool      `json:"spool_known"`
	SpoolDepth    uint64    `json:"spool_depth"`
	SpoolBytes    uint64    `json:"spool_bytes"`
	SpoolAgeNS    int64     `json:"spool_age_ns"`
	OverQuota     bool      `json:"over_quota"`
	Pending       string    `json:"pending"`
	Attempt       int       `json:"attempt"`
	LastSuccess   time.Time `json:"last_success"`
	LastKey       string    `json:"last_key"`
	LastError     string    `json:"last_error"`
	LastErrorKind string    `json:"last_error_kind"`
	LastErrorAt   time.Time `json:"last_error_at"`
	Failures      uint64    `json:"failures"`
	Objects       uint64    `json:"objects"`
	Rows          uint64    `json:"rows"`
	BytesUploaded uint64    `json:"bytes_uploaded"`
	Compression   float64   `json:"compression_ratio"`
	DroppedRows   uint64    `json:"dropped_rows"`
	DeadLetters   uint64    `json:"dead_letters"`
}

func cmdUplink(ctx context.Context, g *globals, args []string) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(g.stdout, uplinkUsage) // asked for: exit 0
		return 0
	}
	if len(args) == 0 {
		fmt.Fprint(g.stderr, uplinkUsage)
		return exitUsage
	}
	sub := args[0]
	if sub != "status" && sub != "flush" {
		fmt.Fprintf(g.stderr, "edgectl uplink: unknown subcommand %q (want status or flush)\n", sub)
		return exitUsage
	}
	fs := g.flagSet("uplink "+sub, uplinkUsage)
	var sink string
	var timeout time.Duration
	if sub == "flush" {
		fs.StringVar(&sink, "sink", "", "flush only this uplink `sink` (default: all)")
	}
	pos, code := g.parse(fs, args[1:])
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return g.fail(exitUsage, "unexpected arguments %q", pos)
	}
	// For flush, --timeout is how long the node waits for the uploads
	// (default 30s); edgectl waits 10 s longer for its answer.
	timeout = 30 * time.Second
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "timeout" {
			timeout = g.timeout
		}
	})
	ts, err := g.resolve(sub == "flush")
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	if sub == "status" {
		return uplinkStatusCmd(ctx, g, ts)
	}
	return uplinkFlushCmd(ctx, g, ts, sink, timeout)
}

func uplinkStatusCmd(ctx context.Context, g *globals, ts []target) int {
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (map[string]uplinkStatus, error) {
		var sts map[string]uplinkStatus
		return sts, c.getJSON(ctx, "/api/v1/uplink/status", &sts)
	})
	code := report(g, res)
	if g.output != "table" {
		out := map[string]map[string]uplinkStatus{}
		for _, r := range res {
			if r.err == nil {
				out[r.t.Name] = r.v
			}
		}
		if len(ts) == 1 && code == exitOK {
			emit(g.stdout, g.output, res[0].v)
		} else {
			emit(g.stdout, g.output, out)
		}
		return code
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	rows := 0
	now := time.Now()
	for _, r := range res {
		if r.err != nil {
			continue
		}
		names := make([]string, 0, len(r.v))
		for k := range r.v {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if rows == 0 {
				fmt.Fprintln(tw, "NODE\tSINK\tTARGET\tFORMAT\tSPOOLED\tOLDEST\tOBJECTS\tROWS\tUPLOADED\tRATIO\tDROPPED\tLAST SUCCESS\tLAST ERROR")
			}
			rows++
			s := r.v[k]
			spooled, oldest := "?", "-"
			if s.SpoolKnown {
				spooled = fmt.Sprintf("%d (%s)", s.SpoolDepth, humanBytes(s.SpoolBytes))
				if s.SpoolDepth > 0 {
					oldest = time.Duration(s.SpoolAgeNS).Round(time.Second).String()
				}
			}
			if s.OverQuota {
				spooled += " OVER QUOTA"
			}
			last := "never"
			if !s.LastSuccess.IsZero() {
				last = now.Sub(s.LastSuccess).Round(time.Second).String() + " ago"
			}
			lastErr := "-"
			if s.LastError != "" && s.LastErrorAt.After(s.LastSuccess) {
				lastErr = fmt.Sprintf("%s (%s ago, %d failures): %s", s.LastErrorKind,
					now.Sub(s.LastErrorAt).Round(time.Second), s.Failures, oneLine(s.LastError))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%.1fx\t%d\t%s\t%s\n", r.t.Name, k, s.Target, s.Format, spooled, oldest,
				s.Objects, s.Rows, humanBytes(s.BytesUploaded), s.Compression, s.DroppedRows, last, lastErr)
		}
	}
	if rows == 0 && code == exitOK {
		fmt.Fprintln(g.stdout, "no uplink sinks (no pipeline has a sink of type uplink)")
	}
	tw.Flush()
	return code
}

func uplinkFlushCmd(ctx context.Context, g *globals, ts []target, sink string, wait time.Duration) int {
	q := url.Values{"timeout": {wait.String()}}
	if sink != "" {
		q.Set("sink", sink)
	}
	// The node answers 504 after wait; the client waits a little longer.
	g.timeout = wait + 10*time.Second
	type flushed struct {
		Flushed []string `json:"flushed"`
	}
	prog := newProgress(g.stderr, "flush", len(ts))
	var mu sync.Mutex
	res := fanOut(ctx, g, ts, func(ctx context.Context, c *client) (flushed, error) {
		var f flushed
		body, _, err := c.do(ctx, "POST", "/api/v1/uplink/flush?"+q.Encode(), nil)
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if len(ts) > 1 {
			mu.Lock()
			prog.step(c.t.Name, err)
			mu.Unlock()
		}
		return f, err
	})
	code := report(g, res)
	if g.output != "table" {
		out := map[string][]string{}
		for _, r := range res {
			if r.err == nil {
				out[r.t.Name] = r.v.Flushed
			}
		}
		if len(ts) == 1 && code == exitOK {
			emit(g.stdout, g.output, res[0].v)
		} else {
			emit(g.stdout, g.output, out)
		}
		return code
	}
	for _, r := range res {
		if r.err != nil {
			continue
		}
		prefix := ""
		if len(ts) > 1 {
			prefix = r.t.Name + ": "
		}
		if len(r.v.Flushed) == 0 {
			fmt.Fprintf(g.stdout, "%snothing to flush (no uplink sinks)\n", prefix)
			continue
		}
		sort.Strings(r.v.Flushed)
		fmt.Fprintf(g.stdout, "%sflushed: %s\n", prefix, strings.Join(r.v.Flushed, ", "))
	}
	return code
}

func writeIndented(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
