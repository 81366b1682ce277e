package storage

import (
	"log/slog"
	"time"
)

// SyncPolicy says when a write transaction is flushed to the device.
type SyncPolicy int

const (
	// SyncAlways fsyncs every write transaction before it is reported committed
	// (one fsync per group commit). This is the only policy under which a commit
	// survives power loss.
	SyncAlways SyncPolicy = iota
	// SyncNever leaves flushing to the kernel (bbolt NoSync). A process crash
	// (kill -9) loses nothing, but power loss may lose recent commits or corrupt
	// the file. For tests and tmpfs only.
	SyncNever
)

// Compression selects the codec of input-log frames.
type Compression int

const (
	// CompressZstd compresses log frames with zstd (fastest level). A frame is
	// stored raw when compression would not make it smaller.
	CompressZstd Compression = iota
	// CompressS2 compresses log frames with S2 (faster, larger output).
	CompressS2
	// CompressNone stores log frames raw.
	CompressNone
)

// Options configure a DB. Every zero field takes the value documented on it;
// DefaultOptions returns the values spelled out.
type Options struct {
	// Sync is the fsync policy. Zero is SyncAlways.
	Sync SyncPolicy

	// GroupMaxRecords caps the number of log records of one group commit: the
	// committer starts the transaction as soon as this many are queued. Zero means
	// 4096.
	GroupMaxRecords int

	// GroupMaxDelay is how long the committer waits for more appends after the
	// first one of a group before it commits: the knob that trades append (and
	// MQTT acknowledgement) latency for fewer, larger fsyncs and fewer bytes
	// written to flash. Zero means commit as soon as the queue is empty (natural
	// group commit: appends that arrive during an fsync share the next one);
	// negative is invalid.
	GroupMaxDelay time.Duration

	// AppendsSkipDelay limits GroupMaxDelay to groups without log appends
	// (epoch commits, spool writes): they still wait for company, while a
	// log append ends the wait and commits with what is queued. A log
	// append usually has a publisher waiting for its acknowledgement, and
	// with a bounded in-flight window (256 messages, mosquitto's bridges'
	// 20) every millisecond of delay caps its throughput.
	AppendsSkipDelay bool

	// DeferMaxDelay is how long a write that need not be durable at once,
	// an acknowledgement of delivered outputs by a sink that is not behind
	// (SpoolAckDeferred), waits for another write to share its transaction. Each write transaction costs a meta page, the
	// pages above what it changes and two fsyncs whatever it carries, so
	// riding with the next log append or epoch commit saves flash; the
	// caller waits meanwhile (up to this long when nothing else is
	// written). Zero means 1 second; negative commits them at once.
	DeferMaxDelay time.Duration

	// QuotaBytes is the disk quota in bytes: the database file's size minus
	// its free pages, plus the bytes set with DB.SetExternalBytes (what edged
	// keeps in files outside the database). When it is reached AppendLog returns
	// ErrQuotaExceeded; epoch commits, acknowledgements and truncations still
	// proceed so that the backlog can drain. Zero means no quota.
	QuotaBytes int64

	// InitialMmapSize is the initial size of the memory map in bytes. Read
	// transactions block a write transaction that must grow the map, so a larger
	// map avoids stalls, but on 32-bit ARM the address space is ~2-3 GiB in
	// total and every byte of the map counts against it: keep it small (a few MiB)
	// there. Zero means 8 MiB on 64-bit and 1 MiB on 32-bit platforms.
	InitialMmapSize int

	// MaxMapBytes caps the file (and map) size in bytes; a write that would grow
	// the file beyond it fails with bbolt's ErrMaxSizeReached. Zero means 1 GiB on
	// 32-bit platforms (the mmap must fit the address space) and no cap on 64-bit.
	MaxMapBytes int

	// SyncFreelist writes bbolt's freelist at every commit. Off (zero) sets
	// bbolt's NoFreelistSync: one page less written per commit (flash wear), paid
	// for by a scan of the file at open to rebuild the freelist.
	SyncFreelist bool

	// Compression is the codec of input-log frames. Zero is CompressZstd.
	Compression Compression

	// DedupHorizon is how many of a source's most recent records
	// AppendLogDedup compares with (as 96-bit hashes in memory, about 48
	// bytes each; records appended with Append.Once are not among them).
	// Zero means 65536; negative disables deduplication.
	DedupHorizon int

	// TailBytes is how many bytes of each source's most recently committed
	// log records are also kept in memory, uncompressed: a reader close
	// behind the writers (an epoch reading what was logged since the last
	// one) reads them from there instead of from the file (no read
	// transaction, no decompression). Reads that start earlier read the
	// file. Zero means 4 MiB: one 1 s epoch of 130-byte log entries at
	// 30,000 messages per second, a minute at 500 per second; every byte of
	// it is resident (and, with the Go heap's headroom, costs about twice
	// that of RSS). Negative keeps no tail.
	TailBytes int

	// UnmapEvery is how often the committer, after a commit, releases the
	// pages of the database file that bbolt's read-only memory map has
	// mapped into this process (madvise MADV_DONTNEED; Linux only). bbolt
	// reads pages through the map, and the kernel maps up to 64 KiB around
	// each page read, so without this the resident set grows by most of the
	// file (13 MB of a 16 MB file in the sliding-window benchmark, 8 MB when
	// released once a second) although a transaction reads a few pages of
	// it. The pages stay in the page cache: the next read maps them again
	// without I/O, at the cost of a minor fault per 64 KiB (a commit of
	// 10,000 changed keys costs up to a third more CPU when every commit
	// releases). Zero means 10 ms; negative never.
	UnmapEvery time.Duration

	// MaxDeadLetters bounds the dead-letter store: beyond it the oldest entries
	// are dropped and counted in Stats.DeadLettersDropped. Zero means 100000.
	MaxDeadLetters int

	// OpenTimeout is how long Open waits for the file lock held by another
	// process. Zero means 5 seconds.
	OpenTimeout time.Duration

	// Logger receives storage events. Nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns the defaults for a Raspberry-Pi-class gateway.
func DefaultOptions() Options {
	return Options{
		Sync:            SyncAlways,         // a committed epoch survives power loss
		GroupMaxRecords: 4096,               // ~256 KiB of 64-byte records per fsync at most
		GroupMaxDelay:   0,                  // commit at once when idle; appends arriving during a commit share the next
		DeferMaxDelay:   time.Second,        // a sink's ack rides with the next epoch's commit
		QuotaBytes:      0,                  // no quota unless the operator sets one
		InitialMmapSize: defaultMmapSize,    // 8 MiB (64-bit) or 1 MiB (32-bit)
		MaxMapBytes:     defaultMaxMapBytes, // 1 GiB on 32-bit, unlimited on 64-bit
		SyncFreelist:    false,              // one page less per commit
		Compression:     CompressZstd,       // see doc.go, "Flash wear"
		DedupHorizon:    65536,              // covers an MQTT session's redeliveries
		TailBytes:       4 << 20,            // one epoch at 30k msg/s; a minute at a Pi's 500 msg/s
		UnmapEvery:      defaultUnmapEvery,  // released at most every 10 ms: about the pages of the last commit
		MaxDeadLetters:  100000,             // ~tens of MiB of bad payloads at most
		OpenTimeout:     5 * time.Second,    // another edged holding the file is an error
		Logger:          nil,                // discard
	}
}

// defaultUnmapEvery is Options.UnmapEvery's default.
const defaultUnmapEvery = 10 * time.Millisecond

const is32bit = ^uint(0)>>32 == 0

var (
	defaultMmapSize    = map[bool]int{false: 8 << 20, true: 1 << 20}[is32bit]
	defaultMaxMapBytes = map[bool]int{false: 0, true: 1 << 30}[is32bit]
)

// withDefaults returns o with zero fields replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.GroupMaxRecords <= 0 {
		o.GroupMaxRecords = 4096
	}
	if o.DeferMaxDelay == 0 {
		o.DeferMaxDelay = time.Second
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = defaultMmapSize
	}
	if o.MaxMapBytes <= 0 {
		o.MaxMapBytes = defaultMaxMapBytes
	}
	if o.DedupHorizon == 0 {
		o.DedupHorizon = 65536
	}
	if o.TailBytes == 0 {
		o.TailBytes = 4 << 20
	}
	if o.UnmapEvery == 0 {
		o.UnmapEvery = defaultUnmapEvery
	}
	if o.MaxDeadLetters <= 0 {
		o.MaxDeadLetters = 100000
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
