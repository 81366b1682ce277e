package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgedio/edged/ingest/mqtt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgedio/edged/configs"
	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/mesh"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/sink"
	"github.com/edgedio/edged/storage"
)

// ErrNotReady is returned by Ingest before the node has opened its storage
// and restored its pipelines, and after it began to stop.
var ErrNotReady = errors.New("node: not ready")

// Message is one input message handed to Ingest by a source.
type Message struct {
	// Topic routes the message to the pipeline sources whose topic filters
	// match it.
	Topic string
	// Payload is the raw payload; it is logged as is and decoded once, by the
	// epoch that consumes it. Ingest does not retain it after returning.
	Payload []byte
	// Duplicate is the MQTT DUP flag (a redelivery). It is counted; the input
	// log's dedup drops the copy whatever the flag says (a publisher's retry
	// arrives without it).
	Duplicate bool
	// Once says that no copy of the message can come again: MQTT QoS 0 (not
	// a retained copy), which the protocol never redelivers. The input log
	// keeps it even when equal to a recent entry (two equal readings are
	// two readings) and leaves it out of its dedup window (storage
	// Append.Once). Other messages (QoS 1, HTTP pushes, which a client may
	// retry) are deduplicated.
	Once bool
}

// Option is a test seam or a rare knob of New.
type Option func(*Node)

// WithClock sets the clock of the epoch loops (default: the system clock).
func WithClock(c engine.Clock) Option { return func(n *Node) { n.clock = c } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(n *Node) { n.log = l } }

// WithStdout sets where stdout sinks write (default: os.Stdout).
func WithStdout(w io.Writer) Option { return func(n *Node) { n.stdout = w } }

// WithPublisher sets the Publisher of mqtt sinks. Without one, mqtt sink
// outputs stay in the spool and the sink reports the condition.
func WithPublisher(p sink.Publisher) Option { return func(n *Node) { n.pub = p } }

// WithInputFile makes the node append the lines of a JSON Lines file to the
// input log of the first pipeline's (by name) first source, once: the number
// of lines already appended is the log's record count, so a restart
// continues where the last run stopped without appending a line twice. The
// file source must be the only writer of that log.
func WithInputFile(path string) Option { return func(n *Node) { n.inputFile = path } }

// WithListener makes the API serve on l instead of listening on
// Config.API.Listen (tests).
func WithListener(l net.Listener) Option { return func(n *Node) { n.listener = l } }

// Node wires one gateway: the input log, one executor loop per pipeline, the
// sinks draining the output spool, and the HTTP API.
type Node struct {
	cfg       Config
	mesh      *mesh.Node // nil without a mesh: section (mesh.go)
	psync     *pipeSync  // the mesh's pipeline set; nil without a mesh (meshpipelines.go)
	ho        handover   // the state hand-over to this node as a new holder (handover.go)
	log       *slog.Logger
	clock     engine.Clock
	stdout    io.Writer
	stdoutMu  sync.Mutex
	pub       sink.Publisher
	pubImpl   *mqtt.Publisher // the publisher started by Run, closed at stop
	mq        *mqttState      // nil when MQTT is off
	inputFile string
	listener  net.Listener

	db       *storage.DB
	ready    atomic.Bool
	stopping atomic.Bool
	runCtx   context.Context
	filePipe string       // the pipeline whose first source reads the input file
	apiAddr  atomic.Value // string

	// mu guards pipes and sinks. swapMu serialises pipeline changes (apply,
	// delete, reload); it is taken before mu.
	swapMu sync.Mutex
	mu     sync.RWMutex
	pipes  map[string]*pipe
	sinks  map[string]*spoolSink
	sinkWG sync.WaitGroup
	// testSpoolAck replaces the spool acknowledgement in tests.
	testSpoolAck func(ctx context.Context, sink string, lazy bool, ids []string) (int, error)

	// uploaders drain the spools of sinks of type uplink (guarded by mu);
	// they run on upCtx, which stopAll cancels after the pipelines stopped.
	uploaders map[string]*upSink
	upCtx     context.Context
	upCancel  context.CancelFunc
	upWG      sync.WaitGroup

	nextMu  sync.Mutex
	nextOff map[string]uint64 // input log -> next offset

	ingestMsgs     atomic.Uint64
	ingestDup      atomic.Uint64
	ingestDropped  atomic.Uint64 // dedup
	ingestUnrouted atomic.Uint64
	ingestErrors   atomic.Uint64
	backpressure   atomic.Bool
	fileLines      atomic.Uint64
	fileDone       atomic.Bool
	sinkDropped    atomic.Uint64
	dlStored       atomic.Uint64
	truncating     atomic.Bool
	lastTruncate   atomic.Int64 // unix ms
	externalBytes  atomic.Int64 // file sinks and local uplink bytes in the budget
	uplinkFull     atomic.Value // string: an uplink sink back-pressuring, or

	bus  busState      // local-bus sensors (bus.go)
	src  srcState      // custom, file and http sources (source.go)
	dash dashState     // rate history for /api/v1/info and the dashboard (fleet.go)
	bf   backfillState // backfills and input-log retention (backfill.go)
}

// maybeTruncate truncates the input logs behind the slowest pipeline that
// reads each, in the background: every 10 s (each truncation rewrites a few
// pages, so flash wear sets the pace), and every second while input is
// back-pressured by the disk budget, so that freed space is seen at once. A
// log is never truncated past a committed position of any running pipeline.
func (n *Node) maybeTruncate() {
	now := time.Now().UnixMilli()
	every := int64(10_000)
	if n.backpressure.Load() {
		every = 1000
	}
	if now-n.lastTruncate.Load() < every || !n.truncating.CompareAndSwap(false, true) {
		return
	}
	n.lastTruncate.Store(now)
	low := map[string]uint64{}
	n.mu.RLock()
	for _, p := range n.pipes {
		for lg, pos := range p.r.Status().Replay { // a restart reads from there
			if v, ok := low[lg]; !ok || pos < v {
				low[lg] = pos
			}
		}
	}
	n.mu.RUnlock()
	n.backfillFloor(low)
	go func() {
		defer n.truncating.Store(false)
		for lg, pos := range low {
			if err := n.truncateRetained(lg, pos); err != nil {
				n.log.Warn("truncate input log", "log", lg, "err", err)
			}
		}
	}()
}

// New returns a node for cfg, which must be valid.
func New(cfg Config, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, clock: engine.SystemClock{}, stdout: os.Stdout,
		pipes: map[string]*pipe{}, sinks: map[string]*spoolSink{}, uploaders: map[string]*upSink{}, nextOff: map[string]uint64{}}
	for _, o := range opts {
		o(n)
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	return n, nil
}

// Ready reports whether storage is open and every pipeline is restored.
func (n *Node) Ready() bool { return n.ready.Load() }

// APIAddr returns the address the API listens on ("" before it does).
func (n *Node) APIAddr() string {
	s, _ := n.apiAddr.Load().(string)
	return s
}

// DB returns the node's storage (nil before Run opened it).
func (n *Node) DB() *storage.DB { return n.db }

// Run opens storage, restores and runs every pipeline, the sinks and the API
// until ctx ends, then drains: the running epochs finish, sinks deliver what
// is spooled (for up to ShutdownTimeout), and storage is closed. It returns
// an error when the node cannot start (every invalid pipeline is listed).
func (n *Node) Run(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("dataDir: %w", err)
	}
	so := n.cfg.StorageOptions(n.log)
	if n.cfg.Storage.QuotaBytes == 0 {
		so.QuotaBytes = defaultQuota(n.cfg.DataDir)
		n.log.Info("disk budget", "bytes", so.QuotaBytes, "why", "storage.quotaBytes unset: what edged stores now plus half the free space")
	}
	db, err := storage.Open(filepath.Join(n.cfg.DataDir, "edged.db"), so)
	if err != nil {
		return err
	}
	n.db = db
	defer db.Close()
	st, err := db.Stats()
	if err != nil {
		return err
	}
	for name, ls := range st.Log {
		n.nextOff[name] = ls.Next
	}
	specs, err := n.loadDir()
	if err != nil {
		return err
	}
	for _, ld := range specs {
		if name := ld.c.Plan.Name(); n.filePipe == "" || name < n.filePipe {
			n.filePipe = name
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.runCtx = runCtx
	n.upCtx, n.upCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer n.upCancel()

	var srv *http.Server
	srvDone := make(chan error, 1)
	if n.cfg.API.Listen != "" || n.listener != nil {
		if srv, err = n.startAPI(srvDone); err != nil {
			return err
		}
	}
	stopAPI := func() {
		if srv != nil {
			sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer c()
			srv.Shutdown(sctx)
		}
	}
	// The mesh starts before the pipelines (their runners ask it for their
	// partitions) and leaves after they stopped.
	stopMesh, err := n.startMesh(ctx)
	if err != nil {
		stopAPI()
		return err
	}
	defer stopMesh()

	var mqWG sync.WaitGroup
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	if n.cfg.mqttEnabled() {
		if err := n.startMQTT(brokerCtx, &mqWG); err != nil {
			stopAPI()
			return err
		}
	}
	stopMQTTBroker := func() {
		if n.pubImpl != nil {
			n.pubImpl.Close()
		}
		stopBroker()
		mqWG.Wait()
	}

	var errs []error
	for _, ld := range specs {
		if err := n.start(ld.c, ld.raw, ld.file); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		cancel()
		n.stopAll()
		stopAPI()
		stopMQTTBroker()
		return err
	}
	n.refreshBudget()
	go n.runBudget(runCtx)
	if err := n.resumeRetiring(); err != nil {
		n.log.Warn("resume retiring sinks", "err", err)
	}
	n.loadBackfills()
	n.ready.Store(true)
	n.startAllBus()
	n.startSources()
	n.log.Info("node ready", "pipelines", len(specs), "dataDir", n.cfg.DataDir, "api", n.APIAddr())

	var inWG sync.WaitGroup
	if n.inputFile != "" {
		inWG.Add(1)
		go func() {
			defer inWG.Done()
			if err := n.runInputFile(runCtx); err != nil && runCtx.Err() == nil {
				n.log.Error("input file", "file", n.inputFile, "err", err)
			}
		}()
	}

	// The MQTT source stops first, on its own context: it drains what it
	// queued into the log (Ingest still accepts) before the pipelines stop.
	srcCtx, stopSrc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrc()
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		if n.mq != nil {
			n.runMQTT(srcCtx)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		runErr = fmt.Errorf("api: %w", err)
	}
	n.log.Info("draining")
	stopSrc()
	<-srcDone
	n.stopAllBus()
	n.stopSources()
	n.stopping.Store(true)
	n.ready.Store(false)
	cancel()
	inWG.Wait()
	n.stopAll()
	stopAPI()
	stopMQTTBroker()
	return runErr
}

// ShutdownTimeout bounds the final delivery of spooled outputs at stop.
const ShutdownTimeout = 10 * time.Second

// stopAll stops the epoch loops (each finishes its epoch), then lets the sinks
// deliver what is spooled under ShutdownTimeout.
func (n *Node) stopAll() {
	n.stopBackfills()
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	n.mu.Lock()
	pipes := make([]*pipe, 0, len(n.pipes))
	for _, p := range n.pipes {
		pipes = append(pipes, p)
	}
	n.mu.Unlock()
	for _, p := range pipes {
		p.stop()
	}
	n.stopUploaders()
	n.sinkWG.Wait() // the sink loops ended with runCtx
	dctx, c := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer c()
	n.mu.RLock()
	sinks := make([]*spoolSink, 0, len(n.sinks))
	for _, s := range n.sinks {
		sinks = append(sinks, s)
	}
	n.mu.RUnlock()
	for _, s := range sinks {
		for {
			k, err := n.drainSink(dctx, s)
			if err != nil || k == 0 {
				break
			}
		}
		if err := s.finishAck(); err != nil {
			n.log.Warn("sink: acknowledge delivered outputs (they are delivered again)", "sink", s.name, "err", err)
		}
		s.mu.Lock()
		if s.w != nil {
			s.w.Close()
		}
		s.mu.Unlock()
	}
}

func (p *pipe) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

type loaded struct {
	c    *pipeline.Compiled
	raw  []byte
	file string
}

// loadDir loads and compiles every pipeline of the pipelines directory,
// seeding the default directory with the embedded examples. Every problem is
// reported.
func (n *Node) loadDir() ([]loaded, error) {
	dir := n.cfg.pipelinesDir()
	if n.cfg.PipelinesDir == "" {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := seedPipelines(dir, n.log); err != nil {
				return nil, err
			}
		}
	}
	return LoadPipelines(dir)
}

// seedPipelines writes the embedded example pipelines into dir. Every example
// compiles (pipeline.TestExamplePipelinesCompile checks it); one that does not
// is a build bug and stops the start.
func seedPipelines(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pipelinesDir: %w", err)
	}
	ents, err := fs.ReadDir(configs.Pipelines, "pipelines")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := fs.ReadFile(configs.Pipelines, "pipelines/"+e.Name())
		if err != nil {
			return err
		}
		name := e.Name()
		if _, err := compile(name, b); err != nil {
			return fmt.Errorf("BUG: embedded example pipeline %s does not compile: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("pipelinesDir: %w", err)
		}
	}
	return nil
}

// LoadPipelines parses and compiles every *.yaml and *.yml file of dir, in
// name order. It reports every invalid file and duplicate pipeline name.
func LoadPipelines(dir string) ([]loaded, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pipelinesDir: %w", err)
	}
	var out []loaded
	var errs []error
	seen := map[string]string{}
	for _, e := range ents {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		file := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := compile(file, raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[c.Plan.Name()]; dup {
			errs = append(errs, fmt.Errorf("%s: metadata.name: pipeline %q is already defined in %s", file, c.Plan.Name(), prev))
			continue
		}
		seen[c.Plan.Name()] = file
		out = append(out, loaded{c: c, raw: raw, file: file})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].c.Plan.Name() < out[j].c.Plan.Name() })
	if len(errs) == 0 {
		cs := make([]*pipeline.Compiled, len(out))
		for i := range out {
			cs[i] = out[i].c
		}
		if err := pipeline.CheckTables(cs); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// compile parses, validates and compiles one pipeline document.
func compile(file string, raw []byte) (*pipeline.Compiled, error) {
	return pipeline.ParseAndCompile(file, raw) // every problem of the file at once
}

// start creates (restoring from the last checkpoint) and starts the pipe of
// c, replacing a running pipe of the same name at its epoch boundary. The
// new version is built and its sinks are opened before the old one stops:
// if anything fails, the old one keeps running and the error names the
// problem.
func (n *Node) start(c *pipeline.Compiled, raw []byte, file string) error {
	name := c.Plan.Name()
	n.mu.RLock()
	old := n.pipes[name]
	n.mu.RUnlock()
	// Open the new version's sink writers first: a sink that cannot open
	// (a bad path) must not stop the running version.
	writers, err := n.openWriters(name, c.Spec)
	if err != nil {
		return &ApplyError{Err: err}
	}
	if old != nil {
		old.stop()
	}
	p, err := newPipe(n, c, raw, n.inputFile != "" && name == n.filePipe)
	if err != nil {
		closeWriters(writers)
		if old != nil {
			n.launch(old)
		}
		return fmt.Errorf("pipeline %q: %w", name, err)
	}
	p.file = file
	n.mu.Lock()
	n.pipes[name] = p
	n.mu.Unlock()
	if err := n.attachSinks(p, writers); err != nil {
		return err
	}
	n.launch(p)
	n.startBus(p)
	n.startTails(p)
	n.subsChanged()
	n.log.Info("pipeline started", "pipeline", name, "epoch", p.r.Epoch(), "partitions", p.r.Partitions())
	return nil
}

func (n *Node) launch(p *pipe) {
	ctx, cancel := context.WithCancel(n.runCtx)
	p.cancel, p.done = cancel, make(chan struct{})
	go p.run(ctx, n)
}

// remove stops and forgets a pipeline. Its spooled outputs that are not yet
// delivered are dropped (counted in edged_sink_dropped_total).
func (n *Node) remove(name string) bool {
	n.mu.RLock()
	p := n.pipes[name]
	n.mu.RUnlock()
	if p == nil {
		return false
	}
	n.stopBus(name)
	n.stopTails(name)
	p.stop()
	n.mu.Lock()
	delete(n.pipes, name)
	n.mu.Unlock()
	n.retire(p)
	n.subsChanged()
	return true
}

// openedWriter is a sink writer opened for a pipeline version before it
// replaces the running one.
type openedWriter struct {
	w    sink.Writer
	kind string
}

// openWriters opens the writers of every non-uplink sink of spec. On error
// nothing stays open and every sink at fault is named.
func (n *Node) openWriters(name string, spec *pipeline.Spec) (map[string]openedWriter, error) {
	out := map[string]openedWriter{}
	var errs []error
	for i := range spec.Spec.Sinks {
		sk := &spec.Spec.Sinks[i]
		if sk.Type == "uplink" {
			continue
		}
		w, kind, err := n.newWriter(name, sk)
		if err != nil {
			errs = append(errs, fmt.Errorf("pipeline %q sink %q: %w", name, sk.Name, err))
			continue
		}
		out[sk.Name] = openedWriter{w, kind}
	}
	if err := errors.Join(errs...); err != nil {
		closeWriters(out)
		return nil, err
	}
	return out, nil
}

func closeWriters(ws map[string]openedWriter) {
	for _, w := range ws {
		w.w.Close()
	}
}

// attachSinks installs the opened writers of p's sinks and starts the spool
// loops of sinks not seen before.
func (n *Node) attachSinks(p *pipe, writers map[string]openedWriter) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for i := range p.spec.Spec.Sinks {
		sk := &p.spec.Spec.Sinks[i]
		if sk.Type == "uplink" {
			if err := n.attachUplink(p.name, sk.Name); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %q sink %q: %w", p.name, sk.Name, err))
			}
			continue
		}
		ow, ok := writers[sk.Name]
		if !ok {
			continue
		}
		n.startSpoolSink(p.name, sk.Name, ow.w, ow.kind)
	}
	// Sinks the new version no longer has keep delivering what was spooled
	// for them, then go.
	for name, s := range n.sinks {
		if s.pipeline == p.name && !p.hasSink(s.sink, false) {
			n.retireSink(s)
			delete(n.sinks, name)
		}
	}
	return errors.Join(errs...)
}

// startSpoolSink installs w as the writer of a pipeline's sink, starting
// its delivery loop when it is new. n.mu is held.
func (n *Node) startSpoolSink(pipeline, sink string, w sink.Writer, kind string) *spoolSink {
	name := SinkName(pipeline, sink)
	s := n.sinks[name]
	if s == nil {
		ctx, cancel := context.WithCancel(n.runCtx)
		s = &spoolSink{name: name, pipeline: pipeline, sink: sink, wake: make(chan struct{}, 1), cancel: cancel}
		n.sinks[name] = s
		n.sinkWG.Add(1)
		go n.runSink(ctx, s)
	}
	s.mu.Lock()
	if s.w != nil {
		s.w.Close()
	}
	s.w, s.kind = w, kind
	s.mu.Unlock()
	s.notify()
	return s
}

// hasSink reports whether p's spec has a sink of that name (of type uplink
// when uplink is set, of another type otherwise).
func (p *pipe) hasSink(name string, uplink bool) bool {
	for i := range p.spec.Spec.Sinks {
		if sk := &p.spec.Spec.Sinks[i]; sk.Name == name && (sk.Type == "uplink") == uplink {
			return true
		}
	}
	return false
}

func (n *Node) newWriter(pipelineName string, sk *pipeline.Sink) (sink.Writer, string, error) {
	switch sk.Type {
	case "", "stdout":
		return sink.NewStdout(&n.stdoutMu, n.stdout), "stdout", nil
	case "log":
		return sink.NewLog(n.log, pipelineName, sk.Name), "log", nil
	case "file":
		path := sinkFilePath(n.cfg.outputDir(), pipelineName, sk)
		if err := sink.Confine(path, append([]string{n.cfg.outputDir(), n.cfg.DataDir}, n.cfg.Sinks.AllowedDirs...)...); err != nil {
			return nil, "", err
		}
		w, err := sink.OpenFile(path, n.cfg.Sinks.FileMaxBytes)
		return w, "file", err
	case "mqtt":
		topic, err := sink.ParseTopic(strings.NewReplacer("{pipeline}", pipelineName, "{sink}", sk.Name).Replace(sk.Topic))
		if err != nil {
			return nil, "", err
		}
		return sink.NewMQTT(n.pub, topic, byte(sk.QoS), sk.Retain), "mqtt", nil
	}
	return nil, "", fmt.Errorf("unknown sink type %q", sk.Type)
}

// runSink drains one spool until ctx ends: after every epoch that spooled
// for it, and every second (retries after a failed delivery).
func (n *Node) runSink(ctx context.Context, s *spoolSink) {
	defer n.sinkWG.Done()
	defer func() {
		if err := s.finishAck(); err != nil {
			n.log.Warn("sink: acknowledge delivered outputs (they are delivered again)", "sink", s.name, "err", err)
		}
	}()
	batch := max(n.cfg.Sinks.Batch, 1)
	for {
		k, err := n.drainSink(ctx, s)
		if err == nil && k >= batch {
			continue
		}
		t := time.NewTimer(retryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// drainSink delivers one batch of the spool of s and acknowledges what was
// delivered. It returns the number of entries delivered. A full batch (a
// sink draining a backlog) is acknowledged in the background: its commit
// overlaps the next batch's read and delivery, which skips the entries
// being acknowledged, instead of each batch waiting for an fsync.
func (n *Node) drainSink(ctx context.Context, s *spoolSink) (int, error) {
	batch := n.cfg.Sinks.Batch
	if batch <= 0 {
		batch = 1024
	}
	var errs []error
	var skip map[string]struct{}
	if a := s.ack; a != nil {
		select {
		case <-a.done:
			if err := s.finishAck(); err != nil {
				errs = append(errs, err)
			}
		default:
			skip = a.ids
		}
	}
	var ds []sink.Delivery
	err := n.db.SpoolRead(s.name, batch+len(skip), func(id string, data []byte) error {
		if _, ok := skip[id]; ok {
			return nil
		}
		ds = append(ds, sink.Delivery{ID: id, Data: append([]byte(nil), data...)})
		return nil
	})
	if err != nil || len(ds) == 0 {
		return 0, errors.Join(append(errs, err)...)
	}
	var ack []string
	s.mu.Lock()
	switch w := s.w; {
	case w == nil:
		// Its pipeline's new version is replacing the writer.
	default:
		if err := w.Deliver(ctx, ds); err != nil {
			errs = append(errs, err)
			s.errs++
			s.lastErr = err.Error()
			break
		}
		s.sent += uint64(len(ds))
		s.lastErr = ""
		for _, d := range ds {
			ack = append(ack, d.ID)
		}
	}
	s.mu.Unlock()
	if len(ack) > 0 {
		// One acknowledgement in flight at a time: the reads skip one
		// batch at most.
		if err := s.finishAck(); err != nil {
			errs = append(errs, err)
		}
		actx := context.WithoutCancel(ctx)
		switch {
		case len(ds) < batch && ctx.Err() == nil:
			// A sink that is not behind lets its acknowledgement ride
			// with the next epoch's commit (flash wear).
			if _, err := n.spoolAck(actx, s.name, true, ack); err != nil {
				errs = append(errs, err)
			}
		case ctx.Err() != nil:
			// A stopping node: no commit may come to ride with, and none
			// may be left running.
			if _, err := n.spoolAck(actx, s.name, false, ack); err != nil {
				errs = append(errs, err)
			}
		default:
			// A sink draining a backlog commits at once, in the
			// background, while it delivers the next batch.
			a := &pendingAck{ids: make(map[string]struct{}, len(ack)), done: make(chan struct{})}
			for _, id := range ack {
				a.ids[id] = struct{}{}
			}
			s.ack = a
			go func() {
				defer close(a.done)
				_, a.err = n.spoolAck(actx, s.name, false, ack)
			}()
		}
	}
	return len(ds), errors.Join(errs...)
}

// spoolAck acknowledges delivered entries of a sink's spool (lazy: riding
// with the next commit). A variable for the tests.
func (n *Node) spoolAck(ctx context.Context, sink string, lazy bool, ids []string) (int, error) {
	if n.testSpoolAck != nil {
		return n.testSpoolAck(ctx, sink, lazy, ids)
	}
	if lazy {
		return n.db.SpoolAckDeferred(ctx, sink, ids...)
	}
	return n.db.SpoolAck(ctx, sink, ids...)
}

// epochDone wakes the sinks of p after a commit, and truncates the input
// logs behind the slowest pipeline at most once a second.
func (n *Node) epochDone(p *pipe) {
	n.mu.RLock()
	for i := range p.spec.Spec.Sinks {
		name := SinkName(p.name, p.spec.Spec.Sinks[i].Name)
		if s := n.sinks[name]; s != nil {
			s.notify()
		}
		if s := n.uploaders[name]; s != nil {
			s.u.Notify()
		}
	}
	n.mu.RUnlock()
	// Outside the read lock: maybeTruncate takes it again, and a second
	// RLock waits behind a waiting Lock (stopAll), which waits for the first.
	n.maybeTruncate()
}

// logNext returns the offset the next record appended to an input log gets.
func (n *Node) logNext(name string) uint64 {
	n.nextMu.Lock()
	defer n.nextMu.Unlock()
	if v, ok := n.nextOff[name]; ok {
		return v
	}
	return 1
}

func (n *Node) setLogNext(name string, last uint64) {
	n.nextMu.Lock()
	if last+1 > n.nextOff[name] {
		n.nextOff[name] = last + 1
	}
	n.nextMu.Unlock()
	n.mu.RLock()
	for _, p := range n.pipes {
		p.r.Notify()
	}
	n.mu.RUnlock()
}

// Ingest appends msgs durably to the input log: every message that some
// pipeline source subscribes to is logged once (its topic and payload,
// runner.AppendEntry), however many pipelines read it; each pipeline keeps
// its own position. An entry equal to one among the log's recent entries is
// dropped as a redelivered copy (storage.AppendLogDedup), unless its
// message is Once. It returns nil only once every message is durable, so
// the caller may then acknowledge them; an error means none should be
// acknowledged (some may be logged: their redelivery is dropped by the
// dedup). At the disk quota it returns an error wrapping
// storage.ErrQuotaExceeded: stop reading and acknowledging, retry later.
// Messages no source subscribes to are counted and dropped. Safe for
// concurrent use.
func (n *Node) Ingest(ctx context.Context, msgs []Message) error {
	if !n.ready.Load() || n.stopping.Load() {
		return ErrNotReady
	}
	if err := n.budgetErr(); err != nil {
		n.backpressure.Store(true)
		n.ingestErrors.Add(1)
		return fmt.Errorf("ingest: %w", err)
	}
	// One pass routes every message and frames it into an arena (offsets
	// first, slices once the arena stopped growing). The scratch is reused
	// across calls, so a steady stream of batches allocates nothing here;
	// the storage copies what it keeps before AppendLogDedup returns.
	sc := ingestScratch.Get().(*ingestBuf)
	defer sc.release()
	n.mu.RLock()
	for i := range msgs {
		m := &msgs[i]
		if m.Duplicate {
			n.ingestDup.Add(1)
		}
		if !n.routed(m.Topic) {
			n.ingestUnrouted.Add(1)
			continue
		}
		off := len(sc.arena)
		sc.arena = runner.AppendEntry(sc.arena, m.Topic, m.Payload)
		sc.spans = append(sc.spans, ingestSpan{off, len(sc.arena)})
		sc.once = append(sc.once, m.Once)
	}
	n.mu.RUnlock()
	n.ingestMsgs.Add(uint64(len(msgs)))
	for _, sp := range sc.spans {
		sc.recs = append(sc.recs, sc.arena[sp.off:sp.end:sp.end])
	}
	var err error
	if len(sc.recs) > 0 {
		var last uint64
		var dropped int
		_, last, dropped, err = n.db.Append(ctx, &storage.Append{Log: LogMQTT, Recs: sc.recs, Once: sc.once, Dedup: true})
		if err == nil {
			n.ingestDropped.Add(uint64(dropped))
			n.setLogNext(LogMQTT, last)
		} else {
			err = fmt.Errorf("ingest: %w", err)
		}
	}
	n.backpressure.Store(errors.Is(err, storage.ErrQuotaExceeded))
	if err != nil {
		n.ingestErrors.Add(1)
	}
	return err
}

// routed reports whether some source of a loaded pipeline reads messages
// on topic. n.mu is held.
func (n *Node) routed(topic string) bool {
	for _, p := range n.pipes {
		for _, s := range p.sources {
			if s.log == LogMQTT && s.matches(topic) {
				return true
			}
		}
	}
	return false
}

type ingestSpan struct{ off, end int }

// ingestBuf is Ingest's reusable scratch.
type ingestBuf struct {
	recs  [][]byte
	once  []bool
	spans []ingestSpan
	arena []byte
}

// maxIngestScratch is the largest arena kept for reuse; a rare huge batch
// does not pin its memory.
const maxIngestScratch = 4 << 20

var ingestScratch = sync.Pool{New: func() any { return new(ingestBuf) }}

func (b *ingestBuf) release() {
	if cap(b.arena) > maxIngestScratch {
		return
	}
	clear(b.recs)
	b.recs, b.once, b.spans, b.arena = b.recs[:0], b.once[:0], b.spans[:0], b.arena[:0]
	ingestScratch.Put(b)
}
