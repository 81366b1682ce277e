// Command edgectl manages a fleet of edged nodes through their HTTP API.
//
// It speaks only the node API (it imports neither the engine nor storage):
// contexts name fleets of nodes grouped into sites (edgectl config), and
// every command asks its target nodes at once, each under its own timeout,
// naming a node that fails in one line while the others still answer.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/edgedio/edged/internal/version"
)

const usage = `usage: edgectl COMMAND [flags]

fleet:
  nodes         every node: version, uptime, pipelines, rec/s, lag, spool, disk
  status [NODE] one node in detail, with its conditions
  top           nodes and pipelines, refreshed live
  partitions    partition owners (with the mesh)
  drain NODE    hand a node's partitions to its peers (with the mesh)
pipelines:
  apply -f F    validate on the nodes, then apply pipeline files (FILE or DIR)
  diff -f F     what apply would change on each node
  rollout -f F  canary first, watch it, roll back on failure, then the rest
  get [P]       pipelines of every node (-o yaml with P: the document)
  describe P    one pipeline on each node
  delete P...   stop and remove pipelines
  query P       live state of a step (--step), merged across nodes
  deadletters   list|replay
  uplink        status|flush of the uplink sinks
  backfill      start|list|cancel: run a pipeline over retained input
other:
  config        get-contexts|current-context|use-context|set-context|view
  sim           publish synthetic sensor readings to an MQTT broker
  completion    bash|zsh|fish
  version       print the version

Nodes: --context C (else the config's current context), --node NAME|URL,
--site S, --all. Without a config file: $EDGED_API or http://127.0.0.1:8080.
Output: -o table|json|yaml. Per-node timeout: --timeout (default 5s).
Exit status: 0 ok, 1 failed, 2 bad flags/config/input file, 3 partial (some
nodes failed; the others answered). "edgectl COMMAND -h": a command's flags.
`

// commands maps each fleet command to its function.
var commands = map[string]func(ctx context.Context, g *globals, args []string) int{
	"nodes":       cmdNodes,
	"status":      cmdStatus,
	"top":         cmdTop,
	"apply":       cmdApply,
	"diff":        cmdDiff,
	"rollout":     cmdRollout,
	"get":         cmdGet,
	"describe":    cmdDescribe,
	"delete":      cmdDelete,
	"query":       cmdQuery,
	"deadletters": cmdDeadLetters,
	"uplink":      cmdUplink,
	"backfill":    cmdBackfill,
	"partitions":  cmdPartitions,
	"drain":       cmdDrain,
	"config": func(_ context.Context, g *globals, args []string) int {
		return cmdConfig(g, args)
	},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runCtx(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	return runCtx(context.Background(), args, stdout, stderr)
}

func runCtx(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "edgectl", version.Version)
		return exitOK
	case "sim":
		return cmdSim(ctx, args[1:], stdout, stderr)
	case "completion":
		return cmdCompletion(args[1:], stdout, stderr)
	}
	if fn, ok := commands[args[0]]; ok {
		if usage, ok := groupUsage[args[0]]; ok && len(args) > 1 && isHelp(args[1]) {
			fmt.Fprint(stdout, usage) // a command with subcommands, asked for help
			return exitOK
		}
		return fn(ctx, &globals{stdout: stdout, stderr: stderr, cmd: args[0]}, args[1:])
	}
	fmt.Fprintf(stderr, "edgectl: unknown command %q (try edgectl help)\n", args[0])
	return exitUsage
}

// subcommands lists the second words of commands that have them.
var subcommands = map[string][]string{
	"config":      {"get-contexts", "current-context", "use-context", "set-context", "view"},
	"deadletters": {"list", "replay"},
	"uplink":      {"status", "flush"},
	"backfill":    {"start", "list", "cancel"},
	"completion":  {"bash", "zsh", "fish"},
}

func allCommands() []string {
	out := []string{"version", "sim", "completion"}
	for k := range commands {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

const globalFlags = "--config --context --node --site --all --token -o --timeout --parallel -f --step --where --canary --watch --pipeline"

// groupUsage is the usage of the commands that take a subcommand, printed
// for `edgectl CMD -h`.
var groupUsage = map[string]string{"config": configUsage, "deadletters": deadlettersUsage, "uplink": uplinkUsage, "backfill": backfillUsage}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "help" }

func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	if slices.ContainsFunc(args, isHelp) {
		fmt.Fprintln(stdout, "usage: edgectl completion bash|zsh|fish")
		return exitOK
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: edgectl completion bash|zsh|fish")
		return exitUsage
	}
	cmds := strings.Join(allCommands(), " ")
	switch args[0] {
	case "bash", "zsh":
		var cases strings.Builder
		for _, k := range sortedKeys(subcommands) {
			fmt.Fprintf(&cases, "    %s) [ $COMP_CWORD -eq 2 ] && { COMPREPLY=($(compgen -W %q -- \"$cur\")); return; } ;;\n", k, strings.Join(subcommands[k], " "))
		}
		if args[0] == "zsh" {
			fmt.Fprintln(stdout, "autoload -U +X bashcompinit && bashcompinit")
		}
		fmt.Fprintf(stdout, `# edgectl completion (source it: source <(edgectl completion %s))
_edgectl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  if [ $COMP_CWORD -eq 1 ]; then COMPREPLY=($(compgen -W %q -- "$cur")); return; fi
  case "$prev" in
    -o) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
    -f) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --context) COMPREPLY=($(compgen -W "$(edgectl config get-contexts -o table 2>/dev/null | awk 'NR>1{print $NF==""?$1:$2}')" -- "$cur")); return ;;
  esac
  case "${COMP_WORDS[1]}" in
%s  esac
  COMPREPLY=($(compgen -W %q -- "$cur"))
}
complete -F _edgectl edgectl
`, args[0], cmds, cases.String(), globalFlags)
	case "fish":
		fmt.Fprintln(stdout, "# edgectl completion (edgectl completion fish | source)")
		fmt.Fprintf(stdout, "complete -c edgectl -f -n '__fish_use_subcommand' -a %q\n", cmds)
		for _, k := range sortedKeys(subcommands) {
			fmt.Fprintf(stdout, "complete -c edgectl -f -n '__fish_seen_subcommand_from %s' -a %q\n", k, strings.Join(subcommands[k], " "))
		}
		for _, f := range strings.Fields(globalFlags) {
			name := strings.TrimLeft(f, "-")
			if len(name) == 1 {
				fmt.Fprintf(stdout, "complete -c edgectl -s %s -r\n", name)
			} else {
				fmt.Fprintf(stdout, "complete -c edgectl -l %s\n", name)
			}
		}
		fmt.Fprintln(stdout, "complete -c edgectl -s o -x -a 'table json yaml'")
	default:
		fmt.Fprintf(stderr, "edgectl completion: unknown shell %q (want bash, zsh or fish)\n", args[0])
		return exitUsage
	}
	return exitOK
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
