package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgedio/edged/engine"
)

// BenchmarkHistoryJoin measures the history join per record on the
// gateway's store: a table of 10,000 sensors with 7 days of hourly rows
// (1.68 million), read by records of random sensors in epochs of 1,000,
// each epoch one read transaction, as the executor runs it (its commit
// included). Lookups: the same hour yesterday (1 read), the same hour on
// the last 7 days (7 reads), the last 7 days of hourly rows (168 reads),
// and the anomaly step with the 7-day baseline (7 reads and its model).
func BenchmarkHistoryJoin(b *testing.B) {
	db := openDB(b, filepath.Join(b.TempDir(), "edged.db"), testOptions())
	const sensors, hours = 10_000, 7 * 24
	spec := &engine.TableSpec{Name: "hourly", Keys: []engine.Field{{Name: "sensor", Kind: engine.KindString}},
		Cols: []engine.Field{{Name: "readings", Kind: engine.KindNumber}, {Name: "temp", Kind: engine.KindNumber}},
		Keep: (hours + 24) * hour, MaxRows: 2_000_000}
	keys := make([]engine.Value, sensors)
	for s := range keys {
		keys[s] = engine.String(fmt.Sprintf("sensor-%05d", s))
	}
	var rows []engine.TableRow
	for h := int64(0); h < hours; h++ {
		rows = rows[:0]
		for s := range sensors {
			v := engine.AppendValue(engine.AppendValue(nil, engine.Number(360)), engine.Number(20+float64(s%7)))
			rows = append(rows, engine.TableRow{Key: engine.AppendTableKey(nil, keys[s]), Time: h * hour, Val: v})
		}
		if err := db.CommitAll(context.Background(), []*engine.Commit{{Pipeline: "writer", Epoch: uint64(h + 1),
			Tables: []engine.TableWrite{{Spec: spec, Rows: rows}}}}); err != nil {
			b.Fatal(err)
		}
	}
	schema := engine.MustSchema(engine.Field{Name: "sensor", Kind: engine.KindString}, engine.Field{Name: "temp", Kind: engine.KindNumber})
	now := int64(hours) * hour // the hour after the last one written
	for _, c := range []struct {
		name    string
		offset  time.Duration
		periods int
		anomaly bool
	}{{"yesterday", 24 * time.Hour, 1, false}, {"same-hour-7-days", 24 * time.Hour, 7, false}, {"hourly-7-days", time.Hour, 168, false},
		{"anomaly-baseline-7-days", 24 * time.Hour, 7, true}} {
		b.Run(c.name, func(b *testing.B) {
			bld := engine.NewBuilder("join-" + c.name)
			src := bld.Source("in", schema)
			l := engine.HistoryLookup{Table: "hourly", Keys: []string{"sensor"}, Align: time.Hour, Offset: c.offset, Periods: c.periods}
			op := engine.JoinHistory(engine.HistoryJoinConfig{Lookup: l, Fields: []engine.Field{{Name: "temp", Kind: engine.KindNumber}}})
			if c.anomaly {
				op = engine.Anomaly(engine.AnomalyConfig{Rule: "r", Keys: []string{"sensor"}, Value: "temp",
					Baseline: &engine.AnomalyBaseline{Lookup: l, Field: "temp"}})
			}
			bld.Sink("out", src.Then("join", op))
			p, err := bld.Build()
			if err != nil {
				b.Fatal(err)
			}
			x, err := engine.NewExecutor(p, engine.Options{Store: db})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			matched := 0
			for i := 0; i < b.N; {
				in := x.Input("in")
				for j := 0; j < 1000 && i < b.N; i, j = i+1, j+1 {
					in.AppendValues(now+int64(i%3600_000), keys[(i*7919)%sensors], engine.Number(21))
				}
				res, err := x.RunEpochAt(context.Background(), int64(i))
				if err != nil {
					b.Fatal(err)
				}
				matched += res.Output(p, "out").Len()
			}
			if !c.anomaly && matched != b.N {
				b.Fatalf("%d of %d records matched", matched, b.N)
			}
		})
	}
}
