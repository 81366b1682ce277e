package storage

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every method of a closed DB.
	ErrClosed = errors.New("storage: database closed")
	// ErrQuotaExceeded is returned by AppendLog when the database has reached
	// Options.QuotaBytes. Nothing of the call was written. The caller must stop
	// acknowledging and reading its input (back-pressure) and retry later: the
	// quota frees up as sinks acknowledge spooled outputs and TruncateLog
	// releases the log after checkpoints.
	ErrQuotaExceeded = errors.New("storage: disk quota exceeded")
	// ErrCorrupt is wrapped by the *CorruptError returned by Open for a
	// truncated or corrupted database file.
	ErrCorrupt = errors.New("storage: database file is corrupted")
)

// CorruptError reports a database file that cannot be used: edged refuses to
// start from empty state in its place. errors.Is(err, ErrCorrupt) holds.
type CorruptError struct {
	Path   string
	Reason string
	Err    error // the underlying error, if any
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("storage: database file %q is corrupted or truncated: %s", e.Path, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s + "; edged will not start from empty state over it: restore the file from a backup, " +
		"or move it aside to start with empty state (losing un-delivered outputs and un-processed input)"
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }
