package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgedio/edged/ingest/source"
	"github.com/edgedio/edged/internal/topic"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
)

// This file runs the sources that are not MQTT or local buses: custom
// sources that the program embedding the node registers (WithSource), file
// tails (a source's `file:` block) and the counters of HTTP push (push.go).
// Each logs its payloads in the shared input log under its own reserved
// topic (source.Topic), which the pipeline source's template matches, like
// bus readings. The hooks elsewhere:
//
//   - Node.src (node.go) holds this state;
//   - newPipe (pipe.go) adds inputTemplate to a source's templates and
//     checks that a custom source is registered (checkCustom);
//   - Node.start and Node.remove (node.go) call startTails and stopTails;
//     Node.Run calls startSources once ready and stopSources when it
//     drains, before the pipelines stop;
//   - handleMQTT (mqtt.go) drops MQTT messages under source.TopicPrefix;
//   - WriteMetrics (metrics.go) calls writeSourceMetrics.

// WithSource registers src under name: every pipeline source with
// `custom: NAME` reads what it writes. The node runs it (src.Run) from the
// moment it is ready until it drains, restarting it after a backoff when
// it fails. Its position (source.Writer.Position) is kept in the node's
// storage under the name. Names use letters, digits, '.', '_' and '-'.
func WithSource(name string, src source.Source) Option {
	return func(n *Node) {
		if n.src.custom == nil {
			n.src.custom = map[string]source.Source{}
		}
		n.src.custom[name] = src
	}
}

// srcState is the node's side of custom, file and HTTP sources.
type srcState struct {
	custom map[string]source.Source // registered by WithSource (set before Run)

	mu      sync.Mutex
	running map[string]*runningSource // by id (srcWriter.id)
	stats   map[string]*srcStats      // by id, kept across restarts
}

// srcStats counts one source's input.
type srcStats struct {
	records, duplicates, deadLetters, errors atomic.Uint64
	up                                       atomic.Bool
	failing                                  atomic.Bool  // since a failed Run, until a Write succeeds
	lastErr                                  atomic.Value // string
}

type runningSource struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// inputTemplate returns the topic template that routes an http, file or
// custom source's payloads to it, or nil for other sources.
func inputTemplate(pipelineName string, src *pipeline.Source) *topic.Template {
	tp := inputTopic(pipelineName, src)
	if tp == "" {
		return nil
	}
	t, err := topic.ParseTemplate(tp)
	if err != nil {
		// Pipeline, source and custom names are validated.
		panic(fmt.Sprintf("BUG: input topic %q: %v", tp, err))
	}
	return t
}

// inputTopic is the input-log topic of an http, file or custom source ("" for
// others).
func inputTopic(pipelineName string, src *pipeline.Source) string {
	switch {
	case src.HTTP != nil:
		return source.Topic("http", pipelineName, src.Name)
	case src.File != nil:
		return source.Topic("file", pipelineName, src.Name)
	case src.Custom != "":
		return source.Topic("custom", src.Custom)
	}
	return ""
}

// checkCustom reports a custom source that this program did not register.
func (n *Node) checkCustom(src *pipeline.Source) error {
	if src.Custom == "" || n.src.custom[src.Custom] != nil {
		return nil
	}
	names := make([]string, 0, len(n.src.custom))
	for k := range n.src.custom {
		names = append(names, k)
	}
	sort.Strings(names)
	have := "none are"
	if len(names) > 0 {
		have = strings.Join(names, ", ") + " are"
	}
	return fmt.Errorf("source %q: custom: %q is not a source this program registered (node.WithSource); %s", src.Name, src.Custom, have)
}

// checkCustoms reports every custom source of spec that this program did
// not register (Apply answers 400 with them).
func (n *Node) checkCustoms(spec *pipeline.Spec) error {
	var errs []error
	for i := range spec.Spec.Sources {
		if err := n.checkCustom(&spec.Spec.Sources[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// srcWriter is the source.Writer of one running source.
type srcWriter struct {
	n     *Node
	id    string // its mark key and metrics name: custom/NAME, file/PIPELINE/SOURCE
	topic string
	st    *srcStats

	mu  sync.Mutex
	pos []byte
}

func (w *srcWriter) Write(ctx context.Context, payloads [][]byte, pos []byte) error {
	kept, _, err := w.n.appendInput(ctx, w.topic, payloads, false, w.id, pos, nil)
	if err != nil {
		w.st.lastErr.Store(err.Error()) // counted when Run fails with it
		return err
	}
	w.st.records.Add(uint64(kept))
	w.st.failing.Store(false)
	if pos != nil {
		w.mu.Lock()
		w.pos = slices.Clone(pos)
		w.mu.Unlock()
	}
	return nil
}

func (w *srcWriter) Position() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// appendInput logs payloads under topic in the shared input log, with a
// source's mark and dead letters in the same transaction (storage.Append).
// It returns how many payloads were logged and how many were dropped as
// redelivered copies (dedup). Errors wrap source.ErrNotReady,
// source.ErrBackpressure (and storage.ErrQuotaExceeded) or
// source.ErrUnread when nothing was written.
func (n *Node) appendInput(ctx context.Context, tp string, payloads [][]byte, dedup bool, markKey string, mark []byte, dls []storage.DeadLetter) (kept, dropped int, err error) {
	if !n.ready.Load() || n.stopping.Load() {
		return 0, 0, fmt.Errorf("%w: %w", source.ErrNotReady, ErrNotReady)
	}
	if err := n.budgetErr(); err != nil {
		n.backpressure.Store(true)
		return 0, 0, fmt.Errorf("%w: %w", source.ErrBackpressure, err)
	}
	n.mu.RLock()
	routed := n.routed(tp)
	n.mu.RUnlock()
	if !routed {
		return 0, 0, fmt.Errorf("%s: %w", tp, source.ErrUnread)
	}
	size := 0
	for _, p := range payloads {
		size += len(p) + len(tp) + 4
	}
	arena := make([]byte, 0, size)
	recs := make([][]byte, len(payloads))
	for i, p := range payloads {
		off := len(arena)
		arena = runner.AppendEntry(arena, tp, p)
		recs[i] = arena[off:len(arena):len(arena)]
	}
	first, last, dropped, err := n.db.Append(ctx, &storage.Append{Log: LogMQTT, Recs: recs, Dedup: dedup,
		MarkKey: markKey, Mark: mark, DeadLetters: dls})
	if err != nil {
		if errors.Is(err, storage.ErrQuotaExceeded) {
			n.backpressure.Store(true)
			return 0, 0, fmt.Errorf("%w: %w", source.ErrBackpressure, err)
		}
		return 0, 0, fmt.Errorf("input log: %w", err)
	}
	n.backpressure.Store(false)
	if last >= first {
		n.setLogNext(LogMQTT, last)
	}
	return len(payloads) - dropped, dropped, nil
}

// stats returns the counters of source id.
func (s *srcState) statsOf(id string) *srcStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats == nil {
		s.stats = map[string]*srcStats{}
	}
	st := s.stats[id]
	if st == nil {
		st = &srcStats{}
		s.stats[id] = st
	}
	return st
}

// run runs src under id until ctx ends: its Writer starts at the mark
// committed under id; a failure is logged and Run called again after a
// backoff (1 s doubling to 1 min, back to 1 s after a minute of running).
func (n *Node) runSource(ctx context.Context, id, tp string, src source.Source) {
	st := n.src.statsOf(id)
	w := &srcWriter{n: n, id: id, topic: tp, st: st}
	log := n.log.With("component", "source", "source", id)
	backoff := time.Second
	for ctx.Err() == nil {
		pos, err := n.db.Mark(id)
		if err == nil {
			w.mu.Lock()
			w.pos = pos
			w.mu.Unlock()
			st.up.Store(true)
			start := time.Now()
			err = src.Run(ctx, w)
			st.up.Store(false)
			if time.Since(start) > time.Minute {
				backoff = time.Second
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Info("source finished")
			return
		}
		st.errors.Add(1)
		st.lastErr.Store(err.Error())
		st.failing.Store(true)
		log.Error("source failed; it runs again after a backoff", "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// startSource runs src under id (replacing a running one of that id).
func (n *Node) startSource(id, tp string, src source.Source) {
	n.stopSource(id)
	ctx, cancel := context.WithCancel(n.runCtx)
	rs := &runningSource{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rs.done)
		n.runSource(ctx, id, tp, src)
	}()
	n.src.mu.Lock()
	if n.src.running == nil {
		n.src.running = map[string]*runningSource{}
	}
	n.src.running[id] = rs
	n.src.mu.Unlock()
}

// stopSource stops the source id and waits for it.
func (n *Node) stopSource(id string) {
	n.src.mu.Lock()
	rs := n.src.running[id]
	delete(n.src.running, id)
	n.src.mu.Unlock()
	if rs != nil {
		rs.cancel()
		<-rs.done
	}
}

// tailID is the id of the file source of a pipeline's source.
func tailID(pipelineName, src string) string { return "file/" + pipelineName + "/" + src }

// startTails starts (or restarts, after an apply) the file sources of p.
// Before the node is ready it does nothing: Run calls startSources then.
func (n *Node) startTails(p *pipe) {
	if !n.ready.Load() {
		return
	}
	n.stopTails(p.name)
	for i := range p.spec.Spec.Sources {
		src := &p.spec.Spec.Sources[i]
		if src.File != nil {
			n.startSource(tailID(p.name, src.Name), inputTopic(p.name, src), source.NewTail(*src.File))
		}
	}
}

// stopTails stops the file sources of pipeline name.
func (n *Node) stopTails(name string) {
	prefix := tailID(name, "")
	n.src.mu.Lock()
	var ids []string
	for id := range n.src.running {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	n.src.mu.Unlock()
	for _, id := range ids {
		n.stopSource(id)
	}
}

// startSources starts the registered custom sources and every pipeline's
// file sources (Run, once ready).
func (n *Node) startSources() {
	for name, src := range n.src.custom {
		n.startSource("custom/"+name, source.Topic("custom", name), src)
	}
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	for _, p := range n.sortedPipes() {
		n.startTails(p)
	}
}

// stopSources stops every custom and file source (Run, when it drains).
func (n *Node) stopSources() {
	n.src.mu.Lock()
	ids := make([]string, 0, len(n.src.running))
	for id := range n.src.running {
		ids = append(ids, id)
	}
	n.src.mu.Unlock()
	for _, id := range ids {
		n.stopSource(id)
	}
}

// mqttSourceReserved reports (and counts) an MQTT message under the topics of
// http, file and custom sources; handleMQTT drops it.
func (n *Node) mqttSourceReserved(topic string) bool {
	if source.Reserved(topic) {
		n.bus.mqttRejected.Add(1)
		return true
	}
	return false
}

// sourceStatus adds a condition for every custom or file source that
// failed and has not written since.
func (n *Node) sourceStatus(st *Status) {
	n.src.mu.Lock()
	defer n.src.mu.Unlock()
	ids := make([]string, 0, len(n.src.stats))
	for id, s := range n.src.stats {
		if s.failing.Load() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		msg, _ := n.src.stats[id].lastErr.Load().(string)
		st.Conditions = append(st.Conditions, fmt.Sprintf("source %s: failing, run again with a backoff: %s", id, msg))
	}
}

// writeSourceMetrics writes the edged_source_* metrics.
func (n *Node) writeSourceMetrics(g, c func(name, help string, v float64, labels ...string)) {
	n.src.mu.Lock()
	ids := make([]string, 0, len(n.src.stats))
	for id := range n.src.stats {
		ids = append(ids, id)
	}
	n.src.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		st := n.src.statsOf(id)
		l := []string{"source", id}
		if !strings.HasPrefix(id, "http/") {
			g("edged_source_up", "1 while a custom or file source runs, 0 while it waits to run again after a failure.", b2f(st.up.Load()), l...)
		}
		c("edged_source_records_total", "Payloads a custom, file or http source logged durably.", float64(st.records.Load()), l...)
		c("edged_source_duplicates_total", "Lines of an http push dropped as copies of recent ones (the input log's dedup).", float64(st.duplicates.Load()), l...)
		c("edged_source_dead_letters_total", "Malformed lines of an http push, stored as dead letters.", float64(st.deadLetters.Load()), l...)
		c("edged_source_errors_total", "Failed writes and runs of a custom, file or http source (not ready, disk budget full, no reader, I/O).", float64(st.errors.Load()), l...)
	}
}
