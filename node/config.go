package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgedio/edged/storage"
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
	// MQTT configures MQTT ingest (see MQTTConfig). The MQTT source package
	// reads it; the node itself only validates it.
	MQTT MQTTConfig `yaml:"mqtt"`
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
}

// StorageConfig maps onto storage.Options; zero fields take the storage
// defaults (see storage.DefaultOptions).
type StorageConfig struct {
	// Sync is "always" (fsync every group commit; survives power loss) or
	// "never" (tests and tmpfs only). Empty means always.
	Sync string `yaml:"sync"`
	// GroupMaxRecords caps the log records of one group commit.
	GroupMaxRecords int `yaml:"groupMaxRecords"`
	// GroupMaxDelay is how long a group commit waits for more appends: the
	// knob trading ingest latency for fewer fsyncs (flash wear).
	GroupMaxDelay time.Duration `yaml:"groupMaxDelay"`
	// QuotaBytes is the disk quota of the database file; at the quota ingest is
	// back-pressured. Zero means none.
	QuotaBytes int64 `yaml:"quotaBytes"`
	// Compression of input-log frames: zstd, s2 or none. Empty means zstd.
	Compression string `yaml:"compression"`
	// DedupHorizon is how many recent dedup keys each input log remembers;
	// negative disables deduplication.
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
}

// EpochConfig tunes the executor loops.
type EpochConfig struct {
	// MaxRecords caps the input records one epoch reads per source; the rest
	// wait for the next epoch (visible as input backlog). Zero means 65536.
	MaxRecords int `yaml:"maxRecords"`
	// Virtual, when set, runs epochs as fast as input is available with
	// processing time epoch*interval instead of the clock (replay, tests and
	// the crash harness): outputs then depend only on the input log.
	Virtual bool `yaml:"virtual"`
	// RetainEpochs is how many epochs pass between truncations of the
	// consumed input log. Zero means 60.
	RetainEpochs int `yaml:"retainEpochs"`
}

// MQTTConfig is the MQTT section. The ingest/mqtt package consumes it; with no
// Brokers it runs an embedded broker on Listen.
type MQTTConfig struct {
	// Brokers is a failover list of broker URLs (tcp://host:1883,
	// ssl://host:8883). Empty means: start the embedded broker.
	Brokers []string `yaml:"brokers"`
	// ClientID is the MQTT client id (a persistent session needs a stable one).
	// Empty means "edged-" + host name.
	ClientID string `yaml:"clientID"`
	// Username and Password authenticate to the brokers (and, for the embedded
	// broker, are required from clients when set).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Listen is the embedded broker's address when Brokers is empty.
	Listen string `yaml:"listen"`
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
		Storage: StorageConfig{Sync: "always", Compression: "zstd"}, // the rest: storage defaults
		Sinks: SinksConfig{
			FileMaxBytes: 64 << 20, // a few rotated files fit any SD card
			Batch:        1024,     // one fsync per 1024 delivered lines at most
		},
		Epochs: EpochConfig{
			MaxRecords:   65536, // bounds an epoch's memory after an outage
			RetainEpochs: 60,    // truncate the consumed log about once a minute at 1s epochs
		},
		MQTT: MQTTConfig{
			Listen: ":1883", // the embedded broker, reachable from sensors on the LAN
		},
	}
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

// ParseConfig is LoadConfig on data; file names it in errors.
func ParseConfig(file string, data []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && err != io.EOF {
		return Config{}, yamlErrors(file, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func yamlErrors(file string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		if loc := yamlLine.FindStringSubmatch(m); loc != nil {
			m = strings.TrimPrefix(m, loc[0])
			m = strings.Replace(m, "not found in type", "is not a known key of", 1)
			errs = append(errs, fmt.Errorf("%s:%s: %s", file, loc[1], m))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s", file, m))
	}
	return errors.Join(errs...)
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
	if c.Storage.QuotaBytes < 0 {
		add("storage.quotaBytes", "must not be negative")
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
	if c.Epochs.MaxRecords < 0 {
		add("epochs.maxRecords", "must not be negative")
	}
	if c.Epochs.RetainEpochs < 0 {
		add("epochs.retainEpochs", "must not be negative")
	}
	for i, b := range c.MQTT.Brokers {
		if !strings.Contains(b, "://") {
			add(fmt.Sprintf("mqtt.brokers[%d]", i), "%q is not a URL like tcp://host:1883", b)
		}
	}
	if len(c.MQTT.Brokers) == 0 && c.MQTT.Listen != "" {
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			add("mqtt.listen", "%q is not host:port: %v", c.MQTT.Listen, err)
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
	}
	o.QuotaBytes = c.Storage.QuotaBytes
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
