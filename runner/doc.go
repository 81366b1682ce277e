// Package runner runs one pipeline on a gateway: it reads the pipeline's
// input from the durable input log, decodes each message once, routes every
// record to a partition by a stable hash of its key, keeps one executor per
// partition this node holds, runs the epoch loop and commits each epoch of
// all its partitions, with its dead letters and its input position, in one
// transaction.
//
// Everything it needs comes in through small interfaces, never a pointer
// back to the node: Log (read the input log), Store (checkpoints, state,
// commit), Ownership (which partitions this node holds, under which term,
// and whether it emits or only keeps state), engine.Clock and a logger.
// A single gateway uses SingleNode, which holds every partition under term 1
// and emits; the mesh is another Ownership.
//
// # Exactly once
//
// An epoch reads the input after the pipeline's committed position, runs
// every held partition's executor, and commits in ONE Store.CommitAll: the
// state changes and outputs of every partition that changed something, the
// dead letters of the epoch, and the pipeline's new position (a checkpoint
// under partition -1). After a crash the runner restores every executor and
// the position from that checkpoint and reads the input after it again; the
// outputs of a replayed epoch carry the same ids (engine.OutputID).
//
// # Partitions
//
// A pipeline whose every stateful step groups by (a superset of) its
// sources' key fields is partitioned: a record's partition is
// PartitionOf(key, n). Other pipelines (a global window, a step keyed by a
// field that is not the source key) run as a single partition 0: splitting
// them would split a group's state between partitions.
//
// # Epochs and backlogs
//
// In clock mode an epoch runs at every interval boundary. When more input
// waits than one epoch takes (Config.MaxRecords per log), event-time and
// stateless pipelines run further epochs back to back until the backlog is
// gone. Pipelines with processing-time (DStream) windows keep one epoch per
// interval: their windows are intervals of the clock, so an extra epoch would
// close windows for which no time passed; they catch up at MaxRecords per
// interval. In virtual mode (input files, tests) epochs run back to back at
// times epoch*interval while input waits.
//
// # Epochs by arrival time and backfills
//
// With Config.ArrivalCut the epoch at interval boundary t reads the entries
// appended before t and no later ones, once every entry appended before t
// is visible (LogSettler); an epoch that ran long is followed by one epoch
// per missed boundary (up to 600). Epochs are then a function of the log,
// and Backfill, which drives a Runner of its own by hand over a past period
// with the same cut, reproduces them: same outputs, same ids but for the
// pipeline name, when it starts where the live state was empty.
package runner
