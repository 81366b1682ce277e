package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/uplink"
)

// upSink is the uploader of one pipeline's sink of type uplink.
type upSink struct {
	name     string // SinkName(pipeline, sink): its spool
	pipeline string
	sink     string
	u        *uplink.Uploader
	cancel   context.CancelFunc // ends its Run
}

// defaultNodeName is the uplink node name when uplink.node is not set: the
// host name, without characters that cannot appear in an object name.
func defaultNodeName() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, h)
	if h == "" {
		return "edged"
	}
	return h
}

// uplinkConfig returns the uplink section with the paths that default to
// DataDir resolved: a relative uplink.local.dir is under DataDir, and an
// empty uplink.journal_dir is DataDir/uplink-journal.
func (c Config) uplinkConfig() uplink.Config {
	u := c.Uplink
	if u.Local.Dir != "" && !filepath.IsAbs(u.Local.Dir) {
		u.Local.Dir = filepath.Join(c.DataDir, u.Local.Dir)
	}
	if u.JournalDir == "" {
		u.JournalDir = filepath.Join(c.DataDir, "uplink-journal")
	} else if !filepath.IsAbs(u.JournalDir) {
		u.JournalDir = filepath.Join(c.DataDir, u.JournalDir)
	}
	return u
}

// nodeSpool adapts the storage spool of one sink to uplink.Spool.
func (n *Node) nodeSpool(sink string) uplink.SpoolFuncs {
	return uplink.SpoolFuncs{
		ReadFunc: func(max int, fn func(id string, data []byte) error) error {
			return n.db.SpoolRead(sink, max, fn)
		},
		AckFunc: func(ids ...string) error {
			_, err := n.db.SpoolAck(context.Background(), sink, ids...)
			return err
		},
		StatsFunc: func() (uplink.SpoolStats, error) {
			all, err := n.db.SpoolStats()
			if err != nil {
				return uplink.SpoolStats{}, err
			}
			s := all[sink]
			return uplink.SpoolStats{Depth: s.Depth, Bytes: s.Bytes, Oldest: s.Oldest}, nil
		},
	}
}

// uplinkSchema is the uplink column schema of the records of a sink: the
// plan's fields in order, every one optional (any field may be null):
// numbers marked integral as INT64, other numbers DOUBLE, times TIMESTAMP,
// lists and fields whose kind is known only at run time JSON.
func uplinkSchema(s *engine.Schema) (*uplink.Schema, error) {
	cols := make([]uplink.Column, s.Len())
	for i := range cols {
		f := s.Field(i)
		c := uplink.Column{Name: f.Name, Optional: true, Type: uplink.TypeJSON}
		switch f.Kind {
		case engine.KindNumber:
			c.Type = uplink.TypeDouble
			if s.Integer(i) {
				c.Type = uplink.TypeInt64
			}
		case engine.KindString:
			c.Type = uplink.TypeString
		case engine.KindBool:
			c.Type = uplink.TypeBool
		case engine.KindTime:
			c.Type = uplink.TypeTimestamp
		}
		cols[i] = c
	}
	return uplink.NewSchema(cols...)
}

// declareUplinkSchema gives u the output schema of pipeline's sink.
// n.mu is held.
func (n *Node) declareUplinkSchema(u *uplink.Uploader, pipelineName, sink string) error {
	p := n.pipes[pipelineName]
	if p == nil || p.c.Plan.SinkSchema(sink) == nil {
		return nil
	}
	s, err := uplinkSchema(p.c.Plan.SinkSchema(sink))
	if err != nil {
		return err
	}
	if err := u.SetSchema(pipelineName, s); err != nil {
		n.log.Warn("uplink: schema not kept on disk", "pipeline", pipelineName, "sink", sink, "err", err)
	}
	return nil
}

// attachUplink starts the uploader of pipeline p's uplink sink unless it
// runs already. n.mu is held.
func (n *Node) attachUplink(pipelineName, sinkName string) error {
	sink := SinkName(pipelineName, sinkName)
	if s := n.uploaders[sink]; s != nil {
		if err := n.declareUplinkSchema(s.u, pipelineName, sinkName); err != nil {
			return err
		}
		s.u.Notify()
		return nil
	}
	cfg := n.cfg.uplinkConfig()
	cfg.JournalDir = filepath.Join(cfg.JournalDir, pipelineName, sinkName)
	u, err := uplink.New(cfg, n.nodeSpool(sink), uplink.Options{
		Fence:     n.cfg.Mesh != nil, // split brain: a lower ownership term never uploads over a higher one
		ClaimFrom: n.claimFrom,
		OwnTerm:   n.ownTerm,
		Sink:      sinkName,
		Logger:    n.log.With("pipeline", pipelineName, "sink", sinkName),
		DeadLetter: func(id string, data []byte, reason string) error {
			p, _, _ := strings.Cut(id, "/")
			err := n.db.PutDeadLetter(context.Background(), storage.DeadLetter{Pipeline: p,
				Step: "sink " + sink, Payload: append([]byte(nil), data...),
				Reason: "uplink: output " + id + ": " + reason, Time: time.Now()})
			if err == nil {
				n.dlStored.Add(1)
			}
			return err
		},
	})
	if err != nil {
		return err
	}
	if err := n.declareUplinkSchema(u, pipelineName, sinkName); err != nil {
		return err
	}
	s := &upSink{name: sink, pipeline: pipelineName, sink: sinkName, u: u}
	n.uploaders[sink] = s
	ctx, cancel := context.WithCancel(n.upCtx)
	s.cancel = cancel
	n.upWG.Add(1)
	go func() {
		defer n.upWG.Done()
		u.Run(ctx)
	}()
	n.log.Info("uplink started", "sink", sink, "target", cfg.Target, "format", cfg.Format)
	return nil
}

// stopUploaders ends every uploader's Run and waits for it. What is still
// spooled is uploaded after the next start (the journal keeps an
// interrupted batch's boundaries, so its object key does not change).
func (n *Node) stopUploaders() {
	if n.upCancel != nil {
		n.upCancel()
	}
	n.upWG.Wait()
}

// uploaderMap returns the running uploaders by sink name.
func (n *Node) uploaderMap() map[string]*uplink.Uploader {
	n.mu.RLock()
	defer n.mu.RUnlock()
	m := make(map[string]*uplink.Uploader, len(n.uploaders))
	for k, s := range n.uploaders {
		m[k] = s.u
	}
	return m
}

// UplinkStatus returns the status of every uploader by sink name.
func (n *Node) UplinkStatus() map[string]uplink.Status {
	out := map[string]uplink.Status{}
	for k, u := range n.uploaderMap() {
		out[k] = u.Status()
	}
	return out
}

// uplinkFailing reports whether the last attempt of an uploader failed.
func uplinkFailing(st uplink.Status) bool {
	return st.LastError != "" && st.LastErrorAt.After(st.LastSuccess)
}

// uplinkSinkStatus adds the uploaders to the sink list and conditions of st.
func (n *Node) uplinkSinkStatus(st *Status) {
	n.mu.RLock()
	type row struct {
		name, pipeline, sink string
		u                    *uplink.Uploader
	}
	var rows []row
	for k, s := range n.uploaders {
		rows = append(rows, row{k, s.pipeline, s.sink, s.u})
	}
	n.mu.RUnlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	st.Uplink = map[string]uplink.Status{}
	for _, r := range rows {
		us := r.u.Status()
		st.Uplink[r.name] = us
		ss := SinkStatus{Name: r.name, Pipeline: r.pipeline, Sink: r.sink, Type: "uplink", Depth: us.SpoolDepth, Delivered: us.Rows, Errors: us.Failures}
		if uplinkFailing(us) {
			ss.LastError = us.LastError
			st.Conditions = append(st.Conditions, fmt.Sprintf("uplink %s: upload failing (%s; %d outputs spooled, oldest %v): %s",
				r.name, us.LastErrorKind, us.SpoolDepth, us.SpoolAge.Round(time.Second), us.LastError))
		}
		if us.OverQuota {
			st.Conditions = append(st.Conditions, fmt.Sprintf("uplink %s: spool above uplink.spool_quota (%d bytes; retention %s)", r.name, us.SpoolBytes, us.Retention))
		}
		st.Sinks = append(st.Sinks, ss)
	}
}

// writeUplinkMetrics writes the uploaders' figures.
func (n *Node) writeUplinkMetrics(g, c func(name, help string, v float64, labels ...string)) {
	us := n.UplinkStatus()
	names := make([]string, 0, len(us))
	for k := range us {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		s := us[name]
		// The labels: pipeline and sink (the status key is pipeline/sink).
		pl, sk, _ := strings.Cut(name, "/")
		g := func(n, h string, v float64, l ...string) {
			g(n, h, v, append([]string{"pipeline", pl, "sink", sk}, l...)...)
		}
		c := func(n, h string, v float64, l ...string) {
			c(n, h, v, append([]string{"pipeline", pl, "sink", sk}, l...)...)
		}
		if s.SpoolKnown {
			g("edged_uplink_spool_depth", "Outputs spooled for an uplink and not yet uploaded.", float64(s.SpoolDepth))
			g("edged_uplink_spool_bytes", "Bytes of outputs spooled for an uplink.", float64(s.SpoolBytes))
			g("edged_uplink_spool_age_seconds", "Age of the oldest output spooled for an uplink (0: empty).", s.SpoolAge.Seconds())
		}
		g("edged_uplink_over_quota", "1 while the uplink spool is above uplink.spool_quota.", b2f(s.OverQuota))
		if !s.LastSuccess.IsZero() {
			g("edged_uplink_last_success_timestamp_seconds", "Unix time of the last confirmed upload.", float64(s.LastSuccess.UnixMilli())/1000)
		}
		if !s.LastErrorAt.IsZero() {
			g("edged_uplink_last_error_timestamp_seconds", "Unix time of the last failed upload attempt.", float64(s.LastErrorAt.UnixMilli())/1000)
		}
		kind := string(s.LastErrorKind)
		if kind == "" {
			kind = "none"
		}
		g("edged_uplink_failing", "1 while the last upload attempt failed; kind is the last error's kind.", b2f(uplinkFailing(s)), "kind", kind)
		c("edged_uplink_failures_total", "Failed upload attempts.", float64(s.Failures))
		c("edged_uplink_objects_total", "Objects confirmed by the uplink target.", float64(s.Objects))
		c("edged_uplink_rows_total", "Rows uploaded.", float64(s.Rows))
		c("edged_uplink_bytes_uploaded_total", "Encoded bytes confirmed by the uplink target.", float64(s.BytesUploaded))
		c("edged_uplink_bytes_raw_total", "JSON bytes of the uploaded rows (before encoding).", float64(s.BytesRaw))
		g("edged_uplink_compression_ratio", "Raw JSON bytes per uploaded byte.", s.Compression)
		c("edged_uplink_dropped_rows_total", "Rows dropped by uplink.retention drop-oldest.", float64(s.DroppedRows))
		c("edged_uplink_dead_letters_total", "Rows the uplink could not encode (dead-lettered).", float64(s.DeadLetters))
	}
}
