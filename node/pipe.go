package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/ingest/mqtt"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/storage"
)

// pipe runs one pipeline: its executor and its epoch loop.
//
// Lock order: Node.mu, then pipe.mu.
type pipe struct {
	n    *Node
	name string
	spec *pipeline.Spec
	c    *pipeline.Compiled
	yaml []byte
	file string // the spec's file in the pipelines directory

	sources []*pipeSource

	cancel context.CancelFunc
	done   chan struct{}

	// mu is held for the whole of an epoch and by queries, so a query never
	// sees a half-applied epoch.
	mu        sync.Mutex
	x         *engine.Executor
	pendingDL []storage.DeadLetter
	jbuf      []byte
	lastTime  int64 // processing time of the last epoch run here, unix ms
	epochs    uint64
	decodeErr uint64
	opDL      uint64
	lastErr   string
	stats     []engine.StepStats // after the last epoch

	// snap is what /metrics reports, published at the end of every epoch, so
	// a scrape never waits for a running epoch (which holds mu).
	snapMu sync.Mutex
	snap   pipeSnap
}

// pipeSnap is a copy of a pipe's figures after its last epoch.
type pipeSnap struct {
	epoch     uint64
	lastTime  int64
	watermark int64
	backlog   []uint64 // per source, in p.sources order
	decodeErr uint64
	lastErr   string
	stats     []engine.StepStats
}

// publish copies the figures for /metrics. Call it with mu held.
func (p *pipe) publish() {
	s := pipeSnap{epoch: p.x.Epoch(), lastTime: p.lastTime, watermark: p.x.Watermark(),
		decodeErr: p.decodeErr, lastErr: p.lastErr, stats: p.stats}
	for _, src := range p.sources {
		s.backlog = append(s.backlog, src.backlog)
	}
	p.snapMu.Lock()
	p.snap = s
	p.snapMu.Unlock()
}

// snapshot returns the figures of the last epoch.
func (p *pipe) snapshot() pipeSnap {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	return p.snap
}

// pipeSource is one source of a pipe.
type pipeSource struct {
	name    string
	logName string // storage input log: "<pipeline>/<source>"
	tmpls   []*mqtt.TopicTemplate
	subs    []string // subscription filters of tmpls
	qos     byte
	// needTopic: a template captures fields, which decoding fills from the
	// topic Ingest logs with every payload (frameTopic).
	needTopic bool
	format    string
	json      *decode.JSONDecoder
	csvCfg    *decode.Config
	senml     mqtt.SenMLDecoder
	fields    fieldFill
	backlog   uint64 // records in the log after the committed position
}

// LogName returns the storage input log of a pipeline's source.
func LogName(pipelineName, source string) string { return pipelineName + "/" + source }

func newPipe(n *Node, c *pipeline.Compiled, raw []byte) (*pipe, error) {
	p := &pipe{n: n, name: c.Plan.Name(), spec: c.Spec, c: c, yaml: raw}
	for _, src := range c.Spec.Spec.Sources {
		ps := &pipeSource{name: src.Name, logName: LogName(p.name, src.Name), format: src.Format}
		if src.MQTT != nil {
			ps.qos = byte(src.MQTT.QoS)
			for i, t := range src.MQTT.Topics {
				tt, err := mqtt.ParseTopicTemplate(t)
				if err == nil {
					err = mqtt.ValidateFilter(tt.Filter())
				}
				if err != nil {
					return nil, fmt.Errorf("pipeline %q source %q: mqtt.topics[%d]: %w", p.name, src.Name, i, err)
				}
				ps.tmpls = append(ps.tmpls, tt)
				ps.subs = append(ps.subs, tt.Filter())
				if len(tt.Fields()) > 0 {
					ps.needTopic = true
				}
			}
		}
		if t := busTemplate(p.name, &src); t != nil {
			ps.tmpls = append(ps.tmpls, t) // matched by Ingest, never subscribed
		}
		cfg := c.Decoders[src.Name]
		ps.fields = newFieldFill(cfg)
		switch src.Format {
		case "csv", "senml", "raw":
			ps.csvCfg = &cfg
		default:
			d, err := decode.NewJSON(cfg)
			if err != nil {
				return nil, fmt.Errorf("pipeline %q source %q: %w", p.name, src.Name, err)
			}
			ps.json = d
		}
		p.sources = append(p.sources, ps)
	}
	x, err := engine.NewExecutor(c.Plan, p.execOptions())
	if err != nil {
		return nil, err
	}
	p.x = x
	p.stats = x.Stats()
	p.publish()
	return p, nil
}

// matches reports whether a topic feeds source s.
func (s *pipeSource) matches(topic string) bool {
	for _, t := range s.tmpls {
		if t.Match(topic, nil) {
			return true
		}
	}
	return false
}

// operatorDeadLetter is the executor's DeadLetter hook: the record is kept as
// JSON and stored with the epoch's commit.
func (p *pipe) operatorDeadLetter(step string, rec *engine.Record, s *engine.Schema, reason error) {
	p.opDL++
	p.jbuf = decode.AppendJSON(p.jbuf[:0], s, rec)
	p.pendingDL = append(p.pendingDL, storage.DeadLetter{Pipeline: p.name, Step: step,
		Payload: bytes.Clone(p.jbuf), Reason: reason.Error(), Time: p.n.clock.Now()})
}

// dlStore is the executor's StateStore: it stores the epoch's pending dead
// letters, then commits the epoch. A crash between the two re-runs the epoch
// and stores its dead letters again (at-least-once for dead letters; the
// epoch itself stays exactly-once).
type dlStore pipe

func (d *dlStore) Commit(ctx context.Context, c *engine.Commit) error {
	p := (*pipe)(d)
	if err := p.n.putDeadLetters(ctx, p.pendingDL); err != nil {
		return err
	}
	p.pendingDL = p.pendingDL[:0]
	return p.n.db.Commit(ctx, c)
}

func (d *dlStore) LastCheckpoint(pipeline string, partition int) (engine.Checkpoint, error) {
	return d.n.db.LastCheckpoint(pipeline, partition)
}

func (d *dlStore) Scan(pipeline string, partition int, namespace string, fn func(key, val []byte) error) error {
	return d.n.db.Scan(pipeline, partition, namespace, fn)
}

// run is the epoch loop. In clock mode every epoch runs at a processing time
// aligned to the interval (t = floor(now/interval)*interval), so that DStream
// windows fire on their boundaries. In virtual mode epochs run back to back
// while there is input, at time epoch*interval.
func (p *pipe) run(ctx context.Context) {
	defer close(p.done)
	iv := p.c.Interval.Milliseconds()
	ectx := context.WithoutCancel(ctx) // an epoch that started is finished
	for {
		var t int64
		if p.n.cfg.Epochs.Virtual {
			if !p.hasInput() {
				select {
				case <-ctx.Done():
					return
				case <-p.n.inputWake:
				case <-p.n.clock.After(50 * time.Millisecond):
				}
				continue
			}
			t = int64(p.x.Epoch()+1) * iv
		} else {
			now := p.n.clock.Now().UnixMilli()
			t = floorDiv(now, iv)*iv + iv
			if t <= p.lastTime {
				t = p.lastTime + iv
			}
			select {
			case <-ctx.Done():
				return
			case <-p.n.clock.After(time.Duration(t-now) * time.Millisecond):
			}
			if now := p.n.clock.Now().UnixMilli(); floorDiv(now, iv)*iv > t {
				t = floorDiv(now, iv) * iv // woke late: run at the current boundary
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := p.epoch(ectx, t); err != nil {
			p.n.log.Error("epoch failed", "pipeline", p.name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-p.n.clock.After(time.Second):
			}
		}
	}
}

// hasInput reports whether a virtual-time epoch should run: while an input
// file is still being appended, only when some source has a full epoch
// (Epochs.MaxRecords) of records after the executor's position, so that
// epoch boundaries depend on the input alone and a restarted run cuts the
// same epochs as an uninterrupted one; otherwise when any record is there.
func (p *pipe) hasInput() bool {
	full := p.n.inputFile != "" && !p.n.fileDone.Load()
	need := uint64(1)
	if full {
		need = uint64(p.n.maxRecords())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sources {
		if p.n.logNext(s.logName) >= max(p.x.Position(s.name), 1)+need {
			return true
		}
	}
	return false
}

// epoch reads the new input of every source from the log, decodes it once and
// runs (and commits) one epoch at processing time t.
func (p *pipe) epoch(ctx context.Context, t int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	maxRecs := p.n.maxRecords()
	decodeErrs := uint64(0)
	// A plan whose operators allow it gets the epoch's input a chunk at a
	// time (engine.Executor.Feed): memory is bounded by the chunk, not by
	// the input rate times the interval.
	chunked, feedRecs := p.x.Chunked(), p.n.feedRecords()
	fed := false
	for _, s := range p.sources {
		in := p.x.Input(s.name)
		from := max(p.x.Position(s.name), 1)
		next := from
		err := p.n.db.ReadLog(s.logName, from, maxRecs, func(off uint64, rec []byte) error {
			next = off + 1
			if len(bytes.TrimSpace(rec)) == 0 {
				return nil
			}
			topic, payload, framed := unframeTopic(rec)
			if framed {
				rec = payload
			}
			n0 := in.Len()
			var derr error
			switch {
			case s.json != nil:
				derr = s.json.Decode(rec, in)
			case s.format == "senml":
				derr = s.decodeSenML(rec, in, p.n.clock.Now())
			case s.format == "raw":
				derr = s.decodeRaw(rec, in)
			default:
				derr = decode.DecodeCSV(bytes.NewReader(rec), *s.csvCfg, in, func(_ int, raw []byte, err error) {
					p.decodeDL(s, raw, err)
					decodeErrs++
				})
			}
			if derr != nil {
				in.Recs = in.Recs[:n0]
				p.decodeDL(s, rec, derr)
				decodeErrs++
				return nil
			}
			if s.needTopic && framed && in.Len() > n0 {
				s.fillTopic(string(topic), in, n0)
			}
			for i := n0; i < in.Len(); i++ {
				in.Recs[i].Origin = engine.Origin{Source: s.name, Offset: off}
			}
			if chunked && in.Len() >= feedRecs {
				fed = true
				return p.x.Feed(ctx, t)
			}
			return nil
		})
		if err != nil {
			in.Reset(in.Schema)
			err = fmt.Errorf("read log %q: %w", s.logName, err)
			if fed {
				// Operators processed part of the epoch: start over from the
				// checkpoint.
				return p.rebuild(err)
			}
			p.pendingDL = p.pendingDL[:0]
			return err
		}
		p.x.SetPosition(s.name, next)
		if ln := p.n.logNext(s.logName); ln > next {
			s.backlog = ln - next
		} else {
			s.backlog = 0
		}
	}
	if _, err := p.x.RunEpochAt(ctx, t); err != nil {
		return p.rebuild(err)
	}
	p.decodeErr += decodeErrs
	p.lastTime = t
	p.epochs++
	p.lastErr = ""
	p.stats = p.x.Stats()
	p.publish()
	p.n.epochDone(p)
	if re := p.n.cfg.Epochs.RetainEpochs; re > 0 && p.epochs%uint64(re) == 0 {
		for _, s := range p.sources {
			if err := p.n.db.TruncateLog(ctx, s.logName, p.x.Position(s.name)); err != nil {
				p.n.log.Warn("truncate input log", "log", s.logName, "err", err)
			}
		}
	}
	return nil
}

// feedRecords is how many decoded records an epoch hands to the executor at
// a time when the plan is chunked (4096: about 1.5 MB of records of a few
// fields).
func (n *Node) feedRecords() int {
	if n.cfg.Epochs.FeedRecords > 0 {
		return n.cfg.Epochs.FeedRecords
	}
	return 4096
}

// rebuild handles an epoch that failed after the executor started on it: its
// operators' in-memory state may be ahead of the store, so they are rebuilt
// (a fresh plan: operators hold state) from the last checkpoint. It returns
// err, joined with a rebuild error if any. Call it with mu held.
func (p *pipe) rebuild(err error) error {
	p.lastErr = err.Error()
	p.pendingDL = p.pendingDL[:0]
	c, rerr := pipeline.Compile(p.c.Spec)
	if rerr == nil {
		p.c = c
		var x *engine.Executor
		if x, rerr = engine.NewExecutor(c.Plan, p.execOptions()); rerr == nil {
			p.x = x
		}
	}
	if rerr != nil {
		err = errors.Join(err, rerr)
	}
	p.publish()
	return err
}

func (p *pipe) execOptions() engine.Options {
	return engine.Options{Store: (*dlStore)(p), Clock: p.n.clock, Interval: p.c.Interval,
		Encode: decode.AppendJSON, DeadLetter: p.operatorDeadLetter, Logger: p.n.log}
}

func (p *pipe) decodeDL(s *pipeSource, raw []byte, err error) {
	p.pendingDL = append(p.pendingDL, storage.DeadLetter{Pipeline: p.name, Source: s.name,
		Payload: bytes.Clone(raw), Reason: err.Error(), Time: p.n.clock.Now()})
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (n *Node) maxRecords() int {
	if n.cfg.Epochs.MaxRecords > 0 {
		return n.cfg.Epochs.MaxRecords
	}
	return 65536
}
