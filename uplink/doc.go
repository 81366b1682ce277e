// Package uplink drains a node's output spool into compressed objects on a
// target (local directory, S3-compatible store, HDFS via WebHDFS) and
// acknowledges spooled entries only after the target confirmed the write.
// It is a leaf: it imports no other edged package; rows are ([]byte JSON
// object, output id) pairs behind the small Spool interface.
//
// # Batches and keys
//
// Output ids are "pipeline/partition/epoch/seq". A batch holds whole epochs
// of one (pipeline, partition), from its oldest unacknowledged epoch, added
// in order while they fit Config.MaxRows and Config.MaxBytes (an epoch is
// never split; an epoch larger than the limits is one object). A batch is
// uploaded when the next epoch would not fit (deterministic), or when its
// oldest row waited Config.MaxAge, or on Flush. A batch is one object per
// Hive partition of its rows, with the key
//
//	PREFIX/pipeline=P/sink=S/date=YYYY-MM-DD/hour=HH/NODE-pPART-eFIRST-LAST.parquet
//
// (".jsonl.zst" for JSON Lines; FIRST and LAST zero-padded to 12 digits so
// names sort in epoch order; S is Options.Sink) where date and hour are the
// UTC time of each row: its "window_start" column, else "ts", else the
// first timestamp column of the schema, else __HIVE_DEFAULT_PARTITION__. A
// batch crossing an hour is two objects with the same name in two
// directories, acknowledged together once both are written. Keys and bytes
// depend only on the rows, so a retry overwrites the same objects. Batches cut by age or Flush are made crash-stable by the
// journal (Config.JournalDir): the batch's epoch range is fsynced before the
// upload and replayed first after a restart.
//
// # Delivery
//
// Rows leave the spool only after Target.Put returned nil (at-least-once
// writes of idempotent objects: exactly-once objects and rows as seen by a
// reader listing the keys). Every failure (credentials, missing bucket, 5xx,
// timeout, network, full disk) is an *UploadError with an ErrorKind in
// Status and is retried with exponential backoff and jitter; nothing is
// dropped unless Config.Retention is drop-oldest and the spool is over
// Config.SpoolQuota (counted in Status.DroppedRows). Rows that are not JSON
// objects, or whose id is malformed, go to Options.DeadLetter.
//
// # Formats
//
// Parquet (default): edged's own writer (see ParquetEncoder): a flat
// schema, one row group, zstd pages, statistics, and the output id in an
// "_id" column (Config.IDColumn). The columns are the pipeline output's
// declared Schema (Uploader.SetSchema; the node declares it from the plan),
// the same in every object: times are TIMESTAMP(MILLIS, UTC), integer
// fields INT64, other numbers DOUBLE, every column in the pipeline's order
// and OPTIONAL; a row that does not fit is a dead letter. The schema and
// its version are in each file's metadata ("edged.schema",
// "edged.schema_version"), so a pipeline version that changes the schema
// is visible. Without a declared schema the columns are inferred per batch.
// JSON Lines: the rows verbatim with the id member inserted, one zstd frame.
//
// # Targets
//
// LocalTarget (temp file, fsync, rename, fsync dir), S3Target (edged's own
// S3 client in uplink/internal/s3: Signature V4 with the payload's SHA-256
// signed, PutObject, path-style option, credentials from config or AWS_*
// env),
// WebHDFSTarget (plain net/http, so it is built in without a build tag:
// two-step CREATE to ".NAME.NONCE.tmp", RENAME to the key, DELETE first
// when the key exists; RemoteException JSON parsed into *RemoteException).
//
// S3Target and WebHDFSTarget are also ObjectStores (HeadObject,
// ListObjects, DeleteObject, PutObject with metadata and If-None-Match /
// If-Match conditions) for split-brain fencing; WebHDFS keeps metadata in
// user.* xattrs and supports IfNoneMatch (rename without replace) but not
// IfMatch.
//
// What was tested: S3 against a real versitygw v1.8.0 (s3test), including
// stop/restart under load, conditional puts and racing IfNoneMatch
// writers; the signer against the example requests of the S3 API
// Reference; not against AWS itself (virtual-host URLs, region lookup and
// session tokens are covered by unit tests only); WebHDFS only against webhdfstest, an in-process
// server written from the WebHDFS REST documentation (CREATE redirect,
// OPEN, RENAME, DELETE, GETFILESTATUS, LISTSTATUS, MKDIRS, error JSON). Not
// tested against a real Hadoop cluster: Kerberos/SPNEGO and delegation
// tokens (not implemented: only user.name simple auth), HA namenode
// failover (a StandbyException is retried against the same URL), datanode
// redirects to hostnames the gateway cannot resolve.
package uplink
