package node

import (
	"time"

	"context"
	"fmt"
	"github.com/edgedio/edged/internal/topic"
	"strings"
	"sync"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
)

// Input logs. Every MQTT message (and local-bus reading) that some pipeline
// source subscribes to is logged once, in LogMQTT, however many pipelines
// read it; each pipeline keeps its own position in it. An input file
// (WithInputFile) is logged in LogFile and read by the first pipeline's
// first source.
const (
	LogMQTT = "mqtt"
	LogFile = "file"
)

// ReplayLog is the input log of dead letters replayed to one pipeline: its
// sources read it beside their usual log.
func ReplayLog(pipeline string) string { return "replay/" + pipeline }

// pipe is one loaded pipeline: its spec and the runner that executes it.
// The node keeps what it needs for routing (topic templates), sinks and the
// API; everything per epoch lives in the runner.
type pipe struct {
	name string
	spec *pipeline.Spec
	c    *pipeline.Compiled
	yaml []byte
	file string // the spec's file in the pipelines directory

	sources []*pipeSource
	r       *runner.Runner

	cancel context.CancelFunc
	done   chan struct{}
}

// pipeSource is one source of a pipe: its subscription and its decoder.
type pipeSource struct {
	name  string
	log   string // the input log it reads
	tmpls []*topic.Template
	subs  []string // subscription filters of tmpls
	qos   byte
	dec   decode.Decoder
	tbuf  []byte

	// seen keeps matches' answers per topic (up to maxSeenTopics): Ingest
	// asks for every message, and a sensor's messages share their topic.
	seenMu sync.RWMutex
	seen   map[string]bool
}

// maxSeenTopics bounds pipeSource.seen; topics past it are matched each time.
const maxSeenTopics = 4096

// newPipe builds the sources and the runner of c (restoring it from its
// checkpoint). fileInput makes the first source read the input file's log.
func newPipe(n *Node, c *pipeline.Compiled, raw []byte, fileInput bool) (*pipe, error) {
	p := &pipe{name: c.Plan.Name(), spec: c.Spec, c: c, yaml: raw}
	var srcs []runner.Source
	for i := range c.Spec.Spec.Sources {
		if err := n.checkCustom(&c.Spec.Spec.Sources[i]); err != nil {
			return nil, fmt.Errorf("pipeline %q %w", p.name, err)
		}
	}
	var err error
	if p.sources, srcs, err = pipeSources(p.name, c, fileInput); err != nil {
		return nil, err
	}
	up, err := n.upgradePipeline(c, srcs, fileInput)
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.name, err)
	}
	srcs = append(up, srcs...) // the older input first
	r, err := runner.New(runner.Config{Compiled: c, Sources: srcs, Partitions: n.cfg.Epochs.Partitions,
		Owner: n.ownership(), StandbyHold: n.standbyHold(), Log: nodeLog{n}, Store: n.db, Clock: n.clock, Logger: n.log, Encode: decode.AppendJSON,
		MaxRecords: n.maxRecords(), FeedRecords: n.cfg.Epochs.FeedRecords, MaxOutputs: n.cfg.Epochs.MaxOutputs, Virtual: n.cfg.Epochs.Virtual,
		InputOpen:  func() bool { return n.inputFile != "" && !n.fileDone.Load() },
		ArrivalCut: n.arrivalCut(), Committed: func() { n.epochDone(p) }, StateEvery: n.stateEvery()})
	if err != nil {
		return nil, err
	}
	p.r = r
	return p, nil
}

// nodeLog is the runner's view of the node's input logs.
type nodeLog struct{ n *Node }

func (l nodeLog) ReadLogEntries(log string, from uint64, max int, fn func(off uint64, appended int64, rec []byte) error) error {
	return l.n.db.ReadLogEntries(log, from, max, fn)
}

func (l nodeLog) LogNext(log string) uint64 { return l.n.logNext(log) }

// LogSettled implements runner.LogSettler (epochs.cut: arrival).
func (l nodeLog) LogSettled(t int64) { l.n.db.LogSettled(t) }

// matches reports whether a topic feeds source s. Safe for concurrent use.
func (s *pipeSource) matches(topic string) bool {
	s.seenMu.RLock()
	ok, known := s.seen[topic]
	s.seenMu.RUnlock()
	if known {
		return ok
	}
	ok = s.matchTemplates(topic)
	s.seenMu.Lock()
	if len(s.seen) < maxSeenTopics {
		if s.seen == nil {
			s.seen = make(map[string]bool)
		}
		// A copy: the topic may be sliced from a reader's buffer.
		s.seen[strings.Clone(topic)] = ok
	}
	s.seenMu.Unlock()
	return ok
}

// matchTemplates reports whether one of s's templates matches topic.
func (s *pipeSource) matchTemplates(topic string) bool {
	for _, t := range s.tmpls {
		if t.Match(topic, nil) {
			return true
		}
	}
	return false
}

// Decode implements runner.Decoder: every payload format goes through the
// one decoder of engine/decode, as in batch mode.
func (s *pipeSource) Decode(in *engine.Batch, m runner.Input, _ func(raw []byte, err error)) error {
	s.tbuf = append(s.tbuf[:0], m.Topic...)
	return s.dec.Decode(in, decode.Input{Payload: m.Payload, Topic: s.tbuf, Received: m.Received})
}

// run runs the pipe's runner until ctx ends.
func (p *pipe) run(ctx context.Context, n *Node) {
	defer close(p.done)
	if err := p.r.Run(ctx); err != nil {
		n.log.Error("pipeline stopped", "pipeline", p.name, "err", err)
	}
}

// stateEvery is runner.Config.StateEvery (epochs.stateEvery).
func (n *Node) stateEvery() time.Duration {
	if n.cfg.Epochs.StateEvery == 0 {
		return 10 * time.Second
	}
	return n.cfg.Epochs.StateEvery
}

func (n *Node) maxRecords() int {
	if n.cfg.Epochs.MaxRecords > 0 {
		return n.cfg.Epochs.MaxRecords
	}
	return 65536
}

// pipeSources builds the sources of pipeline name (compiled as c, maybe
// under another name: a backfill reads the live pipeline's entries): each
// reads the shared log (the input file's log for the first source when
// fileInput) and its dead letters replayed to the pipeline (ReplayLog).
func pipeSources(name string, c *pipeline.Compiled, fileInput bool) ([]*pipeSource, []runner.Source, error) {
	var out []*pipeSource
	var srcs []runner.Source
	for i, src := range c.Spec.Spec.Sources {
		ps := &pipeSource{name: src.Name, log: LogMQTT}
		if fileInput && i == 0 {
			ps.log = LogFile
		}
		if src.MQTT != nil {
			ps.qos = byte(src.MQTT.QoS)
			for i, t := range src.MQTT.Topics {
				tt, err := topic.ParseTemplate(t)
				if err == nil {
					err = topic.ValidateFilter(tt.Filter())
				}
				if err != nil {
					return nil, nil, fmt.Errorf("pipeline %q source %q: mqtt.topics[%d]: %w", name, src.Name, i, err)
				}
				ps.tmpls = append(ps.tmpls, tt)
				ps.subs = append(ps.subs, tt.Filter())
			}
		}
		if t := busTemplate(name, &src); t != nil {
			ps.tmpls = append(ps.tmpls, t) // matched by Ingest, never subscribed
		}
		if t := inputTemplate(name, &src); t != nil {
			ps.tmpls = append(ps.tmpls, t) // http, file, custom (source.go)
		}
		d, err := decode.New(c.Decoders[src.Name])
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %q source %q: %w", name, src.Name, err)
		}
		ps.dec = d
		out = append(out, ps)
		rs := runner.Source{Name: src.Name, Log: ps.log, Decoder: ps}
		if ps.log == LogMQTT {
			rs.Match = ps.matches
		}
		srcs = append(srcs, rs)
		rs.Log = ReplayLog(name)
		srcs = append(srcs, rs)
	}
	return out, srcs, nil
}

// arrivalCut reports whether runners cut epochs by arrival time
// (epochs.cut): only on the system clock, the one the log stamps entries
// with.
func (n *Node) arrivalCut() bool {
	_, sys := n.clock.(engine.SystemClock)
	return sys && n.cfg.Epochs.Cut != "read"
}
