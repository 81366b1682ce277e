// Package storage is edged's durable store on go.etcd.io/bbolt: the input
// log (write-ahead), operator state, checkpoints, the output spool and the
// dead-letter store of one node, in ONE bbolt file. *DB implements
// engine.StateStore.
//
// # One file per node
//
// A single file means a single fsync can cover a group of log appends, dead
// letters and an epoch commit together, and a checkpoint can never disagree
// with the spool or the log positions it names: they live in the same
// transaction. bbolt allows one writer at a time, which the committer
// serialises anyway; per-pipeline files would multiply fsyncs (flash wear)
// for no gain on a single-disk gateway.
//
// # Bucket layout
//
// Buckets of the root; "a/<b>" is a bucket b inside bucket a, but for the
// buckets named "log/<source>" and "spool/<sink>", which are buckets of the
// root (one level fewer: see "Flash wear").
//
//	meta                  format = "edged-storage/2" (checked at Open), dlq.total, dlq.dropped
//	log/<source>          (root) 8-byte big-endian offset of a frame's first record -> frame
//	                      bucket {'f' -> frame, 't' -> append time} (files written before:
//	                      -> frame, still read)
//	logmeta               <source> -> first, next, records, bytes (4 x uint64)
//	                      [+ 0x01: the source deduplicates (AppendLogDedup)]
//	pstate/<pipeline>     4-byte big-endian partition, uvarint length, namespace, key -> value
//	                      (one bucket per pipeline and no deeper: a small state stays inline
//	                      in pstate's leaf)
//	ckpt                  <pipeline> 0x00 <partition> -> epoch, watermark, input positions
//	                      (partitions >= 0, written with their state)
//	pipes                 the same for partitions < 0: the pipeline's record (positions,
//	                      journal; written by every epoch) and its layout
//	spool/<sink>          (root) 8-byte sequence (bucket NextSequence, commit order) -> frame
//	                      bucket {'f' -> frame of the outputs one transaction spooled for
//	                      the sink, 't' -> commit time}, or for a frame of at most 512 bytes
//	                      or one written to an empty spool -> 0xff, commit time, frame
//	                      (files written before: -> commit time, id, data, one output per
//	                      entry, still read)
//	spoolmeta             <sink> -> depth, bytes
//	dlq                   8-byte sequence -> time, pipeline, source, step, reason, payload
//	dlqmeta               <pipeline> -> count
//	tables/<table>        'm' -> metadata (JSON); 'c' + 8-byte chunk number -> chunk bucket
//	                      {8-byte time + encoded key -> encoded columns} (history tables,
//	                      see table.go; created by the first write)
//
// Files of format edged-storage/1 nested the state (state/<pipeline>/
// <partition>/<namespace>, 'k' + key -> value), kept the pipelines'
// records in ckpt and the logs' and spools' buckets inside a "log" and a
// "spool" bucket. Open upgrades such a file in its first transaction
// (layout.go): the state rows are copied, the records moved, and each
// frame bucket moved whole (bbolt rewrites the leaves that reference it,
// not its pages). Versions that knew only edged-storage/1 refuse the
// upgraded file.
//
// Data files of edged 0.1 have one log per pipeline source ("<pipeline>/<source>"),
// checkpoints at partition 0 and spools by sink name; UpgradePipeline
// (migrate.go) carries a pipeline over to the layout above in one transaction.
//
// A spool frame is encoded as a log frame, with the output's id as key and
// its data as record; an acknowledgement of part of a frame writes it again
// with the rest.
//
// A log frame is the records of one source in one transaction: uvarint count,
// a codec byte (raw, zstd, s2) and the body, which is per record uvarint key
// length, key, uvarint length, record. The key is empty: the dedup window is
// a set of 96-bit hashes of the records themselves, kept in memory and
// rebuilt at Open by hashing the last DedupHorizon records of each source
// marked in logmeta, so deduplication costs no bytes on flash (frames written
// before kept 16-byte keys there; they are skipped). Offsets start at 1, so the
// engine's zero input position means "from the beginning". A frame that
// cannot be decoded gives a *FrameError naming the source and the offset of
// its first record; compressed frames decode to at most 32 MiB (larger groups
// are stored raw), so a corrupt frame cannot exhaust memory.
//
// # Group commit
//
// Every write (AppendLog, Commit, SpoolAck, TruncateLog, PutDeadLetter,
// DeleteDeadLetters, Compact) is a request to one committer goroutine. It takes
// the first queued request and gathers more until GroupMaxRecords log records
// are queued or the queue is empty, then applies them all in one bbolt
// transaction and one fsync, log records merged into one compressed frame per
// source. With the default GroupMaxDelay of zero there is no fixed delay: an
// idle committer commits at once, and requests arriving while a commit is in
// flight are coalesced into the next one, so groups grow with the load. A
// positive GroupMaxDelay makes the committer wait that long after a group's
// first request for more. If that transaction fails, each request is retried alone,
// so one bad request fails only its caller. Callers block until their request
// is committed; every method is safe for concurrent use. Because bbolt reads
// the slices given to Put until the transaction commits, a caller's slices
// stay in use until its call returns, and so a context only bounds the wait for
// queue space, never the wait for a queued request. Slices handed to callbacks
// (ReadLog, Scan, SpoolRead) are valid only during the call.
//
// # The tail in memory
//
// Each source's most recently committed frames (Options.TailBytes, 4 MiB by
// default) are also kept in memory as they were appended, uncompressed:
// ReadLog from an offset inside them is served from there, without a read
// transaction or decompression, and returns exactly what the file holds
// (offsets, append times, records; truncation applies). A frame enters the
// tail only after its transaction committed. A read from an earlier offset
// (after a restart, a reader far behind) reads the file; Stats.Tail counts
// both.
//
// # Snapshots
//
// Reads run in bbolt read transactions, which see one committed transaction
// (MVCC) while commits go on: Scan and LastCheckpoint each see one epoch; View
// gives a Snapshot for queries that read several namespaces consistently. A
// long read transaction delays a commit that needs to grow the memory map.
//
// # Flash wear
//
// bbolt writes every page a transaction dirties, plus a 4 KiB meta page, so a
// commit costs a few pages whatever it carries (NoFreelistSync, the default
// here, saves the freelist page). A changed leaf is written with every page
// above it up to the root, so each level of buckets between the root and
// what a commit changes costs a page per commit, and each bucket a commit
// touches costs its own leaf; the layout above keeps both few. Measured on
// the default install (five example pipelines, 500 readings/s over 100
// sensors, scripts/bench/flash.sh; pages by the test-only walker of
// pagewalk_test.go):
//
//   - an input-log append: meta, root, the log's leaf of frame references,
//     the frame (2 pages for the 500 readings of a QoS 0 batch);
//   - an epoch commit between state commits: meta, root, pipes' leaf (the
//     five pipelines' records), and per sink that spooled more than 512
//     bytes its bucket's leaf, which holds the frame when the sink keeps
//     up (etl's stdout sink: 2), or else a leaf of frame references and
//     the frame's bucket; small sinks' frames are values inline in the
//     root's leaf;
//   - a state commit (every epochs.stateEvery) adds pstate's leaf and the
//     leaves its changed keys are on (the alert rules' 300 rows: a branch
//     and 6 leaves; etl's eight partitions, an idle record each, share
//     pstate's leaf).
//
// Each frame lives in a bucket of its own so that appending never rewrites
// the previous frames (a leaf of large values would be rewritten whole at
// every append), and the log buckets are packed full (FillPercent 1.0, as
// their keys only grow); state buckets split their leaves at 70% (a state
// commit rewrites every leaf a changed key is on; see stateFill). Frames are compressed
// with zstd (fastest level), falling back to raw when that is not smaller;
// JSON payloads shrink 3-10x, which absorbs the page overhead. The higher
// levels made frames of 250 and 500 simulated readings at most 3% smaller
// (SpeedBestCompression, at 13-21x the CPU; the default and better levels
// made them larger), so they would not save a page. S2 is available for
// CPUs where zstd is too slow.
//
// Write amplification is therefore set by the records per commit. The knobs
// that trade latency for bytes written are, first, the batching of the
// caller (the MQTT ingest hands off up to 8192 messages per AppendLog, waiting
// up to 1 s for a batch of QoS 0 messages and 250 ms for one with QoS 1
// messages; see ingest/mqtt.Config), and then GroupMaxDelay, which holds a
// group open for more appends (ack latency grows by up to the delay).
// GroupMaxRecords caps a group. Spool buckets are packed full too (their keys
// are sequence numbers); bbolt's default half-full pages doubled the pages an
// epoch commit wrote. Measured by
// BenchmarkInputLogAppend (batches of 256 64-byte JSON records, x86-64 ext4):
// 4 concurrent appenders commit ~512 records per commit at ~45 B written per
// record by the bbolt count and ~73 B by /proc/self/io write_bytes, against
// 64 B raw; a single appender (256 per commit) ~86 and ~135 B.
//
// The acknowledgements of a sink that is not behind (SpoolAckDeferred) need
// not be durable at once: they start no transaction of their own but wait up
// to DeferMaxDelay (1 s) to ride in the next log append or epoch commit. A
// transaction that changes nothing (a truncation with nothing to delete) is
// rolled back, not committed.
//
// The kernel counts a page-cache write (/proc/PID/io write_bytes) per folio
// dirtied, at the folio's size, while ext4 writes back only the dirty
// blocks. A read at open (with readahead) or bbolt's first write of a new
// file leaves the meta pages in a 16 KiB folio, and each commit's 4 KiB meta
// write was then counted 16 KiB; Open drops the file's cached pages and
// reads the first ones back without readahead (prepareCache), so
// write_bytes counts what is written (TestAppendWriteCost checks both).
//
// Stats.BytesPerMillionRecords is the flash-wear figure: bytes written (bbolt
// pages allocated plus one meta page per commit, all writes including epoch
// commits) per million log records appended since Open. Stats also reports
// BytesWritten, RawBytesAppended and /proc/self/io write_bytes.
//
// # Quota and back-pressure
//
// QuotaBytes counts the file's high-water mark minus free pages. At the quota
// AppendLog returns ErrQuotaExceeded and writes nothing; the caller stops
// acknowledging and reading its input. Commits, acks and truncations still
// proceed so the backlog drains; nothing is dropped silently. bbolt reuses
// free pages, so a file whose log is truncated after checkpoints and whose
// spool is acknowledged stops growing; Compact rewrites the file to give
// space back to the filesystem.
//
// # Damaged files
//
// Open reads bbolt's meta pages itself before mapping the file: a file
// shorter than its last commit references (truncation), with no valid meta
// page, or without edged's format key is refused with a *CorruptError that
// names the file and says what to do. bbolt would otherwise map a truncated
// file and fault on first access. Corruption inside data pages is not detected
// at Open (it would need a full bbolt Check).
//
// # 32-bit ARM
//
// The whole file is memory-mapped: on 32-bit platforms InitialMmapSize
// defaults to 1 MiB and the file is capped at 1 GiB (MaxMapBytes) so the map
// fits the address space. A write that would grow the file past the cap fails
// with bbolt's ErrMaxSizeReached, and the database stays usable. make test-arm
// runs the tests for arm64, armv7 and armv6 under qemu user-mode emulation,
// growing a database to 400 MiB on each (EDGED_STORAGE_BIG_MB).
//
// # Resident memory
//
// bbolt reads pages through its read-only map, and Linux maps up to 64 KiB
// of cached file around each page a read touches, so the map's resident
// pages would grow to most of the file and count in edged's resident set.
// After a commit, at most every Options.UnmapEvery (10 ms), the committer
// releases them (madvise MADV_DONTNEED, inside a read transaction so that
// bbolt cannot remap meanwhile): the file then counts for about what the
// last commit read. The pages stay in the page cache.
package storage
