package node

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/runner"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/uplink"
)

// ReplayDeadLetters feeds the payloads of the dead letters matching f (and
// ids, when given) back into their source's input log and deletes them.
// Dead letters without a source (records an operator rejected, stored as
// JSON of the step's input) or whose pipeline or source no longer exists are
// skipped and counted.
func (n *Node) ReplayDeadLetters(ctx context.Context, f storage.DeadLetterFilter, limit int, ids []uint64) (ReplayResult, error) {
	var res ReplayResult
	dls, err := n.db.ListDeadLetters(f, limit)
	if err != nil {
		return res, err
	}
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	reasons := map[string]int{}
	recs := map[string][][]byte{}
	var del []uint64
	for _, d := range dls {
		if len(want) > 0 && !want[d.ID] {
			continue
		}
		if d.Step != "" {
			reasons["rejected by a step (not replayable into a source)"]++
			continue
		}
		// The message goes back to every pipeline that rejected it, and to
		// no other: each has a replay log of its own, read like its input.
		replayed := 0
		for _, name := range d.Pipelines {
			if n.pipeByName(name) == nil {
				continue
			}
			var e []byte
			if d.Log == LogFile && d.Topic == "" {
				e = append(e, d.Payload...)
			} else {
				e = runner.AppendEntry(nil, d.Topic, d.Payload)
			}
			recs[ReplayLog(name)] = append(recs[ReplayLog(name)], e)
			replayed++
		}
		if replayed == 0 {
			reasons["pipeline no longer exists"]++
			continue
		}
		del = append(del, d.ID)
	}
	if len(del) > 0 {
		k, last, err := n.db.ReplayDeadLetters(ctx, recs, del)
		if err != nil {
			return res, err
		}
		for lg, off := range last {
			n.setLogNext(lg, off)
		}
		res.Replayed += k
	}
	for r, k := range reasons {
		res.Skipped += k
		res.Reasons = append(res.Reasons, fmt.Sprintf("%d: %s", k, r))
	}
	sort.Strings(res.Reasons)
	return res, nil
}

// Status is the /api/v1/status document.
type Status struct {
	Ready     bool           `json:"ready"`
	DataDir   string         `json:"dataDir"`
	Pipelines []PipelineInfo `json:"pipelines"`
	Storage   StorageStatus  `json:"storage"`
	Sinks     []SinkStatus   `json:"sinks"`
	Ingest    IngestStatus   `json:"ingest"`
	MQTT      MQTTStatus     `json:"mqtt"`
	// Bus is the state of every local-bus sensor (bus.go).
	Bus []bus.SensorStatus `json:"bus,omitempty"`
	// Uplink is the status of the uploader of each sink of type uplink.
	Uplink map[string]uplink.Status `json:"uplink"`
	// Conditions are human-readable status lines about anything abnormal.
	Conditions []string `json:"conditions"`
	// Mesh is this node's view of its site's mesh; absent without one.
	Mesh *MeshStatus `json:"mesh,omitempty"`
}

// StorageStatus summarizes storage.Stats.
type StorageStatus struct {
	Path               string  `json:"path"`
	FileBytes          int64   `json:"fileBytes"`
	UsedBytes          int64   `json:"usedBytes"`
	QuotaBytes         int64   `json:"quotaBytes"`
	QuotaExceeded      bool    `json:"quotaExceeded"`
	Commits            uint64  `json:"commits"`
	BytesWritten       int64   `json:"bytesWritten"`
	WriteAmplification float64 `json:"writeAmplification"`
	DeadLetters        uint64  `json:"deadLetters"`
}

// SinkStatus is one spool and its delivery.
type SinkStatus struct {
	Name      string `json:"name"` // pipeline/sink
	Pipeline  string `json:"pipeline"`
	Sink      string `json:"sink"`
	Type      string `json:"type"`
	Depth     uint64 `json:"spoolDepth"`
	Delivered uint64 `json:"delivered"`
	Errors    uint64 `json:"errors"`
	LastError string `json:"lastError,omitempty"`
}

// IngestStatus counts Ingest and the input file.
type IngestStatus struct {
	Messages       uint64 `json:"messages"`
	DuplicateFlag  uint64 `json:"duplicateFlag"`
	DedupDropped   uint64 `json:"dedupDropped"`
	Unrouted       uint64 `json:"unrouted"`
	Errors         uint64 `json:"errors"`
	Backpressure   bool   `json:"backpressure"`
	InputFile      string `json:"inputFile,omitempty"`
	InputFileLines uint64 `json:"inputFileLines,omitempty"`
	InputFileDone  bool   `json:"inputFileDone,omitempty"`
}

// Status returns the node's status.
func (n *Node) Status() (Status, error) {
	st := Status{Ready: n.Ready(), DataDir: n.cfg.DataDir, Pipelines: []PipelineInfo{}, Sinks: []SinkStatus{}, Conditions: []string{}}
	n.meshStatus(&st)
	for _, p := range n.sortedPipes() {
		pi := n.pipeInfo(p)
		st.Pipelines = append(st.Pipelines, pi)
		if pi.LastError != "" {
			st.Conditions = append(st.Conditions, fmt.Sprintf("pipeline %s: last epoch failed: %s", pi.Name, pi.LastError))
		}
		for _, s := range p.r.Status().Steps {
			if s.Unmatched > 0 {
				st.Conditions = append(st.Conditions, fmt.Sprintf("pipeline %s: step %s dropped %d records whose key has no row in its table (an inner join; add the keys to the table, or set enrich.left: true to keep them)", pi.Name, s.Step, s.Unmatched))
			}
		}
	}
	ds, err := n.db.Stats()
	if err != nil {
		return st, err
	}
	st.Storage = StorageStatus{Path: ds.Path, FileBytes: ds.FileBytes, UsedBytes: ds.UsedBytes,
		QuotaBytes: ds.QuotaBytes, QuotaExceeded: ds.QuotaExceeded, Commits: ds.Commits,
		BytesWritten: ds.BytesWritten, WriteAmplification: ds.WriteAmplification(), DeadLetters: ds.DeadLetters}
	n.mu.RLock()
	for _, s := range n.sinks {
		s.mu.Lock()
		ss := SinkStatus{Name: s.name, Pipeline: s.pipeline, Sink: s.sink, Type: s.kind, Depth: ds.Spool[s.name].Depth,
			Delivered: s.sent, Errors: s.errs, LastError: s.lastErr}
		s.mu.Unlock()
		st.Sinks = append(st.Sinks, ss)
		if ss.LastError != "" {
			st.Conditions = append(st.Conditions, fmt.Sprintf("sink %s: delivery failing (%d outputs spooled): %s", s.name, ss.Depth, ss.LastError))
		}
	}
	n.mu.RUnlock()
	n.uplinkSinkStatus(&st)
	sort.Slice(st.Sinks, func(i, j int) bool { return st.Sinks[i].Name < st.Sinks[j].Name })
	st.Ingest = IngestStatus{Messages: n.ingestMsgs.Load(), DuplicateFlag: n.ingestDup.Load(),
		DedupDropped: n.ingestDropped.Load(), Unrouted: n.ingestUnrouted.Load(), Errors: n.ingestErrors.Load(),
		Backpressure: n.backpressure.Load() || ds.QuotaExceeded, InputFile: n.inputFile,
		InputFileLines: n.fileLines.Load(), InputFileDone: n.fileDone.Load()}
	st.MQTT = n.MQTTStatus()
	st.Conditions = append(st.Conditions, st.MQTT.conditions()...)
	n.busStatus(&st)
	n.sourceStatus(&st)
	if st.Ingest.Backpressure {
		st.Conditions = append(st.Conditions, fmt.Sprintf("back-pressure: disk quota reached (%d of %d bytes used): input is not acknowledged until sinks drain the spool and the log is truncated", ds.UsedBytes, ds.QuotaBytes))
	}
	return st, nil
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := n.Status()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// promWriter writes the Prometheus text exposition format. Samples are
// grouped by family (one HELP, one TYPE, then every sample of the family, as
// strict parsers require) in the order families first appear; flush writes
// them.
type promWriter struct {
	w        *bufio.Writer
	families map[string]*promFamily
	order    []*promFamily
	cur      *promFamily
}

type promFamily struct {
	name, typ, help string
	buf             []byte
}

func (p *promWriter) metric(name, typ, help string) {
	if p.families == nil {
		p.families = map[string]*promFamily{}
	}
	f := p.families[name]
	if f == nil {
		f = &promFamily{name: name, typ: typ, help: help}
		p.families[name] = f
		p.order = append(p.order, f)
	}
	p.cur = f
}

// sample adds one sample to the family of the last metric call; labels
// alternate name and value.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	b := p.cur.buf
	b = append(b, name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, `="`...)
			b = append(b, escapeLabel(labels[i+1])...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	p.cur.buf = append(b, '\n')
}

// flush writes the families.
func (p *promWriter) flush() {
	for _, f := range p.order {
		fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		p.w.Write(f.buf)
	}
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (n *Node) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	n.WriteMetrics(bw)
}

// WriteMetrics writes every metric in the Prometheus text format.
func (n *Node) WriteMetrics(bw *bufio.Writer) {
	pw := &promWriter{w: bw}
	defer pw.flush()
	g := func(name, help string, v float64, labels ...string) {
		pw.metric(name, "gauge", help)
		pw.sample(name, v, labels...)
	}
	c := func(name, help string, v float64, labels ...string) {
		pw.metric(name, "counter", help)
		pw.sample(name, v, labels...)
	}
	g("edged_ready", "1 when storage is open and every pipeline restored.", b2f(n.Ready()))
	type stepRow struct {
		pipeline string
		st       engine.StepStats
	}
	var steps []stepRow
	now := n.clock.Now().UnixMilli()
	for _, p := range n.sortedPipes() {
		sn := p.r.Status() // never waits for a running epoch
		g("edged_pipeline_epoch", "Last committed epoch.", float64(sn.Epoch), "pipeline", p.name)
		lag := 0.0
		if sn.LastTime > 0 {
			lag = float64(now-sn.LastTime) / 1000
		}
		g("edged_pipeline_epoch_lag_seconds", "Processing time since the last epoch ran (0 before the first).", lag, "pipeline", p.name)
		if wm := sn.Watermark; wm != engine.NoWatermark && wm != engine.EndOfTime {
			g("edged_pipeline_watermark_seconds", "Event-time watermark (unix seconds).", float64(wm)/1000, "pipeline", p.name)
		}
		g("edged_pipeline_partitions_held", "Partitions of the pipeline this node runs.", float64(len(sn.Held)), "pipeline", p.name)
		for _, s := range p.sources {
			g("edged_pipeline_input_backlog_records", "Input-log records after the committed position.", float64(sn.Backlog[s.log]), "pipeline", p.name, "source", s.name)
		}
		c("edged_pipeline_decode_errors_total", "Payloads that did not decode (dead-lettered).", float64(sn.DecodeErrors), "pipeline", p.name)
		g("edged_pipeline_healthy", "0 when the last epoch failed.", b2f(sn.LastError == ""), "pipeline", p.name)
		for _, s := range sn.Steps {
			steps = append(steps, stepRow{p.name, s})
		}
	}
	for _, m := range []struct {
		name, help string
		get        func(engine.StepStats) uint64
	}{
		{"edged_step_records_in_total", "Records received by a step.", func(s engine.StepStats) uint64 { return s.In }},
		{"edged_step_records_out_total", "Records emitted by a step.", func(s engine.StepStats) uint64 { return s.Out }},
		{"edged_step_records_late_total", "Records dropped as late.", func(s engine.StepStats) uint64 { return s.Late }},
		{"edged_step_records_invalid_total", "Records rejected (dead-lettered) by a step.", func(s engine.StepStats) uint64 { return s.Invalid }},
		{"edged_step_records_duplicate_total", "Records dropped as duplicates.", func(s engine.StepStats) uint64 { return s.Duplicates }},
		{"edged_step_records_unmatched_total", "Records an inner join (enrich) dropped because no table row matched.", func(s engine.StepStats) uint64 { return s.Unmatched }},
	} {
		for _, s := range steps {
			c(m.name, m.help, float64(m.get(s.st)), "pipeline", s.pipeline, "step", s.st.Step)
		}
	}
	for _, s := range steps {
		g("edged_step_state_rows", "Live state entries of a step.", float64(s.st.StateRows), "pipeline", s.pipeline, "step", s.st.Step)
	}
	ds, err := n.db.Stats()
	if err == nil {
		c("edged_storage_bytes_written_total", "Bytes bbolt wrote since start (pages + meta pages).", float64(ds.BytesWritten))
		kinds := map[string]bool{"log": true, "epoch": true, "spool-ack": true, "log-truncate": true, "dead-letter": true}
		for k := range ds.BytesWrittenBy {
			kinds[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			c("edged_storage_bytes_written_by_kind_total", "Bytes bbolt wrote since start, by what the transactions wrote (log, epoch, spool-ack, log-truncate, dead-letter).", float64(ds.BytesWrittenBy[k]), "kind", k)
		}
		c("edged_storage_proc_write_bytes_total", "/proc/self/io write_bytes of the process.", float64(ds.ProcWriteBytes))
		c("edged_storage_raw_bytes_appended_total", "Payload bytes appended to input logs since start.", float64(ds.RawBytesAppended))
		c("edged_storage_records_appended_total", "Records appended to input logs since start.", float64(ds.RecordsAppended))
		c("edged_storage_commits_total", "Write transactions (fsyncs) since start.", float64(ds.Commits))
		c("edged_storage_dedup_dropped_total", "Input records dropped as redelivered duplicates.", float64(ds.DedupDropped))
		c("edged_input_log_retained_dropped_total", "Retained input-log entries (inputLog) dropped early to make room under the disk budget.", float64(n.bf.retainDropped.Load()))
		c("edged_storage_log_reads_total", "Input-log reads since start, by where they read: memory (the log's in-memory tail) or file.", float64(ds.Tail.Reads), "from", "memory")
		c("edged_storage_log_reads_total", "Input-log reads since start, by where they read: memory (the log's in-memory tail) or file.", float64(ds.Tail.Misses), "from", "file")
		g("edged_storage_file_bytes", "Size of the database file.", float64(ds.FileBytes))
		g("edged_storage_used_bytes", "Bytes counted against the quota.", float64(ds.UsedBytes))
		g("edged_storage_quota_bytes", "Disk quota (0: none).", float64(ds.QuotaBytes))
		wa, perM := 0.0, 0.0 // 0 until input arrives
		if ds.RawBytesAppended > 0 {
			wa = ds.WriteAmplification()
		}
		if ds.RecordsAppended > 0 {
			perM = ds.BytesPerMillionRecords
		}
		g("edged_storage_bytes_written_per_raw_byte", "Write amplification (flash wear): bytes written per payload byte (0 before input).", wa)
		g("edged_storage_bytes_written_per_million_records", "Flash wear: bytes written per million input records since start (0 before input; high at low rates, where each commit carries few records; storage.group* settings trade latency for writes).", perM)
		logs := map[string]bool{}
		for k := range ds.Log {
			logs[k] = true
		}
		for _, p := range n.sortedPipes() {
			for _, s := range p.sources {
				logs[s.log] = true
			}
			logs[ReplayLog(p.name)] = true
		}
		for _, k := range slices.Sorted(maps.Keys(logs)) {
			g("edged_input_log_records", "Records retained in an input log.", float64(ds.Log[k].Records), "log", k)
		}
		// Every sink and pipeline has its series from start-up, at zero.
		spools := map[string]bool{}
		for k := range ds.Spool {
			spools[k] = true
		}
		dls := map[string]bool{}
		for k := range ds.DeadLettersByPipeline {
			dls[k] = true
		}
		n.mu.RLock()
		for k := range n.sinks {
			spools[k] = true
		}
		n.mu.RUnlock()
		for _, p := range n.sortedPipes() {
			dls[p.name] = true
		}
		for _, k := range slices.Sorted(maps.Keys(spools)) {
			g("edged_sink_spool_depth", "Outputs spooled and not yet delivered.", float64(ds.Spool[k].Depth), "sink", k)
		}
		for _, k := range slices.Sorted(maps.Keys(spools)) {
			g("edged_sink_spool_bytes", "Bytes of spooled outputs.", float64(ds.Spool[k].Bytes), "sink", k)
		}
		for _, k := range slices.Sorted(maps.Keys(dls)) {
			g("edged_dead_letters", "Dead letters stored.", float64(ds.DeadLettersByPipeline[k]), "pipeline", k)
		}
		c("edged_dead_letters_dropped_total", "Oldest dead letters dropped by the store's bound.", float64(ds.DeadLettersDropped))
	}
	c("edged_dead_letters_stored_total", "Dead letters stored since start.", float64(n.dlStored.Load()))
	g("edged_quota_backpressure", "1 while input is back-pressured by the disk quota.", b2f(n.backpressure.Load() || (err == nil && ds.QuotaExceeded)))
	n.mu.RLock()
	names := make([]string, 0, len(n.sinks))
	for k := range n.sinks {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		s := n.sinks[k]
		s.mu.Lock()
		c("edged_sink_delivered_total", "Outputs delivered by a sink.", float64(s.sent), "pipeline", s.pipeline, "sink", s.sink)
		c("edged_sink_errors_total", "Failed delivery rounds of a sink.", float64(s.errs), "pipeline", s.pipeline, "sink", s.sink)
		g("edged_sink_failing", "1 while the last delivery of a sink failed.", b2f(s.lastErr != ""), "pipeline", s.pipeline, "sink", s.sink)
		s.mu.Unlock()
	}
	n.mu.RUnlock()
	n.writeUplinkMetrics(g, c)
	c("edged_sink_dropped_total", "Spooled outputs of deleted pipelines dropped.", float64(n.sinkDropped.Load()))
	c("edged_ingest_messages_total", "Messages handed to Ingest.", float64(n.ingestMsgs.Load()))
	c("edged_ingest_duplicate_flag_total", "Messages with the MQTT DUP flag.", float64(n.ingestDup.Load()))
	c("edged_ingest_dedup_dropped_total", "Messages dropped by the input-log dedup.", float64(n.ingestDropped.Load()))
	c("edged_ingest_unrouted_total", "Messages no pipeline source subscribes to.", float64(n.ingestUnrouted.Load()))
	c("edged_ingest_errors_total", "Ingest calls that failed (nothing acknowledged).", float64(n.ingestErrors.Load()))
	g("edged_ingest_accepting", "1 while Ingest accepts input (ready, not back-pressured, not stopping).",
		b2f(n.Ready() && !n.stopping.Load() && !n.backpressure.Load()))
	if ms := n.MQTTStatus(); ms.Mode != "off" {
		for _, state := range []string{"connected", "connecting", "disconnected", "idle", "listening"} {
			g("edged_mqtt_connection_state", "1 for the MQTT source's current connection state (idle: no pipeline subscribes).", b2f(ms.State == state), "state", state)
		}
		g("edged_mqtt_connected", "1 while the MQTT source is connected and subscribed.", b2f(ms.State == "connected"))
		c("edged_mqtt_connects_total", "Successful MQTT connections.", float64(ms.Connects))
		c("edged_mqtt_received_total", "MQTT messages received.", float64(ms.Received))
		c("edged_mqtt_redelivered_total", "MQTT messages received with the DUP flag (redeliveries).", float64(ms.Redelivered))
		c("edged_mqtt_handed_off_total", "MQTT messages made durable in the input log.", float64(ms.HandedOff))
		c("edged_mqtt_acked_total", "QoS 1 messages acknowledged to the broker (after the log commit).", float64(ms.Acked))
		g("edged_mqtt_in_flight", "MQTT messages received and not yet in the log.", float64(ms.InFlight))
		g("edged_mqtt_backpressured", "1 while the input log refuses MQTT batches (they are retried, not acknowledged).", b2f(ms.BackPressured))
		if ms.Mode == "embedded" {
			g("edged_mqtt_embedded_broker_up", "1 while the embedded broker listens.", b2f(ms.BrokerError == ""))
			c("edged_mqtt_embedded_broker_dropped_total", "Messages the embedded broker dropped (a client's queue full).", float64(ms.BrokerDropped))
			ms.writeBrokerMetrics(g, c)
		}
	}
	n.writeBusMetrics(g, c)
	n.writeSourceMetrics(g, c)
	if n.inputFile != "" {
		c("edged_input_file_lines_total", "Input-file lines appended by this process.", float64(n.fileLines.Load()))
		g("edged_input_file_done", "1 once the whole input file is in the log.", b2f(n.fileDone.Load()))
	}
	writeRuntimeMetrics(pw)
}
