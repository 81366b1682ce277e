package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

// UpgradeLog is the input log that holds what a pipeline's source had not
// consumed of its own input log of edged 0.1 ("<pipeline>/<source>"): only
// that source reads it, after its old position, and once it is consumed
// and truncated the next start removes it.
func UpgradeLog(pipeline, source string) string { return "upgrade/" + pipeline + "/" + source }

// upgradePipeline carries a pipeline of a data directory written by edged
// 0.1 over to the current layout, in one transaction (storage.UpgradePipeline):
// the entries its sources had logged and not consumed (acknowledged to the
// publishers, so never to be lost), its epoch and input positions, and its
// undelivered outputs. Its state and its executor's checkpoint stay in
// partition 0, and the pipeline keeps running as one partition (the old
// version's) until deleted and applied again. It returns the runner sources
// that read the upgrade logs left to consume; srcs are the pipeline's
// sources as newPipe wired them.
func (n *Node) upgradePipeline(c *pipeline.Compiled, srcs []runner.Source, fileInput bool) ([]runner.Source, error) {
	name := c.Plan.Name()
	u := storage.Upgrade{Pipeline: name, Sources: map[string]string{}, Record: runner.PipelinePartition,
		Spool: func(sk string) string { return runner.SpoolName(name, sk) },
		Also:  []*engine.Commit{runner.LayoutRecord(name, 1)}}
	for i, s := range c.Spec.Spec.Sources {
		if fileInput && i == 0 && n.logNext(LogFile) <= 1 {
			// The old input file fed this source's log: its offsets are
			// the file's line numbers, which the file log keeps.
			u.Sources[s.Name] = LogFile
		} else {
			u.Sources[s.Name] = UpgradeLog(name, s.Name)
		}
	}
	for _, s := range srcs {
		if !slices.Contains(u.Reads, s.Log) && s.Log != u.Sources[s.Name] {
			u.Reads = append(u.Reads, s.Log)
		}
	}
	for _, sk := range c.Plan.Sinks() {
		u.Sinks = append(u.Sinks, sk)
	}
	rep, err := n.db.UpgradePipeline(context.Background(), u)
	if err != nil {
		return nil, err
	}
	known := rep.Upgraded
	n.nextMu.Lock()
	for _, s := range c.Spec.Spec.Sources {
		_, ok := n.nextOff[UpgradeLog(name, s.Name)]
		known = known || ok
	}
	n.nextMu.Unlock()
	if !known {
		return nil, nil
	}
	st, err := n.db.Stats()
	if err != nil {
		return nil, err
	}
	if rep.Upgraded {
		n.log.Info("pipeline upgraded from the data layout of edged 0.1", "pipeline", name, "epoch", rep.Epoch,
			"unconsumed_entries", rep.Entries, "undelivered_outputs", rep.Outputs)
		n.nextMu.Lock()
		for lg := range rep.Entries {
			n.nextOff[lg] = st.Log[lg].Next
		}
		n.nextMu.Unlock()
	}
	var extra []runner.Source
	for _, s := range c.Spec.Spec.Sources {
		lg := UpgradeLog(name, s.Name)
		ls, ok := st.Log[lg]
		if !ok {
			continue
		}
		{
			cp, err := n.db.LastCheckpoint(name, runner.PipelinePartition)
			if err != nil {
				return nil, err
			}
			if cp.Input[lg] >= ls.Next {
				if err := n.db.DeleteLog(context.Background(), lg); err != nil {
					return nil, fmt.Errorf("remove the consumed upgrade log %q: %w", lg, err)
				}
				n.nextMu.Lock()
				delete(n.nextOff, lg)
				n.nextMu.Unlock()
				n.log.Info("upgrade log consumed and removed", "pipeline", name, "log", lg)
				continue
			}
		}
		var dec runner.Decoder
		for _, rs := range srcs {
			if rs.Name == s.Name {
				dec = rs.Decoder
			}
		}
		extra = append(extra, runner.Source{Name: s.Name, Log: lg, Decoder: dec})
	}
	return extra, nil
}

// dropUpgradeLogs removes the upgrade logs of a deleted pipeline.
func (n *Node) dropUpgradeLogs(pipeline string) {
	prefix := UpgradeLog(pipeline, "")
	n.nextMu.Lock()
	var logs []string
	for lg := range n.nextOff {
		if strings.HasPrefix(lg, prefix) {
			logs = append(logs, lg)
		}
	}
	n.nextMu.Unlock()
	for _, lg := range logs {
		if err := n.db.DeleteLog(context.Background(), lg); err != nil {
			n.log.Warn("remove the upgrade log of a deleted pipeline", "log", lg, "err", err)
			continue
		}
		n.nextMu.Lock()
		delete(n.nextOff, lg)
		n.nextMu.Unlock()
	}
}
