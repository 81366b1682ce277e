//go:build !linux

package storage

import "time"

// unmapResident is a no-op outside Linux (see unmap_linux.go).
func (x *DB) unmapResident(time.Time) {}
