package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgedio/edged/pipeline"
)

// Retiring sinks. When a pipeline is deleted, or a new version drops one of
// its sinks, what was already spooled for the sink was promised to it (an
// epoch committed it): the sink keeps delivering until its spool is empty,
// across restarts, and only then goes. A deleted pipeline's state,
// checkpoints and log positions are freed once all its sinks are done.
//
// Each retiring sink has a file DATADIR/retiring/PIPELINE@SINK.yaml holding
// the pipeline version that had the sink, so a restart can open the sink
// again and finish the delivery.

func (n *Node) retiringDir() string { return filepath.Join(n.cfg.DataDir, "retiring") }

func retiringFile(dir, pipeline, sink string) string {
	return filepath.Join(dir, pipeline+"@"+sink+".yaml")
}

// retire hands every sink of a stopped, deleted pipeline to retireSink and
// frees the pipeline's storage once they are all done. n.mu is not held.
func (n *Node) retire(p *pipe) {
	n.mu.Lock()
	var done []chan struct{}
	for name, s := range n.sinks {
		if s.pipeline == p.name {
			done = append(done, n.retireSinkLocked(s, p.yaml))
			delete(n.sinks, name)
		}
	}
	for name, u := range n.uploaders {
		if u.pipeline == p.name {
			done = append(done, n.retireUplinkLocked(u, p.yaml))
			delete(n.uploaders, name)
		}
	}
	n.mu.Unlock()
	go func() {
		for _, d := range done {
			select {
			case <-d:
			case <-n.runCtx.Done():
				return // the next start finishes the job
			}
		}
		if n.pipeByName(p.name) != nil {
			return // applied again meanwhile: its state is in use
		}
		if err := n.db.DeletePipeline(context.Background(), p.name, ReplayLog(p.name)); err != nil {
			n.log.Warn("free the state of a deleted pipeline", "pipeline", p.name, "err", err)
			return
		}
		n.dropUpgradeLogs(p.name)
		n.log.Info("deleted pipeline freed", "pipeline", p.name)
	}()
}

// retireSink is retireSinkLocked for a sink that a new version dropped.
func (n *Node) retireSink(s *spoolSink) { n.retireSinkLocked(s, n.pipeYAML(s.pipeline)) }

func (n *Node) pipeYAML(name string) []byte {
	if p := n.pipes[name]; p != nil {
		return p.yaml
	}
	return nil
}

// retireSinkLocked lets s deliver its spool to the end, then closes it. The
// returned channel closes when it is done. n.mu is held.
func (n *Node) retireSinkLocked(s *spoolSink, yaml []byte) chan struct{} {
	done := make(chan struct{})
	file := n.keepRetiring(s.pipeline, s.sink, yaml)
	go func() {
		defer close(done)
		if !n.waitSpoolEmpty(s.name, func() { s.notify() }) {
			return
		}
		s.mu.Lock()
		if s.w != nil {
			s.w.Close()
			s.w = nil
		}
		s.mu.Unlock()
		if s.cancel != nil {
			s.cancel()
		}
		os.Remove(file)
		n.log.Info("retired sink delivered its spool", "pipeline", s.pipeline, "sink", s.sink)
	}()
	return done
}

// retireUplinkLocked is retireSinkLocked for an uploader.
func (n *Node) retireUplinkLocked(u *upSink, yaml []byte) chan struct{} {
	done := make(chan struct{})
	file := n.keepRetiring(u.pipeline, u.sink, yaml)
	go func() {
		defer close(done)
		if !n.waitSpoolEmpty(u.name, u.u.Notify) {
			return
		}
		if u.cancel != nil {
			u.cancel()
		}
		os.Remove(file)
		n.log.Info("retired uplink sink delivered its spool", "pipeline", u.pipeline, "sink", u.sink)
	}()
	return done
}

// keepRetiring records a retiring sink, so a restart resumes its delivery.
func (n *Node) keepRetiring(pipeline, sink string, yaml []byte) string {
	dir := n.retiringDir()
	file := retiringFile(dir, pipeline, sink)
	if len(yaml) == 0 {
		return file
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = writeFileAtomic(file, yaml)
		if err != nil {
			n.log.Warn("record a retiring sink", "pipeline", pipeline, "sink", sink, "err", err)
		}
	}
	return file
}

// waitSpoolEmpty polls a spool until it is empty (true) or the node stops.
func (n *Node) waitSpoolEmpty(spool string, kick func()) bool {
	for {
		st, err := n.db.SpoolStats()
		if err == nil && st[spool].Depth == 0 {
			return true
		}
		kick()
		select {
		case <-n.runCtx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// resumeRetiring opens again the sinks that were retiring when the node
// stopped and lets them finish; a deleted pipeline's storage is freed when
// its last sink is done.
func (n *Node) resumeRetiring() error {
	ents, err := os.ReadDir(n.retiringDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		i := strings.LastIndexByte(name, '@') // a backfill's pipeline is NAME@ID
		pipe, sink, ok2 := name[:max(i, 0)], name[i+1:], i > 0
		if !ok || !ok2 {
			continue
		}
		file := filepath.Join(n.retiringDir(), e.Name())
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		spec, err := pipeline.Parse(file, raw)
		if err != nil {
			n.log.Warn("retiring sink: cannot parse its pipeline version; its spool stays", "file", file, "err", err)
			continue
		}
		var sk *pipeline.Sink
		for i := range spec.Spec.Sinks {
			if spec.Spec.Sinks[i].Name == sink {
				sk = &spec.Spec.Sinks[i]
			}
		}
		if sk == nil {
			os.Remove(file)
			continue
		}
		n.mu.Lock()
		var done chan struct{}
		if sk.Type == "uplink" {
			if err := n.attachUplink(pipe, sink); err == nil {
				u := n.uploaders[SinkName(pipe, sink)]
				delete(n.uploaders, u.name)
				done = n.retireUplinkLocked(u, nil)
			}
		} else if w, kind, err := n.newWriter(pipe, sk); err == nil {
			s := n.startSpoolSink(pipe, sink, w, kind)
			delete(n.sinks, s.name)
			done = n.retireSinkLocked(s, nil)
		} else {
			n.log.Warn("retiring sink: cannot open it again; its spool stays", "pipeline", pipe, "sink", sink, "err", err)
		}
		n.mu.Unlock()
		if done != nil && n.pipeByName(pipe) == nil {
			go func() {
				select {
				case <-done:
				case <-n.runCtx.Done():
					return
				}
				if n.pipeByName(pipe) == nil && !n.hasRetiring(pipe) {
					if err := n.db.DeletePipeline(context.Background(), pipe, ReplayLog(pipe)); err != nil {
						n.log.Warn("free the state of a deleted pipeline", "pipeline", pipe, "err", err)
					} else {
						n.dropUpgradeLogs(pipe)
					}
				}
			}()
		}
	}
	return nil
}

// hasRetiring reports whether a sink of the pipeline is still retiring.
func (n *Node) hasRetiring(pipe string) bool {
	m, _ := filepath.Glob(filepath.Join(n.retiringDir(), pipe+"@*.yaml"))
	return len(m) > 0
}
