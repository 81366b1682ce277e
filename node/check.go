package node

import (
	"errors"
	"fmt"
	"github.com/edgedio/edged/sink"
	"path/filepath"
	"strings"

	"github.com/edgedio/edged/internal/topic"
	"github.com/edgedio/edged/pipeline"
)

// CheckPipeline makes, without side effects, every check that applying the
// compiled pipeline on a node with config cfg makes beyond compiling it: the
// sources' topic templates and filters, the mqtt sinks' topic templates and
// the file sinks' paths (inside outputDir, dataDir or sinks.allowedDirs).
// Every problem is reported, each naming the pipeline and the key. `edged
// check`, POST /api/v1/validate and apply share it, so a pipeline that
// passes the first two is not refused by the third for any of these.
func CheckPipeline(cfg Config, c *pipeline.Compiled) error {
	name := c.Plan.Name()
	var errs []error
	for i, src := range c.Spec.Spec.Sources {
		if src.MQTT == nil {
			continue
		}
		for j, t := range src.MQTT.Topics {
			tt, err := topic.ParseTemplate(t)
			if err == nil {
				err = topic.ValidateFilter(tt.Filter())
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("pipeline %q: spec.sources[%d] (%s): mqtt.topics[%d]: %w", name, i, src.Name, j, err))
			}
		}
	}
	for i := range c.Spec.Spec.Sinks {
		sk := &c.Spec.Spec.Sinks[i]
		switch sk.Type {
		case "mqtt":
			t := strings.NewReplacer("{pipeline}", name, "{sink}", sk.Name).Replace(sk.Topic)
			if _, err := sink.ParseTopic(t); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %q: spec.sinks[%d] (%s): topic: %w", name, i, sk.Name, err))
			}
		case "file":
			path := sinkFilePath(cfg.outputDir(), name, sk)
			if err := sink.Confine(path, append([]string{cfg.outputDir(), cfg.DataDir}, cfg.Sinks.AllowedDirs...)...); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %q: spec.sinks[%d] (%s): path: %w", name, i, sk.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkEnrichFiles refuses a pipeline document that arrives through the API
// and names an enrichment table outside the directories edged reads
// (pipelinesDir, dataDir, sinks.allowedDirs): the API needs no token on
// loopback, and a table's rows can come back out through the outputs. It
// runs before compiling, which reads the tables.
func checkEnrichFiles(cfg Config, file string, raw []byte) error {
	spec, err := pipeline.Parse(file, raw)
	if err != nil {
		return nil // compiling reports it, with every other problem
	}
	var errs []error
	for i := range spec.Spec.Steps {
		st := &spec.Spec.Steps[i]
		if st.Enrich == nil || st.Enrich.File == "" {
			continue
		}
		path := st.Enrich.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(file), path)
		}
		dirs := append([]string{cfg.pipelinesDir(), cfg.DataDir}, cfg.Sinks.AllowedDirs...)
		if err := sink.Confine(path, dirs...); err != nil {
			errs = append(errs, fmt.Errorf("%s: spec.steps[%d] (%s): enrich.file: %w", file, i, st.Name, err))
		}
	}
	return errors.Join(errs...)
}

// checkTables checks the history tables of the pipelines the node would
// run with c applied (c in place of a running pipeline of its name): a
// table read must be written by one of them, with the key columns the
// reader names (pipeline.CheckTables).
func (n *Node) checkTables(c *pipeline.Compiled) error {
	cs := []*pipeline.Compiled{c}
	n.mu.RLock()
	for name, p := range n.pipes {
		if name != c.Plan.Name() {
			cs = append(cs, p.c)
		}
	}
	n.mu.RUnlock()
	return pipeline.CheckTables(cs)
}
