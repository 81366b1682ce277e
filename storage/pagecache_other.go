//go:build !linux

package storage

// prepareCache is a no-op outside Linux (see pagecache_linux.go).
func prepareCache(string, int) {}
