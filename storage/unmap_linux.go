package storage

import (
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// unmapResident releases the pages of the database file mapped into this
// process, at most once per Options.UnmapEvery (committer only; see
// UnmapEvery). It runs inside a read transaction, which holds off bbolt's
// remap, so the range it releases is bbolt's map and nothing else. The map
// is read-only and bbolt writes with pwrite, so no data is in the map that
// is not in the file: a later read maps the page again from the page cache.
func (x *DB) unmapResident(now time.Time) {
	if x.opt.UnmapEvery < 0 || now.Sub(x.unmappedAt) < x.opt.UnmapEvery {
		return
	}
	x.unmappedAt = now
	_ = x.bdb.View(func(tx *bolt.Tx) error {
		start, size := x.bdb.Info().Data, uintptr(tx.Size())
		if start == 0 || size == 0 {
			return nil
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, size, unix.MADV_DONTNEED)
		if errno != 0 {
			x.log.Debug("storage: releasing mapped pages", "err", errno)
		}
		return nil
	})
}
