package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/storage"
)

const hour = 3600_000

func tableSpec(keep, maxRows int64) *engine.TableSpec {
	return &engine.TableSpec{Name: "hourly", Keys: []engine.Field{{Name: "sensor", Kind: engine.KindString}},
		Cols: []engine.Field{{Name: "temp", Kind: engine.KindNumber}}, Keep: keep, MaxRows: maxRows, Writer: "p/keep"}
}

func row(sensor string, t int64, temp float64) engine.TableRow {
	return engine.TableRow{Key: engine.AppendTableKey(nil, engine.String(sensor)), Time: t,
		Val: engine.AppendValue(nil, engine.Number(temp))}
}

// readRows returns the rows of a sensor in [from, to] as "time=temp".
func readRows(t *testing.T, db engine.TableReader, sensor string, from, to int64) []string {
	t.Helper()
	var out []string
	err := db.ViewTables(func(v engine.TableView) error {
		return v.Rows("hourly", engine.AppendTableKey(nil, engine.String(sensor)), from, to, func(ts int64, val []byte) bool {
			x, _, err := engine.ReadValue(val)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d=%v", ts/hour, x.Num))
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tableInfo(t *testing.T, db *storage.DB) storage.TableInfo {
	t.Helper()
	ts, err := db.Tables()
	if err != nil || len(ts) != 1 {
		t.Fatalf("Tables: %v, %v", ts, err)
	}
	return ts[0]
}

// TestHistoryRowsCommitWithTheirEpochOnce: history-table rows are part of
// the epoch's transaction: a replayed epoch (refused as already committed)
// writes nothing twice, a failed commit writes nothing, and rewriting a
// row replaces it without counting it again.
func TestHistoryRowsCommitWithTheirEpochOnce(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	ep := func(epoch uint64, rows ...engine.TableRow) error {
		return db.CommitAll(ctx, []*engine.Commit{{Pipeline: "p", Epoch: epoch,
			Tables: []engine.TableWrite{{Spec: tableSpec(0, 0), Rows: rows}}}})
	}
	if err := ep(1, row("a", 1*hour, 20), row("a", 2*hour, 21), row("b", 1*hour, 30)); err != nil {
		t.Fatal(err)
	}
	if err := ep(1, row("a", 3*hour, 99)); err == nil {
		t.Fatal("a replayed epoch committed again")
	}
	if got := readRows(t, db, "a", 0, 10*hour); fmt.Sprint(got) != "[1=20 2=21]" {
		t.Fatalf("rows of a after the replay: %v", got)
	}
	if err := ep(2, row("a", 2*hour, 22)); err != nil {
		t.Fatal(err)
	}
	if got := readRows(t, db, "a", 2*hour, 2*hour); fmt.Sprint(got) != "[2=22]" {
		t.Fatalf("rewritten row: %v", got)
	}
	if n := tableInfo(t, db).Rows; n != 3 {
		t.Fatalf("rows: %d; want 3", n)
	}
}

// TestHistoryRetentionAndRowBudget: rows older than keep (by the newest
// row's time) go, a chunk at a time, never a row within keep; over the row
// budget the oldest rows go first, and a row that would need the chunk
// being written is dropped and counted.
func TestHistoryRetentionAndRowBudget(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	keep := int64(24 * hour) // chunks of 3h
	for h := int64(0); h < 72; h++ {
		c := &engine.Commit{Pipeline: "p", Epoch: uint64(h + 1),
			Tables: []engine.TableWrite{{Spec: tableSpec(keep, 0), Rows: []engine.TableRow{row("a", h*hour, float64(h))}}}}
		if err := db.CommitAll(ctx, []*engine.Commit{c}); err != nil {
			t.Fatal(err)
		}
	}
	got := readRows(t, db, "a", 0, 100*hour)
	// Newest 71h: rows from 47h are within keep; the chunk of 45h-47h may stay.
	if len(got) < 25 || len(got) > 27 || got[len(got)-1] != "71=71" {
		t.Fatalf("after 72 hourly rows with keep 24h: %v", got)
	}
	if first := got[0]; first != "45=45" && first != "46=46" && first != "47=47" {
		t.Fatalf("oldest row kept %s; want one of 45-47 (chunks of 3h)", first)
	}
	info := tableInfo(t, db)
	if info.Rows != int64(len(got)) || info.Expired != 72-info.Rows {
		t.Fatalf("info %+v with %d rows read", info, len(got))
	}

	// Row budget 10, chunks of a day (no keep): rows of day 2 evict day 1's.
	db2 := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	var rows []engine.TableRow
	for h := int64(0); h < 8; h++ {
		rows = append(rows, row("a", h*hour, 1))
	}
	for h := int64(24); h < 36; h++ {
		rows = append(rows, row("a", h*hour, 2))
	}
	if err := db2.CommitAll(ctx, []*engine.Commit{{Pipeline: "p", Epoch: 1,
		Tables: []engine.TableWrite{{Spec: tableSpec(0, 10), Rows: rows}}}}); err != nil {
		t.Fatal(err)
	}
	got = readRows(t, db2, "a", 0, 100*hour)
	info = tableInfo(t, db2)
	if len(got) != 10 || got[0] != "24=2" || info.Evicted != 8 || info.Dropped != 2 || info.Rows != 10 {
		t.Fatalf("budget 10: rows %v, info %+v; want hours 24-33, 8 evicted, 2 dropped", got, info)
	}
}

// TestHistoryViewIsASnapshot: a view sees the rows committed before it
// opened, not those committed while it is open.
func TestHistoryViewIsASnapshot(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "edged.db"), testOptions())
	ctx := context.Background()
	commit := func(epoch uint64, r engine.TableRow) {
		if err := db.CommitAll(ctx, []*engine.Commit{{Pipeline: "p", Epoch: epoch,
			Tables: []engine.TableWrite{{Spec: tableSpec(0, 0), Rows: []engine.TableRow{r}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	commit(1, row("a", hour, 1))
	err := db.ViewTables(func(v engine.TableView) error {
		// The commit fits the initial memory map (8 MiB), so it needs no
		// remap and does not wait for this read transaction.
		done := make(chan struct{})
		go func() { commit(2, row("a", 2*hour, 2)); close(done) }()
		<-done
		n := 0
		v.Rows("hourly", engine.AppendTableKey(nil, engine.String("a")), 0, 10*hour, func(int64, []byte) bool { n++; return true })
		if n != 1 {
			t.Errorf("the view saw %d rows; want the 1 committed before it", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readRows(t, db, "a", 0, 10*hour); len(got) != 2 {
		t.Fatalf("after the view: %v", got)
	}
}

// BenchmarkHistoryTableBytesPerRow reports the bytes of bbolt pages a
// history table holds per row: 10,000 sensors, 7 days of hourly rows of
// three numbers, written an hour (10,000 rows) per commit.
func BenchmarkHistoryTableBytesPerRow(b *testing.B) {
	for range b.N {
		db := openDB(b, filepath.Join(b.TempDir(), "edged.db"), testOptions())
		spec := &engine.TableSpec{Name: "hourly", Keys: []engine.Field{{Name: "sensor", Kind: engine.KindString}},
			Cols: []engine.Field{{Name: "window_end", Kind: engine.KindTime}, {Name: "readings", Kind: engine.KindNumber},
				{Name: "temp", Kind: engine.KindNumber}}, Keep: 7 * 24 * hour, MaxRows: 2_000_000}
		var rows []engine.TableRow
		for h := int64(0); h < 7*24; h++ {
			rows = rows[:0]
			for s := range 10_000 {
				v := engine.AppendValue(nil, engine.Time((h+1)*hour))
				v = engine.AppendValue(v, engine.Number(360))
				v = engine.AppendValue(v, engine.Number(20+float64(s%10)))
				rows = append(rows, engine.TableRow{Key: engine.AppendTableKey(nil, engine.String(fmt.Sprintf("sensor-%05d", s))),
					Time: h * hour, Val: v})
			}
			if err := db.CommitAll(context.Background(), []*engine.Commit{{Pipeline: "p", Epoch: uint64(h + 1),
				Tables: []engine.TableWrite{{Spec: spec, Rows: rows}}}}); err != nil {
				b.Fatal(err)
			}
		}
		info := tableInfo(&testing.T{}, db)
		b.ReportMetric(float64(info.Bytes)/float64(info.Rows), "bytes/row")
		b.ReportMetric(float64(info.Rows), "rows")
	}
}
