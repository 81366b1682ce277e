package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// prepareCache leaves the first pages of the database file (bbolt's two meta
// pages, written at every commit) in the page cache as single pages.
//
// Linux accounts a write to the page cache (/proc/PID/io write_bytes, and
// the dirty-page budget) per folio dirtied, and a folio is whatever size
// the cache allocated it at: the readahead of a read at open (our header
// check, bbolt's first read) or bbolt's 16 KiB first write of a new file
// makes the meta pages part of a 16 KiB or larger folio. Every commit's
// 4 KiB meta write then counted the whole folio: 12 KiB more than was
// written per commit (ext4 writes back only the dirty blocks, so the device
// saw 4 KiB). So, before bbolt maps the file, drop the cached pages of its
// first MiB (no one has it open: bbolt's lock comes later, and the file is
// clean) and read the first pages back one at a time without readahead.
// Only the first MiB: the rest stays cached, as bbolt reads every page at
// open to rebuild its freelist (NoFreelistSync), one page at a time.
func prepareCache(path string, pageSize int) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	fd := int(f.Fd())
	_ = unix.Fadvise(fd, 0, 1<<20, unix.FADV_DONTNEED)
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM)
	buf := make([]byte, pageSize)
	for i := range 4 {
		if _, err := f.ReadAt(buf, int64(i*pageSize)); err != nil {
			return
		}
	}
}
