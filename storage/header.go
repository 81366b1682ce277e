package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// bbolt's on-disk meta page (internal/common/meta.go), little-endian on every
// platform edged runs on: a 16-byte page header, then magic, version, page
// size, flags (uint32 each), root bucket (pgid, sequence), freelist pgid, high
// water mark pgid, txid (uint64 each) and an FNV-64a checksum of what precedes it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaOff        = 16
	metaSumLen     = 56
	minPageSize    = 512
	maxPageSize    = 1 << 16
	metaHeaderSize = metaOff + metaSumLen + 8
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64 // high water mark: pages [0, pgid) exist
	txid     uint64
}

func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < metaHeaderSize {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[metaOff:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic (not a bbolt file)")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("unsupported bbolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if h.Sum64() != le.Uint64(m[metaSumLen:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	ps := le.Uint32(m[8:])
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return boltMeta{}, fmt.Errorf("bad page size %d", ps)
	}
	return boltMeta{pageSize: ps, pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// checkFile verifies an existing database file before bbolt maps it: at least
// one valid meta page, and a file long enough for the pages that meta page
// references. bbolt itself would map a truncated file and fault (SIGBUS) on
// the first access past its end, so this check is what turns truncation into
// an error. A missing or empty file is fine (a new database).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("storage: stat %q: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	buf := make([]byte, metaHeaderSize)
	var metas []boltMeta
	var errs []error
	m0, err := readMeta(f, 0, buf)
	if err == nil {
		metas = append(metas, m0)
	} else {
		errs = append(errs, fmt.Errorf("meta page 0: %w", err))
	}
	// The second meta page sits one page further; its size comes from the first
	// valid meta, or is guessed among the usual sizes.
	sizes := []int64{4096, 16384, 65536, 8192, 1024, 2048, 32768, 512}
	if len(metas) > 0 {
		sizes = []int64{int64(m0.pageSize)}
	}
	for _, ps := range sizes {
		m1, err := readMeta(f, ps, buf)
		if err == nil && int64(m1.pageSize) == ps {
			metas = append(metas, m1)
			break
		}
		if len(sizes) == 1 {
			errs = append(errs, fmt.Errorf("meta page 1: %w", err))
		}
	}
	if len(metas) == 0 {
		return &CorruptError{Path: path, Reason: "no valid bbolt meta page", Err: errors.Join(errs...)}
	}
	// bbolt uses the valid meta with the highest txid.
	m := metas[0]
	for _, x := range metas[1:] {
		if x.txid > m.txid {
			m = x
		}
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return &CorruptError{Path: path,
			Reason: fmt.Sprintf("file is %d bytes but its last commit (txid %d) references %d bytes", size, m.txid, need)}
	}
	return nil
}

func readMeta(f *os.File, off int64, buf []byte) (boltMeta, error) {
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return boltMeta{}, errors.New("file ends before the meta page")
		}
		return boltMeta{}, err
	}
	return parseMeta(buf)
}

// boltOpenError turns an error of bolt.Open into an Open error naming the file.
func boltOpenError(path string, err error) error {
	switch {
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum),
		errors.Is(err, bolt.ErrVersionMismatch), errors.Is(err, bolt.ErrInvalidMapping):
		return &CorruptError{Path: path, Reason: "bbolt rejected the file", Err: err}
	case errors.Is(err, bolt.ErrTimeout):
		return fmt.Errorf("storage: open %q: the file is locked by another process (is another edged running?): %w", path, err)
	}
	return fmt.Errorf("storage: open %q: %w", path, err)
}
