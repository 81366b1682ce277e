package uplink

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func readingSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema(Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "ts", Type: TypeTimestamp, Optional: true},
		Column{Name: "seq", Type: TypeInt64, Optional: true},
		Column{Name: "temp", Type: TypeDouble, Optional: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUploaderSplitsBatchAtHourBoundary: one epoch whose rows straddle
// 11:00 UTC becomes two objects, one per hour directory, under the sink
// level; a failed put of the second object retries that object only, with
// the same key.
func TestUploaderSplitsBatchAtHourBoundary(t *testing.T) {
	cfg := testConfig(t)
	hour := time.Date(2024, 1, 1, 11, 0, 0, 0, time.UTC).UnixMilli()
	rows := []Row{
		{ID: "raw/0/1/7/0", Data: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"seq":1,"temp":20.5}`, hour-1)},
		{ID: "raw/0/1/7/1", Data: fmt.Appendf(nil, `{"sensor":"a","ts":%d,"seq":2}`, hour)},
		{ID: "raw/0/1/7/2", Data: fmt.Appendf(nil, `{"sensor":"b","ts":%d,"seq":3,"temp":19}`, hour-3_600_000)},
	}
	sp := &memSpool{}
	sp.add(rows...)
	tgt := &LocalTarget{Dir: cfg.Local.Dir}
	var mu sync.Mutex
	var puts []string
	failed := false
	u, err := New(cfg, sp, Options{Sink: "lake", Target: TargetFunc(func(ctx context.Context, k string, r io.Reader, n int64) error {
		mu.Lock()
		puts = append(puts, k)
		fail := strings.Contains(k, "hour=11") && !failed
		failed = failed || fail
		mu.Unlock()
		if fail {
			return &UploadError{Key: k, Kind: ErrNetwork, Err: io.ErrUnexpectedEOF}
		}
		return tgt.Put(ctx, k, r, n)
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetSchema("raw", readingSchema(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	flush(t, u)

	k10 := "pipeline=raw/sink=lake/date=2024-01-01/hour=10/gw1-p0-e000000000007-000000000007.parquet"
	k11 := "pipeline=raw/sink=lake/date=2024-01-01/hour=11/gw1-p0-e000000000007-000000000007.parquet"
	mu.Lock()
	if want := []string{k10, k11, k11}; !reflect.DeepEqual(puts, want) {
		t.Errorf("puts = %v; want %v (the failed object retried alone, same key)", puts, want)
	}
	mu.Unlock()
	objs := readDir(t, cfg.Local.Dir, FormatParquet)
	if got := keysOf(objs); !reflect.DeepEqual(got, []string{k10, k11}) {
		t.Fatalf("objects = %v; want %s and %s", got, k10, k11)
	}
	ids := func(k string) []string {
		var out []string
		for _, m := range objs[k] {
			out = append(out, m["_id"].(string))
		}
		sort.Strings(out)
		return out
	}
	if a, b := ids(k10), ids(k11); !reflect.DeepEqual(a, []string{"raw/0/1/7/0", "raw/0/1/7/2"}) || !reflect.DeepEqual(b, []string{"raw/0/1/7/1"}) {
		t.Fatalf("hour 10 holds %v, hour 11 holds %v; want rows 0 and 2, then row 1", a, b)
	}
	if m := objs[k11][0]; m["ts"] != hour || m["seq"] != int64(2) {
		t.Fatalf("row = %v; want ts %d and seq 2 as int64", m, hour)
	}
	if st := u.Status(); st.Objects != 2 || st.Rows != 3 || st.LastKey != k11 || sp.len() != 0 {
		t.Fatalf("status %+v, spool %d; want 2 objects, 3 rows, last key %s, empty spool", st, sp.len(), k11)
	}
}

// TestUploaderKeepsSchemaAcrossRestart: rows spooled before a restart are
// written with the declared schema even before the pipeline declares it
// again, and rows that do not fit it are dead letters.
func TestUploaderKeepsSchemaAcrossRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.JournalDir = t.TempDir()
	u, err := New(cfg, &memSpool{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetSchema("team/raw", readingSchema(t)); err != nil {
		t.Fatal(err)
	}
	sp := &memSpool{}
	sp.add(Row{ID: "team/raw/1/1/3/0", Data: []byte(`{"sensor":"a","ts":1704106800000,"seq":7}`)},
		Row{ID: "team/raw/1/1/3/1", Data: []byte(`{"sensor":"a","ts":1704106800001,"seq":"8"}`)})
	var mu sync.Mutex
	dl := map[string]string{}
	u2, _ := startUploader(t, cfg, sp, Options{DeadLetter: func(id string, _ []byte, reason string) error {
		mu.Lock()
		defer mu.Unlock()
		dl[id] = reason
		return nil
	}})
	flush(t, u2)
	objs := readDir(t, cfg.Local.Dir, FormatParquet)
	want := map[string][]map[string]any{
		"pipeline=team%2Fraw/date=2024-01-01/hour=11/gw1-p1-e000000000003-000000000003.parquet": {
			{"sensor": "a", "ts": int64(1704106800000), "seq": int64(7), "_id": "team/raw/1/1/3/0"}},
	}
	if !reflect.DeepEqual(objs, want) {
		t.Fatalf("objects = %v; want %v", objs, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if r := dl["team/raw/1/1/3/1"]; !strings.Contains(r, `member "seq": is a string, the output schema says int64`) {
		t.Fatalf("dead letters = %v; want row 1 for its string seq", dl)
	}
}
