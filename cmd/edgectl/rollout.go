package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

const rolloutUsage = `usage: edgectl rollout -f FILE [--canary NODE] [--watch 30s]
         [--max-error-ratio 0.01] [--min-records 0] [node selection flags]

Rolls one pipeline out to many nodes (sites):
  1. every targeted node validates the file (nothing changes if one rejects it);
  2. the canary (--canary, default the first target) gets it first and is
     watched for --watch: its last epoch must not fail, and the share of
     records that are dead-lettered (decode errors and rejected records) must
     stay at or below --max-error-ratio, with at least --min-records seen;
  3. if the canary fails, it is rolled back automatically to the version it
     ran before (or the pipeline is deleted when it is new there), and the
     rollout stops;
  4. otherwise the other nodes get it, --parallel at a time, with a progress
     bar, and a summary lists every node that failed.
Exit status: 0 done everywhere, 1 canary failed (rolled back) or every node
failed, 2 bad file or flags, 3 some nodes failed.
`

// canaryVerdict is what watching the canary found.
type canaryVerdict struct {
	Records float64 `json:"records"`
	Errors  float64 `json:"errors"`
	Reason  string  `json:"reason,omitempty"` // empty: healthy
}

func cmdRollout(ctx context.Context, g *globals, args []string) int {
	fs := g.flagSet("rollout", rolloutUsage)
	file := fs.String("f", "", "pipeline `file`")
	canaryName := fs.String("canary", "", "canary `node` (default: the first target)")
	watch := fs.Duration("watch", 30*time.Second, "how long to watch the canary")
	poll := fs.Duration("poll", time.Second, "how often to look at the canary while watching")
	maxRatio := fs.Float64("max-error-ratio", 0.01, "highest share of dead-lettered records the canary may show")
	minRecords := fs.Float64("min-records", 0, "records the canary must process while watched (0: no minimum)")
	pos, code := g.parse(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 || *file == "" {
		return g.fail(exitUsage, "want -f FILE and no arguments")
	}
	if *watch < 0 || *poll <= 0 || *maxRatio < 0 || *maxRatio > 1 {
		return g.fail(exitUsage, "--watch must not be negative, --poll positive, --max-error-ratio within 0..1")
	}
	lps, err := loadPipelineFiles([]string{*file})
	if err != nil {
		fmt.Fprintln(g.stderr, err)
		return exitUsage
	}
	lp := lps[0]
	ts, err := g.resolve(true)
	if err != nil {
		return g.fail(exitUsage, "%v", err)
	}
	ci := 0
	if *canaryName != "" {
		ci = -1
		for i, t := range ts {
			if t.Name == *canaryName || t.URL == strings.TrimSuffix(*canaryName, "/") {
				ci = i
			}
		}
		if ci < 0 {
			return g.fail(exitUsage, "--canary: %q is not one of the targeted nodes", *canaryName)
		}
	}
	canary := ts[ci]
	rest := append(append([]target{}, ts[:ci]...), ts[ci+1:]...)

	// 1. Validate everywhere.
	_, ok, valid, _ := validateAll(ctx, g, ts, lps)
	if !valid {
		return exitUsage
	}
	reachable := map[string]bool{}
	for _, t := range ok {
		reachable[t.Name] = true
	}
	if !reachable[canary.Name] {
		return g.fail(exitFailed, "canary %s did not answer: rollout not started", canary.Name)
	}
	label := lp.name
	if lp.version != "" {
		label += " " + lp.version
	}
	fmt.Fprintf(g.stderr, "rollout %s to %d nodes; canary %s, watched for %v\n", label, len(ts), canary.Name, *watch)

	// 2. Canary.
	cc, err := newClient(canary)
	if err != nil {
		return g.fail(exitFailed, "%v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	prev, err := currentDoc(rctx, cc, lp.name)
	if err == nil {
		_, err = applyOn(rctx, cc, lp.name, lp.raw)
	}
	cancel()
	if err != nil {
		return g.fail(exitFailed, "canary %s: %v", canary.Name, err)
	}
	verdict := watchCanary(ctx, g, cc, lp.name, *watch, *poll, *maxRatio, *minRecords)
	if verdict.Reason != "" {
		fmt.Fprintf(g.stderr, "edgectl rollout: canary %s FAILED: %s\n", canary.Name, verdict.Reason)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
		defer cancel()
		var rbErr error
		what := "the previous version"
		if prev != nil {
			_, rbErr = applyOn(rctx, cc, lp.name, prev)
		} else {
			what = "nothing (pipeline deleted: it was new there)"
			_, _, rbErr = cc.do(rctx, "DELETE", "/api/v1/pipelines/"+url.PathEscape(lp.name), nil)
		}
		if rbErr != nil {
			fmt.Fprintf(g.stderr, "edgectl rollout: ROLLBACK of %s FAILED: %v\n", canary.Name, rbErr)
		} else {
			fmt.Fprintf(g.stderr, "edgectl rollout: rolled %s back to %s\n", canary.Name, what)
		}
		if g.output != "table" {
			emit(g.stdout, g.output, map[string]any{"pipeline": lp.name, "canary": canary.Name, "verdict": verdict,
				"rolledBack": rbErr == nil, "updated": []string{}})
		} else {
			fmt.Fprintf(g.stdout, "rollout %s: canary %s failed (%s); rolled back; 0 of %d nodes updated\n",
				label, canary.Name, verdict.Reason, len(ts))
		}
		return exitFailed
	}
	fmt.Fprintf(g.stderr, "canary %s healthy: %.0f records, %.0f dead-lettered in %v\n", canary.Name, verdict.Records, verdict.Errors, *watch)

	// 3. The rest.
	var mu sync.Mutex
	failures := map[string]string{}
	for _, t := range rest {
		if !reachable[t.Name] {
			failures[t.Name] = "did not answer the validation"
		}
	}
	var todo []target
	for _, t := range rest {
		if reachable[t.Name] {
			todo = append(todo, t)
		}
	}
	prog := newProgress(g.stderr, "rollout "+lp.name, len(todo))
	res := fanOut(ctx, g, todo, func(ctx context.Context, c *client) (struct{}, error) {
		_, err := applyOn(ctx, c, lp.name, lp.raw)
		mu.Lock()
		prog.step(c.t.Name, err)
		mu.Unlock()
		return struct{}{}, err
	})
	updated := []string{canary.Name}
	for _, r := range res {
		if r.err != nil {
			failures[r.t.Name] = oneLine(strings.TrimPrefix(r.err.Error(), "node "+r.t.Name+": "))
		} else {
			updated = append(updated, r.t.Name)
		}
	}
	sort.Strings(updated)
	names := make([]string, 0, len(failures))
	for k := range failures {
		names = append(names, k)
	}
	sort.Strings(names)
	if g.output != "table" {
		emit(g.stdout, g.output, map[string]any{"pipeline": lp.name, "canary": canary.Name, "verdict": verdict,
			"updated": updated, "failed": failures})
	} else {
		fmt.Fprintf(g.stdout, "rollout %s: %d of %d nodes updated (canary %s healthy)\n", label, len(updated), len(ts), canary.Name)
		if len(names) > 0 {
			fmt.Fprintf(g.stdout, "failed on %d nodes:\n", len(names))
			for _, k := range names {
				fmt.Fprintf(g.stdout, "  %s: %s\n", k, failures[k])
			}
		}
	}
	if len(failures) > 0 {
		return exitPartial
	}
	return exitOK
}

// watchCanary polls the canary's pipeline for d and judges it.
func watchCanary(ctx context.Context, g *globals, c *client, name string, d, poll time.Duration, maxRatio, minRecords float64) canaryVerdict {
	var v canaryVerdict
	deadline := time.Now().Add(d)
	misses := 0
	// The node's totals count from the start of the version it runs (the
	// apply replaced the pipeline before it answered): they are the
	// canary's own.
	for {
		rctx, cancel := context.WithTimeout(ctx, g.timeout)
		info, err := fetchInfo(rctx, c)
		cancel()
		now := time.Now()
		if err != nil {
			if misses++; misses >= 3 {
				v.Reason = "stopped answering: " + err.Error()
				return v
			}
		} else {
			misses = 0
			var p *pipelineInfo
			for i := range info.Status.Pipelines {
				if info.Status.Pipelines[i].Name == name {
					p = &info.Status.Pipelines[i]
				}
			}
			if p == nil {
				v.Reason = "the pipeline is not running"
				return v
			}
			if p.LastError != "" {
				v.Reason = "last epoch failed: " + oneLine(p.LastError)
				return v
			}
			tot := info.Totals[name]
			v.Records, v.Errors = float64(tot.In), float64(tot.Invalid)
			if total := v.Records + v.Errors; total > 0 && v.Errors/total > maxRatio && v.Errors >= 1 {
				v.Reason = fmt.Sprintf("%.1f%% of records dead-lettered (%.0f of %.0f; limit %.1f%%)",
					100*v.Errors/total, v.Errors, total, 100*maxRatio)
				return v
			}
		}
		if !now.Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			v.Reason = "interrupted"
			return v
		case <-time.After(min(poll, time.Until(deadline)+time.Millisecond)):
		}
	}
	if v.Records < minRecords {
		v.Reason = fmt.Sprintf("saw only %.0f records (--min-records %.0f): cannot judge", v.Records, minRecords)
	}
	return v
}
