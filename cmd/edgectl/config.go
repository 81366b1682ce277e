package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileConfig is edgectl's config file (~/.config/edgectl/config.yaml): named
// contexts, each a fleet of nodes grouped into sites, and the current one.
//
//	current-context: prod
//	contexts:
//	  - name: prod
//	    token: s3cret            # default for the context's nodes
//	    ca: /etc/edgectl/ca.pem  # default CA file (PEM) for https nodes
//	    sites:
//	      - name: hall-a
//	        nodes:
//	          - {name: gw1, url: "https://10.0.1.11:8080"}
//	          - {url: "https://10.0.1.12:8080", token: other}
//	    nodes:                   # nodes outside any site
//	      - {name: lab, url: "http://127.0.0.1:8080"}
type fileConfig struct {
	CurrentContext string          `yaml:"current-context,omitempty"`
	Contexts       []contextConfig `yaml:"contexts"`
}

// contextConfig is one fleet.
type contextConfig struct {
	Name  string       `yaml:"name"`
	Token string       `yaml:"token,omitempty"`
	CA    string       `yaml:"ca,omitempty"`
	Sites []siteConfig `yaml:"sites,omitempty"`
	Nodes []nodeConfig `yaml:"nodes,omitempty"`
}

// siteConfig is a group of nodes (a site, e.g. one building).
type siteConfig struct {
	Name  string       `yaml:"name"`
	Nodes []nodeConfig `yaml:"nodes"`
}

// nodeConfig is one node's API. Name defaults to the URL's host:port; Token
// and CA default to the context's.
type nodeConfig struct {
	Name  string `yaml:"name,omitempty"`
	URL   string `yaml:"url"`
	Token string `yaml:"token,omitempty"`
	CA    string `yaml:"ca,omitempty"`
}

// target is one node to talk to, resolved from the config and flags.
type target struct {
	Name, Site, URL, Token, CA string
}

// configPath returns the config file: --config, then $EDGECTL_CONFIG, then
// the user config directory's edgectl/config.yaml.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv("EDGECTL_CONFIG"); env != "" {
		return env
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "edgectl", "config.yaml")
}

// loadConfig reads and validates the config file. A missing file is an empty
// config (exists false).
func loadConfig(path string) (cfg fileConfig, exists bool, err error) {
	if path == "" {
		return cfg, false, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, false, nil
	}
	if err != nil {
		return cfg, false, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && err != io.EOF {
		return cfg, true, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return cfg, true, cfg.validate(path)
}

// validate reports every problem at once, each naming the file and key.
func (c *fileConfig) validate(path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	for i, cx := range c.Contexts {
		key := fmt.Sprintf("contexts[%d]", i)
		if cx.Name == "" {
			bad(key+".name", "required")
		} else if seen[cx.Name] {
			bad(key+".name", "context %q defined twice", cx.Name)
		}
		seen[cx.Name] = true
		names := map[string]bool{}
		check := func(nkey string, n nodeConfig) {
			if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(nkey+".url", "%q: want a URL like https://10.0.1.11:8080", n.URL)
				return
			}
			name := nodeName(n)
			if names[name] {
				bad(nkey+".name", "node %q appears twice in context %q", name, cx.Name)
			}
			names[name] = true
		}
		for j, s := range cx.Sites {
			if s.Name == "" {
				bad(fmt.Sprintf("%s.sites[%d].name", key, j), "required")
			}
			for k, n := range s.Nodes {
				check(fmt.Sprintf("%s.sites[%d].nodes[%d]", key, j, k), n)
			}
		}
		for k, n := range cx.Nodes {
			check(fmt.Sprintf("%s.nodes[%d]", key, k), n)
		}
	}
	if c.CurrentContext != "" && !seen[c.CurrentContext] {
		bad("current-context", "no context %q (contexts: %s)", c.CurrentContext, c.contextNames())
	}
	return errors.Join(errs...)
}

func (c *fileConfig) contextNames() string {
	var names []string
	for _, cx := range c.Contexts {
		names = append(names, cx.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (c *fileConfig) context(name string) *contextConfig {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i]
		}
	}
	return nil
}

func nodeName(n nodeConfig) string {
	if n.Name != "" {
		return n.Name
	}
	if u, err := url.Parse(n.URL); err == nil && u.Host != "" {
		return u.Host
	}
	return n.URL
}

// targets lists the context's nodes, site by site, then the nodes outside
// any site.
func (cx *contextConfig) targets() []target {
	var out []target
	add := func(site string, n nodeConfig) {
		t := target{Name: nodeName(n), Site: site, URL: strings.TrimSuffix(n.URL, "/"), Token: n.Token, CA: n.CA}
		if t.Token == "" {
			t.Token = cx.Token
		}
		if t.CA == "" {
			t.CA = cx.CA
		}
		out = append(out, t)
	}
	for _, s := range cx.Sites {
		for _, n := range s.Nodes {
			add(s.Name, n)
		}
	}
	for _, n := range cx.Nodes {
		add("", n)
	}
	return out
}

// saveConfig writes the config file atomically.
func saveConfig(path string, c *fileConfig) error {
	if path == "" {
		return errors.New("no config file path (set --config or $EDGECTL_CONFIG)")
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil { // tokens inside
		return err
	}
	return os.Rename(tmp, path)
}

const configUsage = `usage: edgectl config get-contexts
       edgectl config current-context
       edgectl config use-context NAME
       edgectl config set-context NAME [--site SITE] --node URL [--node-name N]
                                       [--token T] [--ca FILE]
       edgectl config view

The config file is --config, else $EDGECTL_CONFIG, else
~/.config/edgectl/config.yaml. set-context creates the context if needed and
adds the node (to SITE when given); --token and --ca without --node set the
context's defaults.
`

func cmdConfig(g *globals, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(g.stderr, configUsage)
		return exitUsage
	}
	sub := args[0]
	fs := g.flagSet("config "+sub, configUsage)
	var site, nodeURL, nodeN, token, ca string
	if sub == "set-context" {
		fs.StringVar(&nodeN, "node-name", "", "the node's `name` (default: host:port of its URL)")
		fs.StringVar(&ca, "ca", "", "CA `file` (PEM) (of the node, or the context's default)")
	}
	pos, code := g.parse(fs, args[1:])
	if code >= 0 {
		return code
	}
	// set-context reads the shared --site, --node and --token flags (the
	// token only when given explicitly, not from $EDGED_TOKEN).
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "token" {
			token = g.token
		}
	})
	site = g.site
	if len(g.nodes) > 1 {
		return g.fail(exitUsage, "config set-context: one --node at a time")
	}
	if len(g.nodes) == 1 {
		nodeURL = g.nodes[0]
	}
	path := configPath(g.configFlag)
	cfg, _, err := loadConfig(path)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	switch sub {
	case "get-contexts":
		if len(cfg.Contexts) == 0 {
			fmt.Fprintf(g.stdout, "no contexts in %s (add one: edgectl config set-context NAME --node URL)\n", path)
			return exitOK
		}
		tw := newTable(g.stdout, "CURRENT", "NAME", "SITES", "NODES")
		for _, cx := range cfg.Contexts {
			cur := ""
			if cx.Name == cfg.CurrentContext {
				cur = "*"
			}
			tw.row(cur, cx.Name, fmt.Sprint(len(cx.Sites)), fmt.Sprint(len(cx.targets())))
		}
		tw.flush()
	case "current-context":
		if cfg.CurrentContext == "" {
			return g.fail(exitFailed, "no current context in %s", path)
		}
		fmt.Fprintln(g.stdout, cfg.CurrentContext)
	case "use-context":
		if len(pos) != 1 {
			return g.fail(exitUsage, "config use-context: want one context name")
		}
		if cfg.context(pos[0]) == nil {
			return g.fail(exitUsage, "config use-context: no context %q in %s (contexts: %s)", pos[0], path, cfg.contextNames())
		}
		cfg.CurrentContext = pos[0]
		if err := saveConfig(path, &cfg); err != nil {
			return g.fail(exitFailed, "%v", err)
		}
		fmt.Fprintf(g.stdout, "switched to context %q\n", pos[0])
	case "set-context":
		if len(pos) != 1 {
			return g.fail(exitUsage, "config set-context: want one context name")
		}
		cx := cfg.context(pos[0])
		if cx == nil {
			cfg.Contexts = append(cfg.Contexts, contextConfig{Name: pos[0]})
			cx = &cfg.Contexts[len(cfg.Contexts)-1]
		}
		if nodeURL == "" {
			if token != "" {
				cx.Token = token
			}
			if ca != "" {
				cx.CA = ca
			}
		} else {
			n := nodeConfig{Name: nodeN, URL: nodeURL, Token: token, CA: ca}
			if site == "" {
				cx.Nodes = append(cx.Nodes, n)
			} else {
				i := -1
				for k := range cx.Sites {
					if cx.Sites[k].Name == site {
						i = k
					}
				}
				if i < 0 {
					cx.Sites = append(cx.Sites, siteConfig{Name: site})
					i = len(cx.Sites) - 1
				}
				cx.Sites[i].Nodes = append(cx.Sites[i].Nodes, n)
			}
		}
		if cfg.CurrentContext == "" {
			cfg.CurrentContext = pos[0]
		}
		if err := cfg.validate("--node"); err != nil {
			return g.fail(exitUsage, "%v", err)
		}
		if err := saveConfig(path, &cfg); err != nil {
			return g.fail(exitFailed, "%v", err)
		}
		fmt.Fprintf(g.stdout, "context %q: %d nodes\n", pos[0], len(cx.targets()))
	case "view":
		data, _ := yaml.Marshal(&cfg)
		g.stdout.Write(redactTokens(data))
	default:
		return g.fail(exitUsage, "config: unknown subcommand %q (want get-contexts, current-context, use-context, set-context or view)", sub)
	}
	return exitOK
}

// redactTokens hides token values in config view.
func redactTokens(data []byte) []byte {
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if k, _, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- ")), ":"); ok && k == "token" {
			j := strings.Index(l, "token:")
			lines[i] = l[:j] + "token: REDACTED"
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
