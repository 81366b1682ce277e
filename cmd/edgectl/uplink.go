package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const uplinkUsage = `usage: edgectl uplink status [flags]
       edgectl uplink flush [--sink NAME] [--timeout 30s] [flags]

status  shows each uplink sink: spool depth and age, objects, rows and bytes
        uploaded, compression ratio, last success and last error.
flush   uploads everything spooled now (ignoring uplink.max_age) and waits
        until the target confirmed it, or --timeout.

flags:
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

// apiFlags are the flags every API command shares.
type apiFlags struct {
	api, token, output string
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("EDGED_API")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&a.api, "api", def, "node API base `URL` (env EDGED_API)")
	fs.StringVar(&a.token, "token", os.Getenv("EDGED_TOKEN"), "bearer `token` of the node API (env EDGED_TOKEN)")
	fs.StringVar(&a.output, "o", "table", "output `format`: table or json")
}

func (a *apiFlags) check() error {
	var errs []error
	if a.output != "table" && a.output != "json" {
		errs = append(errs, fmt.Errorf("-o: %q: want table or json", a.output))
	}
	if u, err := url.Parse(a.api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--api: %q: want a URL like http://127.0.0.1:8080", a.api))
	}
	return errors.Join(errs...)
}

// call sends one API request and returns the body of a 2xx answer; any
// other answer is an error carrying the node's message.
func (a *apiFlags) call(method, path string, timeout time.Duration) ([]byte, error) {
	req, err := http.NewRequest(method, strings.TrimSuffix(a.api, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return body, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return body, nil
}

func cmdUplink(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, uplinkUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("uplink "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, uplinkUsage)
		fs.PrintDefaults()
	}
	var af apiFlags
	af.register(fs)
	var sink string
	var timeout time.Duration
	switch sub {
	case "status":
	case "flush":
		fs.StringVar(&sink, "sink", "", "flush only this uplink `sink` (default: all)")
		fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long the node waits for the uploads")
	default:
		fmt.Fprintf(stderr, "edgectl uplink: unknown subcommand %q (want status or flush)\n", sub)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgectl uplink %s: unexpected arguments %q\n", sub, fs.Args())
		return 2
	}
	if err := af.check(); err != nil {
		fmt.Fprintf(stderr, "edgectl uplink %s: %v\n", sub, err)
		return 2
	}
	if sub == "flush" && timeout <= 0 {
		fmt.Fprintf(stderr, "edgectl uplink flush: --timeout: must be positive\n")
		return 2
	}
	var err error
	if sub == "status" {
		err = uplinkStatusCmd(&af, stdout)
	} else {
		err = uplinkFlushCmd(&af, sink, timeout, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgectl uplink %s: %v\n", sub, err)
		return 1
	}
	return 0
}

func uplinkStatusCmd(af *apiFlags, w io.Writer) error {
	body, err := af.call("GET", "/api/v1/uplink/status", 30*time.Second)
	if err != nil {
		return err
	}
	var sts map[string]uplinkStatus
	if err := json.Unmarshal(body, &sts); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	if af.output == "json" {
		return writeIndented(w, body)
	}
	if len(sts) == 0 {
		fmt.Fprintln(w, "no uplink sinks (no pipeline has a sink of type uplink)")
		return nil
	}
	names := make([]string, 0, len(sts))
	for k := range sts {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tTARGET\tFORMAT\tSPOOLED\tOLDEST\tOBJECTS\tROWS\tUPLOADED\tRATIO\tDROPPED\tLAST SUCCESS\tLAST ERROR")
	now := time.Now()
	for _, k := range names {
		s := sts[k]
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%.1fx\t%d\t%s\t%s\n", k, s.Target, s.Format, spooled, oldest,
			s.Objects, s.Rows, humanBytes(s.BytesUploaded), s.Compression, s.DroppedRows, last, lastErr)
	}
	return tw.Flush()
}

func uplinkFlushCmd(af *apiFlags, sink string, timeout time.Duration, w io.Writer) error {
	q := url.Values{"timeout": {timeout.String()}}
	if sink != "" {
		q.Set("sink", sink)
	}
	// The node answers 504 after timeout; the client waits a little longer.
	body, err := af.call("POST", "/api/v1/uplink/flush?"+q.Encode(), timeout+10*time.Second)
	if err != nil {
		return err
	}
	var res struct {
		Flushed []string `json:"flushed"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if af.output == "json" {
		return writeIndented(w, body)
	}
	if len(res.Flushed) == 0 {
		fmt.Fprintln(w, "nothing to flush (no uplink sinks)")
		return nil
	}
	sort.Strings(res.Flushed)
	fmt.Fprintf(w, "flushed: %s\n", strings.Join(res.Flushed, ", "))
	return nil
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
