package uplink

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Formats of uploaded objects.
const (
	FormatParquet = "parquet" // Apache Parquet, zstd-compressed column chunks (default)
	FormatJSONL   = "jsonl"   // JSON Lines, the whole object zstd-compressed (.jsonl.zst)
)

// Targets.
const (
	TargetLocal   = "local"   // a local directory (default: works with no server)
	TargetS3      = "s3"      // any S3-compatible store, through edged's own S3 client
	TargetWebHDFS = "webhdfs" // HDFS through the WebHDFS REST API
)

// Retention policies when the spool quota is reached.
const (
	RetentionBackpressure = "backpressure" // keep everything; storage stops acknowledging input (default)
	RetentionDropOldest   = "drop-oldest"  // delete the oldest spooled batches, counted in Status.DroppedRows
)

// Config configures an Uploader. The YAML keys are the ones of the uplink
// section of edged.yaml. Zero values mean "use DefaultConfig's value" only
// where a field's doc says so; call Validate after loading.
type Config struct {
	// Node is this gateway's name, the first part of every object's file
	// name. Required; no '/' allowed.
	Node string `yaml:"node"`
	// Format is "parquet" (default) or "jsonl".
	Format string `yaml:"format"`
	// Target is "local" (default), "s3" or "webhdfs"; its section below
	// configures it.
	Target string `yaml:"target"`
	// Prefix is prepended to every object key ("a/b" gives "a/b/pipeline=...").
	// Empty: keys start at "pipeline=".
	Prefix string `yaml:"prefix"`
	// IDColumn names the column that carries each row's output id
	// ("pipeline/partition/epoch/seq"), so readers can drop duplicates.
	// Empty: no id column.
	IDColumn string `yaml:"id_column"`

	// MaxRows closes a batch when adding the next whole epoch would exceed
	// it. An epoch is never split, so a single epoch larger than MaxRows is
	// one object.
	MaxRows int `yaml:"max_rows"`
	// MaxBytes is the same limit on the rows' JSON bytes (before encoding).
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge uploads a batch smaller than the limits once its oldest row has
	// waited this long in the spool (as seen by this process).
	MaxAge time.Duration `yaml:"max_age"`
	// PollInterval is how often the spool is read when nobody calls Notify.
	PollInterval time.Duration `yaml:"poll_interval"`

	// BackoffMin and BackoffMax bound the exponential backoff between failed
	// attempts of one object; each delay is drawn uniformly from
	// [d/2, d] (jitter) where d doubles from BackoffMin up to BackoffMax.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Timeout bounds one attempt to write one object (0: no limit).
	Timeout time.Duration `yaml:"timeout"`
	// Bandwidth is the upload budget in bytes per second (token bucket with
	// a one-second burst). 0: unlimited.
	Bandwidth int64 `yaml:"bandwidth"`

	// Retention is what happens when the spool holds more than SpoolQuota
	// bytes: "backpressure" (default; nothing is dropped, storage
	// back-pressures input) or "drop-oldest" (whole oldest batches are
	// acknowledged without upload and counted).
	Retention string `yaml:"retention"`
	// SpoolQuota is the spool size in bytes that triggers Retention. It needs
	// a Spool that implements SpoolStatser. 0: no quota.
	SpoolQuota int64 `yaml:"spool_quota"`
	// JournalDir holds a small file naming the batch being uploaded, written
	// (and fsynced) before each upload, so that after a crash the same batch
	// boundaries, hence the same object key, are used again even when the
	// batch was cut by age or Flush. Empty: no journal; batches cut by size
	// are still deterministic, batches cut by age may be re-cut after a crash
	// (an object may then be superseded by one with a wider epoch range).
	JournalDir string `yaml:"journal_dir"`

	Local   LocalConfig   `yaml:"local"`
	S3      S3Config      `yaml:"s3"`
	WebHDFS WebHDFSConfig `yaml:"webhdfs"`
}

// LocalConfig configures the local-directory target.
type LocalConfig struct {
	// Dir is the root directory; created if missing. Required for target local.
	Dir string `yaml:"dir"`
}

// S3Config configures the S3 target.
type S3Config struct {
	// Endpoint is host[:port] of the S3 API, without scheme
	// ("s3.amazonaws.com", "minio.local:9000").
	Endpoint string `yaml:"endpoint"`
	// Region of the bucket; empty: taken from an AWS endpoint's name
	// (s3.eu-west-1.amazonaws.com), else asked once with GetBucketLocation,
	// else us-east-1.
	Region string `yaml:"region"`
	// Bucket receives the objects; it must exist.
	Bucket string `yaml:"bucket"`
	// AccessKey and SecretKey are the credentials; when empty they are read
	// from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN).
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PathStyle forces path-style requests (http://host/bucket/key).
	// false: virtual-host style (http://bucket.host/key) for AWS endpoints
	// (*.amazonaws.com) and DNS-compatible bucket names, path style for
	// any other endpoint (self-hosted stores).
	PathStyle bool `yaml:"path_style"`
	// TLS uses https. Default true.
	TLS bool `yaml:"tls"`
}

// WebHDFSConfig configures the WebHDFS target.
type WebHDFSConfig struct {
	// NameNode is the namenode's HTTP address ("http://nn:9870").
	NameNode string `yaml:"namenode"`
	// User is sent as user.name (simple authentication).
	User string `yaml:"user"`
	// Replication of created files; 0: the cluster default.
	Replication int `yaml:"replication"`
	// Root is the HDFS directory under which keys are created ("/edged").
	Root string `yaml:"root"`
}

// DefaultConfig returns the defaults: Parquet to a local directory, batches
// of at most 20,000 rows / 4 MiB or one minute, backoff 1s..5m, no
// bandwidth limit, back-pressure retention.
func DefaultConfig() Config {
	return Config{
		Format:       FormatParquet,
		Target:       TargetLocal,
		IDColumn:     "_id",
		MaxRows:      20_000,          // ~2 MiB of aggregates; encoding needs ~10 MiB
		MaxBytes:     4 << 20,         // bounds memory while encoding on a Pi
		MaxAge:       time.Minute,     // aggregates reach the centre within ~1 min
		PollInterval: 5 * time.Second, // Notify makes this a fallback only
		BackoffMin:   time.Second,     // first retry
		BackoffMax:   5 * time.Minute, // long outages: a few requests per 5 min
		Timeout:      2 * time.Minute, // one object over a slow link
		Retention:    RetentionBackpressure,
		S3:           S3Config{TLS: true},
		WebHDFS:      WebHDFSConfig{Root: "/edged"},
		Local:        LocalConfig{Dir: "uplink"},
	}
}

// Validate reports every invalid field, naming its YAML key (uplink.*).
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, f string, a ...any) {
		errs = append(errs, fmt.Errorf("uplink.%s: %s", key, fmt.Sprintf(f, a...)))
	}
	if c.Node == "" {
		bad("node", "required")
	} else if strings.ContainsAny(c.Node, "/\\") {
		bad("node", "%q must not contain '/'", c.Node)
	}
	switch c.Format {
	case FormatParquet, FormatJSONL:
	default:
		bad("format", "%q: want parquet or jsonl", c.Format)
	}
	if c.MaxRows <= 0 {
		bad("max_rows", "%d: must be > 0", c.MaxRows)
	}
	if c.MaxBytes <= 0 {
		bad("max_bytes", "%d: must be > 0", c.MaxBytes)
	}
	if c.MaxAge <= 0 {
		bad("max_age", "%v: must be > 0", c.MaxAge)
	}
	if c.PollInterval <= 0 {
		bad("poll_interval", "%v: must be > 0", c.PollInterval)
	}
	if c.BackoffMin <= 0 {
		bad("backoff_min", "%v: must be > 0", c.BackoffMin)
	}
	if c.BackoffMax < c.BackoffMin {
		bad("backoff_max", "%v: must be >= backoff_min (%v)", c.BackoffMax, c.BackoffMin)
	}
	if c.Timeout < 0 {
		bad("timeout", "%v: must be >= 0", c.Timeout)
	}
	if c.Bandwidth < 0 {
		bad("bandwidth", "%d: must be >= 0", c.Bandwidth)
	}
	switch c.Retention {
	case RetentionBackpressure, RetentionDropOldest:
	default:
		bad("retention", "%q: want backpressure or drop-oldest", c.Retention)
	}
	if c.SpoolQuota < 0 {
		bad("spool_quota", "%d: must be >= 0", c.SpoolQuota)
	}
	if c.Retention == RetentionDropOldest && c.SpoolQuota == 0 {
		bad("spool_quota", "required with retention drop-oldest")
	}
	switch c.Target {
	case TargetLocal:
		if c.Local.Dir == "" {
			bad("local.dir", "required with target local")
		}
	case TargetS3:
		if c.S3.Endpoint == "" {
			bad("s3.endpoint", "required with target s3")
		} else if strings.Contains(c.S3.Endpoint, "://") {
			bad("s3.endpoint", "%q: host[:port] without scheme (use s3.tls)", c.S3.Endpoint)
		}
		if c.S3.Bucket == "" {
			bad("s3.bucket", "required with target s3")
		}
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			bad("s3.secret_key", "access_key and secret_key must be set together")
		}
	case TargetWebHDFS:
		if c.WebHDFS.NameNode == "" {
			bad("webhdfs.namenode", "required with target webhdfs")
		} else if !strings.HasPrefix(c.WebHDFS.NameNode, "http://") && !strings.HasPrefix(c.WebHDFS.NameNode, "https://") {
			bad("webhdfs.namenode", "%q: want http:// or https:// URL", c.WebHDFS.NameNode)
		}
		if c.WebHDFS.Replication < 0 {
			bad("webhdfs.replication", "%d: must be >= 0", c.WebHDFS.Replication)
		}
		if !strings.HasPrefix(c.WebHDFS.Root, "/") {
			bad("webhdfs.root", "%q: must be an absolute path", c.WebHDFS.Root)
		}
	default:
		bad("target", "%q: want local, s3 or webhdfs", c.Target)
	}
	return errors.Join(errs...)
}
