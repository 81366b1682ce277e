package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Exit codes: scripts can tell a usage error from a failure, and a partial
// answer (some nodes failed, the others answered) from both.
const (
	exitOK      = 0
	exitFailed  = 1 // the operation failed (on every node it targeted)
	exitUsage   = 2 // bad flags, arguments, config or input file
	exitPartial = 3 // some nodes failed; the others' answers were printed
)

// apiVersion is the node API edgectl speaks.
const apiVersion = "v1"

// globals are the flags every fleet command shares and where it writes.
type globals struct {
	stdout, stderr io.Writer
	cmd            string // "nodes", "apply", ... for messages

	configFlag  string
	contextFlag string
	nodes       stringList
	site        string
	all         bool
	token       string
	output      string
	timeout     time.Duration
	parallel    int

	clientsMu sync.Mutex
	clients   map[string]*client // by node URL, reused across refreshes (top)
}

// stringList is a repeatable, comma-separated flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// flagSet returns a FlagSet with the shared flags registered.
func (g *globals) flagSet(name, usage string) *flag.FlagSet {
	g.cmd = name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() {
		fmt.Fprint(g.stderr, usage)
		fmt.Fprintln(g.stderr, "\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&g.configFlag, "config", "", "config `file` (default $EDGECTL_CONFIG, else ~/.config/edgectl/config.yaml)")
	fs.StringVar(&g.contextFlag, "context", "", "use this `context` of the config file instead of the current one")
	fs.Var(&g.nodes, "node", "target this node: a `name` of the context or a URL (repeatable)")
	fs.Var(&g.nodes, "api", "same as --node `URL` (env EDGED_API)")
	fs.StringVar(&g.site, "site", "", "target the nodes of this `site`")
	fs.BoolVar(&g.all, "all", false, "target every node of the context")
	fs.StringVar(&g.token, "token", os.Getenv("EDGED_TOKEN"), "bearer `token` for nodes given by URL (env EDGED_TOKEN)")
	fs.StringVar(&g.output, "o", "table", "output `format`: table, json or yaml")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "per-node request `timeout`")
	fs.IntVar(&g.parallel, "parallel", 32, "nodes contacted at once")
	return fs
}

// parse parses flags and positional arguments in any order. It returns the
// positional arguments and -1, or an exit code when parsing ended the
// command (help or an error, already printed).
func (g *globals) parse(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	var errs []string
	switch g.output {
	case "table", "json", "yaml":
	default:
		errs = append(errs, fmt.Sprintf("-o: %q: want table, json or yaml", g.output))
	}
	if g.timeout <= 0 {
		errs = append(errs, "--timeout: must be positive")
	}
	if g.parallel < 1 {
		errs = append(errs, "--parallel: must be at least 1")
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(g.stderr, "edgectl %s: %s\n", g.cmd, e)
		}
		return nil, exitUsage
	}
	return pos, -1
}

// fail prints one line naming the command and returns code.
func (g *globals) fail(code int, format string, args ...any) int {
	fmt.Fprintf(g.stderr, "edgectl %s: %s\n", g.cmd, fmt.Sprintf(format, args...))
	return code
}

// resolve returns the nodes a command targets: --node (names of the context
// or URLs), --site, --all, or by default every node of the context. With no
// config file and no --node, the one node at $EDGED_API or
// http://127.0.0.1:8080. write says the command changes nodes: then a
// context of several nodes needs an explicit --node, --site or --all.
func (g *globals) resolve(write bool) ([]target, error) {
	path := configPath(g.configFlag)
	cfg, exists, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	name := g.contextFlag
	if name == "" {
		name = cfg.CurrentContext
	}
	var cx *contextConfig
	if name != "" {
		if cx = cfg.context(name); cx == nil {
			where := path
			if !exists {
				where += " (no such file)"
			}
			return nil, fmt.Errorf("--context: no context %q in %s (contexts: %s)", name, where, cfg.contextNames())
		}
	}
	var all []target
	if cx != nil {
		all = cx.targets()
	}
	byName := func(s string) (target, bool) {
		for _, t := range all {
			if t.Name == s || t.URL == strings.TrimSuffix(s, "/") {
				return t, true
			}
		}
		return target{}, false
	}
	var out []target
	switch {
	case len(g.nodes) > 0:
		for _, s := range g.nodes {
			if t, ok := byName(s); ok {
				if g.token != "" && t.Token == "" {
					t.Token = g.token
				}
				out = append(out, t)
				continue
			}
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				if cx == nil {
					return nil, fmt.Errorf("--node/--api: %q is not a URL like http://127.0.0.1:8080 (and no context is selected)", s)
				}
				return nil, fmt.Errorf("--node/--api: no node %q in context %q (and not a URL)", s, cx.Name)
			}
			t := target{Name: u.Host, URL: strings.TrimSuffix(s, "/"), Token: g.token}
			if cx != nil {
				t.CA = cx.CA
				if t.Token == "" {
					t.Token = cx.Token
				}
			}
			out = append(out, t)
		}
	case g.site != "":
		if cx == nil {
			return nil, fmt.Errorf("--site: no context selected (edgectl config use-context NAME)")
		}
		for _, t := range all {
			if t.Site == g.site {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("--site: no site %q in context %q", g.site, cx.Name)
		}
	case cx != nil:
		if len(all) == 0 {
			return nil, fmt.Errorf("context %q has no nodes", cx.Name)
		}
		if write && !g.all && len(all) > 1 {
			return nil, fmt.Errorf("context %q has %d nodes: say which with --node, --site or --all", cx.Name, len(all))
		}
		out = all
	default:
		u := os.Getenv("EDGED_API")
		if u == "" {
			u = "http://127.0.0.1:8080"
		}
		g.nodes = nil
		g.nodes.Set(u)
		return g.resolve(write)
	}
	return out, nil
}

// nodeError is a failure talking to one node, in one line naming it.
type nodeError struct {
	Node string
	Msg  string
}

func (e *nodeError) Error() string { return "node " + e.Node + ": " + e.Msg }

// client talks to one node's API.
type client struct {
	t    target
	http *http.Client
}

var (
	tlsMu    sync.Mutex
	tlsCache = map[string]*tls.Config{}
)

func newClient(t target) (*client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t.CA != "" {
		tlsMu.Lock()
		cfg, ok := tlsCache[t.CA]
		if !ok {
			pem, err := os.ReadFile(t.CA)
			if err != nil {
				tlsMu.Unlock()
				return nil, &nodeError{t.Name, fmt.Sprintf("ca: %v", err)}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				tlsMu.Unlock()
				return nil, &nodeError{t.Name, fmt.Sprintf("ca: %s holds no PEM certificate", t.CA)}
			}
			cfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			tlsCache[t.CA] = cfg
		}
		tlsMu.Unlock()
		tr.TLSClientConfig = cfg
	}
	return &client{t: t, http: &http.Client{Transport: tr}}, nil
}

// do sends one request and returns the body of a 2xx answer. Every failure
// is a *nodeError in the user's words: unreachable, no answer in time, wrong
// token, or the node's own message. status is the HTTP status (0 when there
// was no answer).
func (c *client) do(ctx context.Context, method, path string, body []byte) (out []byte, status int, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.t.URL+path, rd)
	if err != nil {
		return nil, 0, &nodeError{c.t.Name, err.Error()}
	}
	if c.t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.t.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, &nodeError{c.t.Name, transportMessage(ctx, c.t.URL, err)}
	}
	defer resp.Body.Close()
	out, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.StatusCode, &nodeError{c.t.Name, transportMessage(ctx, c.t.URL, err)}
	}
	if resp.StatusCode/100 == 2 {
		return out, resp.StatusCode, nil
	}
	var e struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	msg := strings.TrimSpace(string(out))
	if json.Unmarshal(out, &e) == nil && e.Error != "" {
		msg = e.Error
		if len(e.Errors) > 1 {
			msg = strings.Join(e.Errors, "\n")
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		msg = "wrong or missing token (401): set it with --token or the context's token"
	case http.StatusMisdirectedRequest:
		msg = "refused the Host header (421): address a loopback node as 127.0.0.1 or localhost"
	}
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMisdirectedRequest {
		msg = resp.Status + ": " + msg
	}
	return out, resp.StatusCode, &nodeError{c.t.Name, fmt.Sprintf("%s %s: %s", method, strings.SplitN(path, "?", 2)[0], msg)}
}

// getJSON GETs path and decodes the answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	body, _, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &nodeError{c.t.Name, fmt.Sprintf("GET %s: answer is not the expected JSON (%v): is this an edged node?", path, err)}
	}
	return nil
}

func transportMessage(ctx context.Context, u string, err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
			return fmt.Sprintf("no answer within %v (%s)", d, u)
		}
		return fmt.Sprintf("no answer in time (%s)", u)
	case errors.Is(ctx.Err(), context.Canceled):
		return "interrupted"
	case errors.As(err, new(x509.UnknownAuthorityError)), errors.As(err, new(x509.HostnameError)),
		errors.As(err, new(*tls.CertificateVerificationError)):
		return fmt.Sprintf("%s: %v (set the context's or node's ca to the CA file that signed the node's certificate)", u, errors.Unwrap(err))
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Sprintf("unreachable (%s): %v", u, oe.Err)
	}
	return fmt.Sprintf("%s: %v", u, errors.Unwrap(err))
}

type timeoutKey struct{}

// client returns the client of a node, reusing its connections.
func (g *globals) client(t target) (*client, error) {
	g.clientsMu.Lock()
	defer g.clientsMu.Unlock()
	key := t.URL + "\x00" + t.Token + "\x00" + t.CA
	if c, ok := g.clients[key]; ok {
		return c, nil
	}
	c, err := newClient(t)
	if err != nil {
		return nil, err
	}
	if g.clients == nil {
		g.clients = map[string]*client{}
	}
	g.clients[key] = c
	return c, nil
}

// result is one node's answer in a fan-out.
type result[T any] struct {
	t   target
	v   T
	err error
	dur time.Duration
}

// fanOut runs fn against every target at once (at most g.parallel at a
// time), each under its own g.timeout, and returns the results in target
// order. One slow or dead node costs the others nothing.
func fanOut[T any](ctx context.Context, g *globals, ts []target, fn func(ctx context.Context, c *client) (T, error)) []result[T] {
	res := make([]result[T], len(ts))
	sem := make(chan struct{}, g.parallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		res[i].t = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			c, err := g.client(t)
			if err == nil {
				cctx, cancel := context.WithTimeout(context.WithValue(ctx, timeoutKey{}, g.timeout), g.timeout)
				res[i].v, err = fn(cctx, c)
				cancel()
			}
			res[i].err = err
			res[i].dur = time.Since(start)
		}()
	}
	wg.Wait()
	return res
}

// report prints each failed node's error on stderr (one line per node, or
// per problem) and returns the exit code: OK, partial or failed.
func report[T any](g *globals, res []result[T]) int {
	failed := 0
	for _, r := range res {
		if r.err == nil {
			continue
		}
		failed++
		for _, line := range strings.Split(r.err.Error(), "\n") {
			if !strings.HasPrefix(line, "node ") {
				line = "node " + r.t.Name + ": " + line
			}
			fmt.Fprintf(g.stderr, "edgectl %s: %s\n", g.cmd, line)
		}
	}
	switch {
	case failed == 0:
		return exitOK
	case failed == len(res):
		return exitFailed
	}
	fmt.Fprintf(g.stderr, "edgectl %s: partial result: %d of %d nodes failed\n", g.cmd, failed, len(res))
	return exitPartial
}
