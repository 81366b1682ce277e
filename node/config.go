package node

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgedio/edged/ingest/mqtt"
	"github.com/edgedio/edged/internal/yamlcheck"
	"github.com/edgedio/edged/mesh"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/uplink"
)

// Config is the configuration of one edged node (edged.yaml). The zero value
// is not valid; start from DefaultConfig.
type Config struct {
	// DataDir holds the storage file (edged.db). The --data-dir flag
	// overrides it.
	DataDir string `yaml:"dataDir"`
	// PipelinesDir holds one pipeline spec per *.yaml file. Empty means
	// DataDir/pipelines, seeded with the embedded example pipelines the first
	// time it is created. The API writes applied pipelines here.
	PipelinesDir string `yaml:"pipelinesDir"`
	// OutputDir is where file sinks write. Empty means DataDir/out.
	OutputDir string `yaml:"outputDir"`
	// LogLevel is debug, info, warn or error. Empty means info.
	LogLevel string `yaml:"logLevel"`
	// API is the node's HTTP API.
	API APIConfig `yaml:"api"`
	// Storage tunes the durable store.
	Storage StorageConfig `yaml:"storage"`
	// Sinks tunes the sinks fed from the output spool.
	Sinks SinksConfig `yaml:"sinks"`
	// Epochs tunes the per-pipeline executor loops.
	Epochs EpochConfig `yaml:"epochs"`
	// InputLog is the input log's retention, for backfills (see
	// InputLogConfig).
	InputLog InputLogConfig `yaml:"inputLog"`
	// MQTT configures MQTT ingest and the mqtt sinks (see MQTTConfig).
	MQTT MQTTConfig `yaml:"mqtt"`
	// MemoryLimitMB is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit) set by `edged run`: near it the garbage
	// collector runs more often instead of letting the heap grow to twice
	// the live data. It is soft: live data above it is not an error, it only
	// costs CPU. Zero means the default, 48 (a Raspberry Pi-class budget of
	// 64 MB resident, of which the Go heap is most); negative means none.
	// The GOMEMLIMIT environment variable, when set, takes precedence.
	MemoryLimitMB int `yaml:"memoryLimitMB"`
	// Uplink configures the upload of the outputs of sinks of type uplink
	// (package uplink; its keys are the snake_case ones of uplink.Config).
	// The default target is the local directory DataDir/uplink, so a fresh
	// install works without a server; uplink.node defaults to the host name
	// and uplink.journal_dir to DataDir/uplink-journal. Relative
	// uplink.local.dir and uplink.journal_dir are under DataDir.
	Uplink uplink.Config `yaml:"uplink"`
	// Mesh, when present, makes this node a member of its site's mesh
	// (package mesh): the gateways share every partitionable pipeline's
	// partitions, each held by one owner and mesh.standbys hot standbys.
	// Absent means a gateway on its own (every partition, term 1).
	Mesh *mesh.Config `yaml:"mesh"`
}

// DefaultMemoryLimitMB is the soft memory limit when MemoryLimitMB is zero.
const DefaultMemoryLimitMB = 48

// MemoryLimit returns the soft memory limit in bytes, or -1 for none.
func (c Config) MemoryLimit() int64 {
	switch {
	case c.MemoryLimitMB < 0:
		return -1
	case c.MemoryLimitMB == 0:
		return DefaultMemoryLimitMB << 20
	}
	return int64(c.MemoryLimitMB) << 20
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Listen is the API's TCP address. Empty disables the API.
	Listen string `yaml:"listen"`
	// Token is the bearer token every /api/v1 and /metrics request must carry.
	// Required when Listen is not a loopback address; optional (but enforced
	// when set) on loopback.
	Token string `yaml:"token"`
	// TLSCert and TLSKey are PEM files; when both are set the API serves
	// HTTPS. Set both or neither.
	TLSCert string `yaml:"tlsCert"`
	TLSKey  string `yaml:"tlsKey"`
	// Pprof serves the Go profiler under /debug/pprof/ (behind the same token
	// as /api/v1). Off by default: profiles expose internals and a CPU
	// profile costs CPU while it runs. For profiling sessions only.
	Pprof bool `yaml:"pprof"`
}

// StorageConfig maps onto storage.Options; zero fields take the storage
// defaults (see storage.DefaultOptions).
type StorageConfig struct {
	// Sync is "always" (fsync every group commit; survives power loss) or
	// "never" (tests and tmpfs only). Empty means always.
	Sync string `yaml:"sync"`
	// GroupMaxRecords caps the log records of one group commit.
	GroupMaxRecords int `yaml:"groupMaxRecords"`
	// GroupMaxDelay is how long a group commit of epochs and sink
	// deliveries waits for more (the pipelines' epochs that end together
	// share one transaction): the knob trading output latency for fewer
	// fsyncs (flash wear). A log append does not wait (mqtt.maxBatchDelay
	// bounds those commits), so a QoS 1 publisher's throughput is not
	// capped by it. Zero in the file means no wait; absent means 20ms.
	GroupMaxDelay time.Duration `yaml:"groupMaxDelay"`
	// QuotaBytes is one disk budget for everything edged writes: the
	// database (input log, state, spool, dead letters), file-sink files with
	// their rotations and a local uplink directory. At the budget, input is
	// back-pressured (QoS 1 messages are not acknowledged and come again; the
	// broker keeps them) until sinks and the uplink free space. Zero means the
	// default: what edged stores when it starts plus half the free space of
	// dataDir's file system, so a dead uplink can never fill the gateway's
	// disk. -1 means no budget.
	QuotaBytes int64 `yaml:"quotaBytes"`
	// Compression of input-log frames: zstd, s2 or none. Empty means zstd.
	Compression string `yaml:"compression"`
	// DedupHorizon is how many recent records of each MQTT-fed input log a
	// message is compared with (topic and payload); negative disables
	// deduplication. QoS 0 messages (not retained copies) are neither
	// compared nor counted in it: MQTT never sends one twice.
	DedupHorizon int `yaml:"dedupHorizon"`
	// MaxDeadLetters bounds the dead-letter store.
	MaxDeadLetters int `yaml:"maxDeadLetters"`
}

// SinksConfig tunes delivery from the output spool.
type SinksConfig struct {
	// FileMaxBytes rotates a file sink's current file once it is larger than
	// this. Zero means 64 MiB.
	FileMaxBytes int64 `yaml:"fileMaxBytes"`
	// Batch is how many spooled outputs a sink delivers per round. Zero means
	// 1024.
	Batch int `yaml:"batch"`
	// AllowedDirs are directories, besides outputDir and dataDir, where
	// file sinks may write. Pipelines come in through the API (without a
	// token on loopback), so a file sink may not name any path it likes.
	// Empty means only outputDir and dataDir.
	AllowedDirs []string `yaml:"allowedDirs"`
}

// EpochConfig tunes the executor loops.
type EpochConfig struct {
	// MaxRecords caps the input records one epoch reads per source; the rest
	// wait for the next epoch (visible as input backlog). Zero means 65536.
	MaxRecords int `yaml:"maxRecords"`
	// FeedRecords is how many decoded records an epoch hands to the executor
	// at a time, for pipelines whose operators all allow it (per-record steps
	// and append-mode event-time windows; engine.ChunkSafe): it bounds an
	// epoch's memory whatever the input rate. Zero means 4096.
	FeedRecords int `yaml:"feedRecords"`
	// MaxOutputs bounds the rows the event-time windows (tumbling, sliding,
	// event-time groups; not sessions) of one partition emit per epoch: when the watermark closes more windows at once (input
	// an hour ahead, the end of a backlog), whole windows are emitted
	// oldest first up to the bound and the rest by the next epochs, run at
	// once and taking no input until none waits. It bounds the memory of an
	// epoch's outputs and of its commit. Zero means 4096; -1 means no bound.
	MaxOutputs int `yaml:"maxOutputs"`
	// Virtual, when set, runs epochs as fast as input is available with
	// processing time epoch*interval instead of the clock (replay, tests and
	// the crash harness): outputs then depend only on the input log.
	Virtual bool `yaml:"virtual"`
	// Partitions is how many partitions a partitionable pipeline (every
	// stateful step grouped by the source key) is split into, each with its
	// own executor and state; records go to a partition by a stable hash of
	// their key. Other pipelines run as one partition. Zero means 8.
	// Changing it for a pipeline that has state starts that state afresh.
	Partitions int `yaml:"partitions"`
	// Cut is how a clock-driven epoch takes its input: "arrival" (the
	// default) takes the entries appended before the epoch's interval
	// boundary, so its epochs are a function of the input log and a backfill
	// over the log reproduces them byte for byte; "read" takes whatever is
	// in the log when the epoch reads it (a few ms sooner, not
	// reproducible). Empty means arrival.
	Cut string `yaml:"cut"`
	// StateEvery is how often a pipeline's operator state is committed
	// (flash wear: most epochs then write only their outputs and the
	// pipeline's position, and a restart replays the epochs since the last
	// state commit from the input log, with the same outputs). Zero means
	// 10s; negative commits the state every epoch. A node in a mesh, and a
	// pipeline that reads history tables, commit their state every epoch.
	StateEvery time.Duration `yaml:"stateEvery"`
}

// InputLogConfig keeps input in the log after every pipeline consumed it,
// so that a pipeline (or a new version of it) can be run again over a past
// period: POST /api/v1/pipelines/NAME/backfill and edged batch --from-log.
// Retention lives inside the disk budget (storage.quotaBytes) and yields to
// it: when input is back-pressured at the budget, the oldest retained input
// is dropped first (counted in edged_input_log_retained_dropped_total and
// logged).
type InputLogConfig struct {
	// Retain is how long input is kept. Zero means 24h; negative keeps
	// nothing beyond what pipelines have still to read.
	Retain time.Duration `yaml:"retain"`
	// RetainBytes caps the retained input of each log (stored, compressed
	// bytes; JSON readings compress 5-10x). Zero means a tenth of the disk
	// budget, at most 256 MiB (about a day of 100 sensors at 1 Hz).
	RetainBytes int64 `yaml:"retainBytes"`
}

// MQTTConfig is the MQTT section. With Brokers empty and Listen set, the
// node runs the embedded broker (ingest/mqtt.Broker) on Listen, which hands
// messages to the input log in-process (QoS 1 acknowledged once durable),
// and connects the mqtt sinks' publisher to it; with Brokers set it
// connects its MQTT source and publisher to them.
// With both empty, MQTT is off. The node subscribes to the union of the
// topics of every loaded pipeline's sources (sources[].mqtt.topics).
type MQTTConfig struct {
	// Brokers is a failover list of broker URLs (tcp://host:1883,
	// ssl://host:8883), tried in order. Empty means: run the embedded broker
	// on Listen.
	Brokers []string `yaml:"brokers"`
	// ClientID is the MQTT client id. The broker keys the persistent session
	// (and its queued QoS 1 messages) on it, so it must be stable across
	// restarts and unique on the broker. Empty means "edged-" + host name. The
	// mqtt sinks publish with ClientID + "-pub".
	ClientID string `yaml:"clientID"`
	// Username and Password authenticate to the brokers. For the embedded
	// broker they are also required of every client when Username is set.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures ssl:// connections to Brokers (and the client
	// certificate presented to an embedded broker that requires one).
	TLS mqtt.TLSConfig `yaml:"tls"`
	// Listen is the embedded broker's TCP address when Brokers is empty.
	// ":1883" (the default) accepts every host on the LAN; "127.0.0.1:1883"
	// local publishers only. Empty (with no Brokers) disables MQTT.
	Listen string `yaml:"listen"`
	// ListenTLS, when certFile is set, makes the embedded broker's listener
	// TLS-only (and with clientCAFile, mutual TLS).
	ListenTLS mqtt.BrokerTLSConfig `yaml:"listenTLS"`
	// KeepAlive is the MQTT keepalive. Zero means 30s.
	KeepAlive time.Duration `yaml:"keepAlive"`
	// BatchSize is the most messages handed to the input log in one append
	// (one group commit). Zero means 1024.
	BatchSize int `yaml:"batchSize"`
	// MaxInFlight bounds the messages received and not yet in the log. Zero
	// means 8192; it must be at least batchSize.
	MaxInFlight int `yaml:"maxInFlight"`
	// MaxBatchDelay is how long a batch with QoS 1 messages waits to fill
	// (it is handed off sooner when the flow stalls): a QoS 1 PUBACK waits
	// up to this long plus the commit, and each batch costs a log commit
	// (a few flash pages however few messages it holds). Absent means
	// 500ms; zero means 250ms.
	MaxBatchDelay time.Duration `yaml:"maxBatchDelay"`
	// MaxBatchDelayQoS0 is how long a batch of QoS 0 messages only waits to
	// fill: the knob that bounds flash wear at low rates (one log commit per
	// this long, at least). Zero means 1s, one epoch interval.
	MaxBatchDelayQoS0 time.Duration `yaml:"maxBatchDelayQoS0"`
	// Broker holds the embedded broker's limits (packet size, clients,
	// session expiry, queued and in-flight messages per client); zero
	// fields mean their defaults.
	Broker mqtt.BrokerLimits `yaml:"broker"`
}

// DefaultConfig returns the configuration `edged run` uses with no config file.
func DefaultConfig() Config {
	return Config{
		DataDir:      "/var/lib/edged", // FHS state directory; cmd/edged falls back when not writable
		PipelinesDir: "",               // DataDir/pipelines, seeded from the embedded examples
		OutputDir:    "",               // DataDir/out
		LogLevel:     "info",           // startup, pipeline changes, errors
		API: APIConfig{
			Listen: "127.0.0.1:8080", // loopback only: no token needed, not exposed to the LAN
		},
		Storage: StorageConfig{Sync: "always", Compression: "zstd", // the rest: storage defaults, but
			// epoch commits finishing within 20ms of each other (pipelines
			// share the epoch boundary) share one transaction: ~10% fewer
			// bytes written with the example pipelines, +20ms to a QoS 1 ack
			GroupMaxDelay: 20 * time.Millisecond},
		Sinks: SinksConfig{
			FileMaxBytes: 64 << 20, // a few rotated files fit any SD card
			Batch:        1024,     // one fsync per 1024 delivered lines at most
		},
		Epochs: EpochConfig{
			MaxRecords: 65536, // bounds an epoch's memory; a larger backlog runs further epochs at once
			Partitions: 8,     // parallel executors per keyed pipeline (2-4 cores on a Pi), few state buckets
			// State rows rewritten every 10 s, not every epoch; a crash replays at most ~10 s of input.
			StateEvery: 10 * time.Second,
		},
		MQTT: MQTTConfig{
			Listen:        ":1883",                // the embedded broker, reachable from sensors on the LAN
			KeepAlive:     30 * time.Second,       // a dead link is noticed within ~45s
			BatchSize:     8192,                   // one group commit per 8192 messages at most
			MaxInFlight:   16384,                  // ~2-3 MB of typical sensor payloads
			MaxBatchDelay: 500 * time.Millisecond, // QoS 1: ~2 log commits/s at low rates: 1.32x the logged bytes written at 500 msg/s against 2.59x at 250ms, PUBACK p50 ~520ms; stalls hand off sooner
			Broker:        mqtt.DefaultBrokerLimits(),
		},
		Uplink: defaultUplink(),
	}
}

// defaultUplink is uplink.DefaultConfig named after the host; its local
// directory "uplink" is relative to DataDir.
func defaultUplink() uplink.Config {
	u := uplink.DefaultConfig()
	u.Node = defaultNodeName()
	return u
}

// LoadConfig reads file strictly (unknown keys are errors, reported as
// FILE:LINE) over DefaultConfig, and validates it.
func LoadConfig(file string) (Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(file, data)
}

// ParseConfig is LoadConfig on data; file names it in errors. Every problem
// of the file is reported at once, each line as FILE:LINE: key: message:
// unknown keys (with the valid ones and the nearest), malformed values, and
// the problems Validate finds in the rest.
func ParseConfig(file string, data []byte) (Config, error) {
	cfg := DefaultConfig()
	decoded := yamlcheck.Decode(file, data, &cfg)
	type located struct {
		line int
		err  error
	}
	var found []located
	for _, e := range decoded {
		found = append(found, located{e.Line, e})
		if e.Path == "" {
			return Config{}, e // not YAML
		}
	}
	if err := cfg.Validate(); err != nil {
		lines := keyLines(data)
		for _, e := range unjoinErr(err) {
			msg := e.Error()
			key, _, _ := strings.Cut(msg, ": ")
			if reportedKey(key, decoded) {
				continue
			}
			loc, l := file, keyLine(lines, key)
			if l > 0 {
				loc += ":" + strconv.Itoa(l)
			}
			found = append(found, located{l, fmt.Errorf("%s: %s", loc, msg)})
		}
	}
	if len(found) == 0 {
		return cfg, nil
	}
	slices.SortStableFunc(found, func(a, b located) int { return a.line - b.line })
	errs := make([]error, len(found))
	for i, f := range found {
		errs[i] = f.err
	}
	return Config{}, errors.Join(errs...)
}

// reportedKey reports whether the decoder already reported key (or a typo of
// it, which validation sees as missing).
func reportedKey(key string, decoded []*yamlcheck.Error) bool {
	for _, d := range decoded {
		if d.Path == key {
			return true
		}
		if i := strings.LastIndexByte(d.Path, '.'); d.Suggest != "" && d.Path[:i+1]+d.Suggest == key {
			return true
		}
	}
	return false
}

// keyLines maps the key paths of a YAML document to their lines (list items
// as key[i]).
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return lines
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				lines[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				lines[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return lines
}

// keyLine is the line of key, or of its nearest parent in the file; 0 if
// none is.
func keyLine(lines map[string]int, key string) int {
	for p := key; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoinErr(e)...)
		}
		return out
	}
	return []error{err}
}

// Validate reports every problem at once, each naming its YAML key. It does
// not modify c.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		add("dataDir", "required")
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		add("logLevel", "%v", err)
	}
	if c.API.Listen != "" {
		host, _, err := net.SplitHostPort(c.API.Listen)
		switch {
		case err != nil:
			add("api.listen", "%q is not host:port: %v", c.API.Listen, err)
		case c.API.Token == "" && !IsLoopback(host):
			add("api.token", "required: api.listen %q is not a loopback address", c.API.Listen)
		}
	}
	if (c.API.TLSCert == "") != (c.API.TLSKey == "") {
		add("api.tlsCert", "set api.tlsCert and api.tlsKey together")
	}
	switch c.Storage.Sync {
	case "", "always", "never":
	default:
		add("storage.sync", "%q is not always or never", c.Storage.Sync)
	}
	switch c.Storage.Compression {
	case "", "zstd", "s2", "none":
	default:
		add("storage.compression", "%q is not zstd, s2 or none", c.Storage.Compression)
	}
	if c.Storage.GroupMaxRecords < 0 {
		add("storage.groupMaxRecords", "must not be negative")
	}
	if c.Storage.GroupMaxDelay < 0 {
		add("storage.groupMaxDelay", "must not be negative")
	}
	if c.Storage.QuotaBytes < -1 {
		add("storage.quotaBytes", "must be a number of bytes, 0 (the default budget) or -1 (none)")
	}
	if c.Storage.MaxDeadLetters < 0 {
		add("storage.maxDeadLetters", "must not be negative")
	}
	if c.Sinks.FileMaxBytes < 0 {
		add("sinks.fileMaxBytes", "must not be negative")
	}
	if c.Sinks.Batch < 0 {
		add("sinks.batch", "must not be negative")
	}
	if c.Epochs.FeedRecords < 0 {
		add("epochs.feedRecords", "must not be negative")
	}
	if c.Epochs.MaxRecords < 0 {
		add("epochs.maxRecords", "must not be negative")
	}
	if c.Epochs.MaxOutputs < -1 {
		add("epochs.maxOutputs", "must be -1 (no bound), 0 (the default) or positive")
	}
	if c.Epochs.Cut != "" && c.Epochs.Cut != "arrival" && c.Epochs.Cut != "read" {
		add("epochs.cut", "%q is not arrival or read", c.Epochs.Cut)
	}
	if c.InputLog.RetainBytes < 0 {
		add("inputLog.retainBytes", "must not be negative (0 means a tenth of the disk budget)")
	}
	if c.Epochs.Partitions < 0 || c.Epochs.Partitions > 1024 {
		add("epochs.partitions", "must be 0 (8) to 1024")
	}
	for i, b := range c.MQTT.Brokers {
		u, err := url.Parse(b)
		switch {
		case err != nil || !strings.Contains(b, "://"):
			add(fmt.Sprintf("mqtt.brokers[%d]", i), "%q is not a URL like tcp://host:1883", b)
		case !slices.Contains([]string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}, u.Scheme):
			add(fmt.Sprintf("mqtt.brokers[%d]", i), "%q: unsupported scheme %q (want tcp, ssl, ws or wss)", b, u.Scheme)
		case u.Hostname() == "":
			add(fmt.Sprintf("mqtt.brokers[%d]", i), "%q has no host", b)
		}
	}
	if len(c.MQTT.Brokers) == 0 && c.MQTT.Listen != "" {
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			add("mqtt.listen", "%q is not host:port: %v", c.MQTT.Listen, err)
		}
	}
	if c.MQTT.Password != "" && c.MQTT.Username == "" {
		add("mqtt.password", "set without mqtt.username")
	}
	if (c.MQTT.TLS.CertFile == "") != (c.MQTT.TLS.KeyFile == "") {
		add("mqtt.tls.certFile", "set mqtt.tls.certFile and mqtt.tls.keyFile together")
	}
	if (c.MQTT.ListenTLS.CertFile == "") != (c.MQTT.ListenTLS.KeyFile == "") {
		add("mqtt.listenTLS.certFile", "set mqtt.listenTLS.certFile and mqtt.listenTLS.keyFile together")
	}
	if c.MQTT.ListenTLS.ClientCAFile != "" && c.MQTT.ListenTLS.CertFile == "" {
		add("mqtt.listenTLS.clientCAFile", "needs mqtt.listenTLS.certFile and keyFile")
	}
	if c.MQTT.KeepAlive < 0 || (c.MQTT.KeepAlive > 0 && c.MQTT.KeepAlive < time.Second) {
		add("mqtt.keepAlive", "must be zero (30s) or at least 1s, got %v", c.MQTT.KeepAlive)
	}
	if c.MQTT.BatchSize < 0 {
		add("mqtt.batchSize", "must not be negative")
	}
	if c.MQTT.MaxInFlight < 0 {
		add("mqtt.maxInFlight", "must not be negative")
	} else if c.MQTT.MaxInFlight > 0 && c.MQTT.MaxInFlight < max(c.MQTT.BatchSize, 1) {
		add("mqtt.maxInFlight", "must be at least mqtt.batchSize (%d), got %d", c.MQTT.BatchSize, c.MQTT.MaxInFlight)
	} else if c.MQTT.MaxInFlight == 0 && c.MQTT.BatchSize > 16384 {
		add("mqtt.batchSize", "must be at most mqtt.maxInFlight (16384), got %d", c.MQTT.BatchSize)
	}
	// The embedded broker hands a local subscriber one accepted batch at
	// once: its write queue must hold a whole batch, or it drops messages
	// (QoS 1 too).
	if batch, pw := cmp.Or(c.MQTT.BatchSize, 8192), cmp.Or(c.MQTT.Broker.MaxPendingWrites, 8192); len(c.MQTT.Brokers) == 0 &&
		c.MQTT.Listen != "" && c.MQTT.BatchSize >= 0 && c.MQTT.Broker.MaxPendingWrites >= 0 && pw < batch {
		add("mqtt.broker.maxPendingWrites", "must be at least mqtt.batchSize (%d), got %d: the embedded broker sends a local subscriber a whole batch at once and drops what does not fit", batch, pw)
	}
	if c.MQTT.MaxBatchDelayQoS0 < 0 {
		add("mqtt.maxBatchDelayQoS0", "must not be negative")
	}
	if c.MQTT.MaxBatchDelay < 0 {
		add("mqtt.maxBatchDelay", "must not be negative")
	}
	if err := c.MQTT.Broker.Validate(); err != nil {
		errs = append(errs, err)
	}
	uc := c.uplinkConfig()
	if err := uc.Validate(); err != nil {
		errs = append(errs, err) // each line names its uplink.* key
	}
	if c.Mesh != nil {
		if err := c.Mesh.Validate(); err != nil {
			errs = append(errs, err) // each line names its mesh.* key
		}
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether host (from host:port) only accepts local
// connections. An empty host (all interfaces) is not loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
}

// StorageOptions returns the storage.Options of the storage section.
func (c Config) StorageOptions(log *slog.Logger) storage.Options {
	o := storage.DefaultOptions()
	if c.Storage.Sync == "never" {
		o.Sync = storage.SyncNever
	}
	if c.Storage.GroupMaxRecords > 0 {
		o.GroupMaxRecords = c.Storage.GroupMaxRecords
	}
	if c.Storage.GroupMaxDelay > 0 {
		o.GroupMaxDelay = c.Storage.GroupMaxDelay
		o.AppendsSkipDelay = true // the MQTT batch delays already bound the log's commits
	}
	o.QuotaBytes = max(c.Storage.QuotaBytes, 0) // the default (0) is computed at start: Node.Run
	switch c.Storage.Compression {
	case "s2":
		o.Compression = storage.CompressS2
	case "none":
		o.Compression = storage.CompressNone
	}
	if c.Storage.DedupHorizon != 0 {
		o.DedupHorizon = c.Storage.DedupHorizon
	}
	if c.Storage.MaxDeadLetters > 0 {
		o.MaxDeadLetters = c.Storage.MaxDeadLetters
	}
	o.Logger = log
	return o
}

// pipelinesDir and outputDir resolve the defaults that depend on DataDir.
func (c Config) pipelinesDir() string {
	if c.PipelinesDir != "" {
		return c.PipelinesDir
	}
	return filepath.Join(c.DataDir, "pipelines")
}

func (c Config) outputDir() string {
	if c.OutputDir != "" {
		return c.OutputDir
	}
	return filepath.Join(c.DataDir, "out")
}
