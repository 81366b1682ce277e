package runner

import (
	"context"
	"fmt"

	"github.com/edgedio/edged/engine"
)

// keepLayout makes the pipeline run in as many partitions as its stored
// state is split in (LayoutRecord). State is stored per partition, and a
// record's partition is PartitionOf(key, n): with another n its key's state
// would sit in a partition that no longer receives the key. So a change of
// epochs.partitions applies to pipelines that start afresh; one with state
// keeps its number and says so. A pipeline whose new version cannot be
// partitioned while its state is split is refused. The first start records
// the number (for a pipeline restored from a version that did not record
// it, the number it runs with now). Called by New, before restore.
func (r *Runner) keepLayout() error {
	cp, err := r.cfg.Store.LastCheckpoint(r.name, LayoutPartition)
	if err != nil {
		return fmt.Errorf("pipeline %q: read its partition count: %w", r.name, err)
	}
	stored, ok := int(cp.Input[layoutKey]), cp.Epoch > 0
	switch {
	case !ok:
		if err := r.cfg.Store.CommitAll(context.Background(), []*engine.Commit{LayoutRecord(r.name, r.nparts)}); err != nil {
			return fmt.Errorf("pipeline %q: record its partition count: %w", r.name, err)
		}
	case stored == r.nparts:
	case stored > 1 && !Partitionable(r.spec):
		return fmt.Errorf("pipeline %q: its state is split by the source key in %d partitions, and this version's steps "+
			"do not all group by the source key (key:), so it would run as one partition and lose the state of the others; "+
			"keep every stateful step grouped by the key fields, or delete the pipeline and apply it again to start with empty state",
			r.name, stored)
	case stored < 1:
		return fmt.Errorf("pipeline %q: its stored partition count is %d", r.name, stored)
	default:
		r.log.Warn("pipeline keeps its partition count: its state is split by key in that many partitions; "+
			"epochs.partitions applies to pipelines that start with empty state (delete and apply the pipeline again to use it)",
			"pipeline", r.name, "partitions", stored, "epochs.partitions", r.nparts)
		r.nparts = stored
	}
	return nil
}
