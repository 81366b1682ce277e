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
//	meta                  format = "edged-storage/1" (checked at Open), dlq.total, dlq.dropped
//	log/<source>          8-byte big-endian offset of a frame's first record -> frame
//	logmeta               <source> -> first, next, records, bytes (4 x uint64)
//	state/<pipeline>/<partition>/<namespace>
//	                      'k' + key -> value (the 'k' makes the engine's empty key storable)
//	ckpt                  <pipeline> 0x00 <partition> -> epoch, watermark, input positions
//	spool/<sink>          8-byte sequence (bucket NextSequence, commit order) -> commit time, id, data
//	spoolmeta             <sink> -> depth, bytes
//	dlq                   8-byte sequence -> time, pipeline, source, step, reason, payload
//	dlqmeta               <pipeline> -> count
//
// A log frame is the records of one source in one transaction: uvarint count,
// a codec byte (raw, zstd, s2) and the body, which is per record uvarint key
// length, dedup key, uvarint length, record. Offsets start at 1, so the
// engine's zero input position means "from the beginning".
//
// # Group commit
//
// Every write (AppendLog, Commit, SpoolAck, TruncateLog, PutDeadLetter,
// DeleteDeadLetters, Compact) is a request to one committer goroutine. It takes
// the first queued request and gathers more until GroupMaxRecords log records
// are queued or GroupMaxDelay has passed (with a zero delay: until the queue is
// empty, so appends arriving during an fsync share the next one), then applies
// them all in one bbolt transaction and one fsync, log records merged into one
// frame per source. If that transaction fails, each request is retried alone,
// so one bad request fails only its caller. Callers block until their request
// is committed; every method is safe for concurrent use. Because bbolt reads
// the slices given to Put until the transaction commits, a caller's slices
// stay in use until its call returns, and so a context only bounds the wait for
// queue space, never the wait for a queued request. Slices handed to callbacks
// (ReadLog, Scan, SpoolRead) are valid only during the call.
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
// bbolt writes every page a transaction dirties, plus a meta page, so a commit
// costs at least two or three 4 KiB pages whatever it carries (NoFreelistSync,
// the default here, saves the freelist page). Write amplification is therefore
// set by the records per commit: GroupMaxDelay (and callers appending many
// records per call) is the knob that trades latency for bytes written.
// Frames are compressed with zstd (fastest level), falling back to raw when
// that is not smaller; S2 is available for CPUs where zstd is too slow.
// Stats reports BytesWritten (pages allocated + meta pages), RawBytesAppended
// and /proc/self/io write_bytes.
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
// fits the address space.
package storage
