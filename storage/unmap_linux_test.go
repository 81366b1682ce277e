package storage_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/storage"
)

// mappedKB returns the resident kB of this process's mappings of path
// (/proc/self/smaps).
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if fs := strings.Fields(l); len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			in = len(fs) >= 6 && fs[5] == path
			continue
		}
		if in && strings.HasPrefix(l, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			kb += n
		}
	}
	return kb
}

// Reading the whole file through bbolt's map (a log read from the file)
// maps every page of it into the process; the next commit releases them, so
// the database counts in the resident set for what the last second read,
// not for the file's size. With UnmapEvery negative the pages stay mapped.
func TestCommitReleasesTheMappedPagesOfTheFile(t *testing.T) {
	for _, tc := range []struct {
		every     int // UnmapEvery in ns; negative never
		wantBelow bool
	}{{1, true}, {-1, false}} {
		t.Run(fmt.Sprintf("every=%d", tc.every), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "edged.db")
			o := testOptions()
			o.Compression = storage.CompressNone // the file grows by what is appended
			o.TailBytes = -1                     // reads go to the file
			o.UnmapEvery = time.Duration(tc.every)
			db := openDB(t, path, o)
			rec := make([]byte, 1000)
			recs := make([][]byte, 1000)
			for b := range 8 { // 8 MB of records
				for i := range recs {
					for j := range rec {
						rec[j] = byte('a' + (b*7+i*13+j*3)%26)
					}
					recs[i] = append([]byte(nil), rec...)
				}
				if _, _, err := db.AppendLog(ctx, "src", recs); err != nil {
					t.Fatal(err)
				}
			}
			// The committer releases the pages after an append has returned:
			// the release that follows the last one may come after a read,
			// so read again (until a deadline) if it did.
			var read int
			for deadline := time.Now().Add(10 * time.Second); ; {
				n := 0
				if err := db.ReadLog("src", 0, 0, func(uint64, []byte) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				if n != 8000 {
					t.Fatalf("read %d records, want 8000", n)
				}
				if read = mappedKB(t, path); read >= 4<<10 || time.Now().After(deadline) {
					break
				}
			}
			if read < 4<<10 {
				t.Fatalf("after reading 8 MB from the file %d kB of it are mapped, want over 4096 (is the read not from the map?)", read)
			}
			// Two commits: the committer releases the pages after the first
			// has returned, before it takes the second.
			for range 2 {
				if _, _, err := db.AppendLog(ctx, "src", recs[:1]); err != nil {
					t.Fatal(err)
				}
			}
			after := mappedKB(t, path)
			t.Logf("resident kB of the file: %d after the read, %d after the next commit", read, after)
			if below := after < 1<<10; below != tc.wantBelow {
				t.Fatalf("after the next commit %d kB of the file are mapped (%d after the read); want below 1024: %v", after, read, tc.wantBelow)
			}
		})
	}
}
