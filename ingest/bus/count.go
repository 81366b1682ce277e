package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// A count file holds a pulse counter's count: 8 bytes little-endian, then
// the CRC-32 (IEEE) of those 8 bytes, little-endian. It is replaced
// atomically (written to a temporary file, synced, renamed, directory
// synced), so it holds either the old or the new count after a power loss.
const countFileSize = 12

// CorruptCountError is returned when a count file does not check out.
type CorruptCountError struct{ File string }

func (e *CorruptCountError) Error() string {
	return fmt.Sprintf("count file %s is corrupt (bad size or checksum); the counter stays stopped so that its count never goes back: fix or remove the file to restart it at 0", e.File)
}

// loadCount returns the count in file, 0 when there is no file.
func loadCount(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != countFileSize || crc32.ChecksumIEEE(b[:8]) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, &CorruptCountError{File: file}
	}
	return binary.LittleEndian.Uint64(b[:8]), nil
}

// saveCount replaces file with one holding n.
func saveCount(file string, n uint64) error {
	var b [countFileSize]byte
	binary.LittleEndian.PutUint64(b[:8], n)
	binary.LittleEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[:8]))
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save count: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
