//go:build integration

package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// duckdbVersion is the npm package the DuckDB test reads the objects with.
const duckdbVersion = "@duckdb/node-api@1.5.6-r.1"

const duckdbHint = "the DuckDB read-back test needs node and npm (Debian: apt-get install nodejs npm); " +
	"it installs " + duckdbVersion + " itself into .cache/ (or $EDGED_DUCKDB_DIR)"

// duckdbScript runs each named query of the JSON object on stdin and prints
// {"name": rows} (or {"name": {"error": msg}}) as JSON. The session time
// zone is UTC, the zone of the Hive date and hour.
const duckdbScript = `
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const queries = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const out = {};
  for (const [name, sql] of Object.entries(queries)) {
    try {
      out[name] = (await conn.runAndReadAll(sql)).getRowObjectsJson();
    } catch (e) {
      out[name] = { error: String(e.message || e) };
    }
  }
  process.stdout.write(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
`

// duckdb installs the DuckDB client once and runs queries through node.
func duckdb(t *testing.T, queries map[string]string) map[string]json.RawMessage {
	t.Helper()
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Fatalf("node or npm not found (%v, %v): %s", err1, err2, duckdbHint)
	}
	dir := os.Getenv("EDGED_DUCKDB_DIR")
	if dir == "" {
		root, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, ".cache", "duckdb-node-api")
	}
	mod := filepath.Join(dir, "node_modules", "@duckdb", "node-api")
	if _, err := os.Stat(mod); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, duckdbVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install %s into %s: %v\n%s\n%s", duckdbVersion, dir, err, out, duckdbHint)
		}
	}
	in, _ := json.Marshal(queries)
	script := filepath.Join(t.TempDir(), "query.js")
	if err := os.WriteFile(script, []byte(duckdbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	res := map[string]json.RawMessage{}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	for name, r := range res {
		if bytes.HasPrefix(r, []byte(`{"error"`)) {
			t.Errorf("query %s (%s) failed: %s", name, queries[name], r)
		}
	}
	return res
}

// uplinkTo drains rows through a real Uploader (local target, sink "lake")
// with the pipeline's schema declared.
func uplinkTo(t *testing.T, dir, pipeline string, schema *Schema, maxRows int, rows []Row) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Local.Dir, cfg.MaxRows = dir, maxRows
	sp := &memSpool{}
	sp.add(rows...)
	u, err := New(cfg, sp, Options{Sink: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetSchema(pipeline, schema); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	flush(t, u)
	cancel()
	<-done
	if st := u.Status(); st.Rows != uint64(len(rows)) || st.DeadLetters != 0 {
		t.Fatalf("status %+v; want %d rows, no dead letters", st, len(rows))
	}
}

func rowsOf[T any](t *testing.T, raw json.RawMessage) []T {
	t.Helper()
	var out []T
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return out
}

// TestIntegrationDuckDBReadsUplinkedParquet reads the objects of a raw
// readings pipeline and a windows pipeline back with DuckDB, the way a data
// engineer would (read_parquet over the Hive layout): the column types,
// epoch_ms over a window bound, avg over objects of which some batches lack
// the field entirely, grouping by a timestamp, and every row under the date
// and hour of its own time.
func TestIntegrationDuckDBReadsUplinkedParquet(t *testing.T) {
	rawDir, winDir := t.TempDir(), t.TempDir()

	// Raw readings: 2,000 rows from 09:50 to 10:13 UTC, 100 per epoch (so
	// epoch 9 crosses 10:00); the readings of epochs 3 to 5 have no temp at
	// all.
	rawSchema, _ := NewSchema(Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "seq", Type: TypeInt64, Optional: true}, Column{Name: "ts", Type: TypeTimestamp, Optional: true},
		Column{Name: "temp", Type: TypeDouble, Optional: true})
	t0 := time.Date(2026, 3, 1, 9, 50, 0, 0, time.UTC).UnixMilli()
	var raw []Row
	var tempSum float64
	var temps int
	perHour := map[string]int{}
	for i := 0; i < 2000; i++ {
		epoch := uint64(i/100 + 1)
		ts := t0 + int64(i)*700
		obj := fmt.Sprintf(`{"sensor":"s-%02d","seq":%d,"ts":%d`, i%20, 1_000_000+i, ts)
		if epoch < 3 || epoch > 5 {
			temp := 15 + float64(i%150)/10
			obj += fmt.Sprintf(`,"temp":%g`, temp)
			tempSum += temp
			temps++
		}
		raw = append(raw, Row{ID: fmt.Sprintf("raw/0/%d/%d", epoch, i%100), Data: []byte(obj + "}")})
		perHour[time.UnixMilli(ts).UTC().Format("2006-01-02 15")]++
	}
	uplinkTo(t, rawDir, "raw", rawSchema, 100, raw)

	// Windows: one-minute windows of 20 sensors over 90 minutes.
	winSchema, _ := NewSchema(Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "window_start", Type: TypeTimestamp, Optional: true}, Column{Name: "window_end", Type: TypeTimestamp, Optional: true},
		Column{Name: "n", Type: TypeInt64, Optional: true}, Column{Name: "avg_temp", Type: TypeDouble, Optional: true})
	var win []Row
	nPerWindow := map[int64]int64{}
	nPerHour := map[string]int64{}
	for m := 0; m < 90; m++ {
		ws := t0 + int64(m)*60_000
		for s := 0; s < 20; s++ {
			n := int64(5 + (m+s)%7)
			win = append(win, Row{ID: fmt.Sprintf("win/0/%d/%d", m+1, s),
				Data: fmt.Appendf(nil, `{"sensor":"s-%02d","window_start":%d,"window_end":%d,"n":%d,"avg_temp":%g}`, s, ws, ws+60_000, n, 20+float64(s)/4)})
			nPerWindow[ws] += n
			nPerHour[time.UnixMilli(ws).UTC().Format("2006-01-02 15:04:05")[:13]] += n
		}
	}
	uplinkTo(t, winDir, "win", winSchema, 200, win)

	rawSrc := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning=true)", rawDir)
	winSrc := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning=true)", winDir)
	res := duckdb(t, map[string]string{
		"raw_types":   "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + rawSrc + ")",
		"win_types":   "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + winSrc + ")",
		"raw_stats":   "SELECT count(*)::INT AS n, count(DISTINCT seq)::INT AS seqs, count(temp)::INT AS temps, avg(temp) AS avg_temp FROM " + rawSrc,
		"raw_hours":   "SELECT strftime(date, '%Y-%m-%d') || ' ' || hour AS h, count(*)::INT AS n FROM " + rawSrc + " GROUP BY ALL ORDER BY ALL",
		"raw_placed":  "SELECT count(*)::INT AS wrong FROM " + rawSrc + " WHERE hour::INT <> hour(ts) OR date <> CAST(ts AS DATE)",
		"win_epochms": "SELECT epoch_ms(window_start)::VARCHAR AS ms, sum(n)::INT AS n FROM " + winSrc + " GROUP BY window_start ORDER BY window_start",
		"win_hourly":  "SELECT strftime(date_trunc('hour', window_start), '%Y-%m-%d %H') AS h, sum(n)::INT AS n FROM " + winSrc + " GROUP BY 1 ORDER BY 1",
		"objects":     "SELECT count(DISTINCT filename)::INT AS n FROM read_parquet('" + rawDir + "/**/*.parquet', filename=true)",
	})

	types := func(name string) map[string]string {
		m := map[string]string{}
		for _, r := range rowsOf[map[string]string](t, res[name]) {
			m[r["column_name"]] = r["column_type"]
		}
		return m
	}
	// TIMESTAMP(isAdjustedToUTC) is an instant: DuckDB's TIMESTAMPTZ. The
	// zero-padded hour is a VARCHAR to DuckDB's Hive type detection
	// (hive_types={'hour': INT} makes it a number).
	const tz = "TIMESTAMP WITH TIME ZONE"
	wantRaw := map[string]string{"sensor": "VARCHAR", "seq": "BIGINT", "ts": tz, "temp": "DOUBLE", "_id": "VARCHAR",
		"pipeline": "VARCHAR", "sink": "VARCHAR", "date": "DATE", "hour": "VARCHAR"}
	if got := types("raw_types"); !reflect.DeepEqual(got, wantRaw) {
		t.Errorf("raw column types = %v; want %v", got, wantRaw)
	}
	wantWin := map[string]string{"sensor": "VARCHAR", "window_start": tz, "window_end": tz, "n": "BIGINT",
		"avg_temp": "DOUBLE", "_id": "VARCHAR", "pipeline": "VARCHAR", "sink": "VARCHAR", "date": "DATE", "hour": "VARCHAR"}
	if got := types("win_types"); !reflect.DeepEqual(got, wantWin) {
		t.Errorf("window column types = %v; want %v", got, wantWin)
	}

	st := rowsOf[struct {
		N, Seqs, Temps int
		AvgTemp        float64 `json:"avg_temp"`
	}](t, res["raw_stats"])
	if len(st) != 1 || st[0].N != 2000 || st[0].Seqs != 2000 || st[0].Temps != temps || math.Abs(st[0].AvgTemp-tempSum/float64(temps)) > 1e-9 {
		t.Errorf("raw stats = %+v; want 2000 rows, 2000 seqs, %d temps averaging %v", st, temps, tempSum/float64(temps))
	}
	var gotHours []string
	for _, r := range rowsOf[struct {
		H string
		N int
	}](t, res["raw_hours"]) {
		gotHours = append(gotHours, fmt.Sprintf("%s:%d", r.H, r.N))
	}
	var wantHours []string
	for h, n := range perHour {
		wantHours = append(wantHours, fmt.Sprintf("%s:%d", h, n))
	}
	sort.Strings(wantHours)
	if !reflect.DeepEqual(gotHours, wantHours) {
		t.Errorf("rows per hive date/hour = %v; want %v", gotHours, wantHours)
	}
	if p := rowsOf[struct{ Wrong int }](t, res["raw_placed"]); len(p) != 1 || p[0].Wrong != 0 {
		t.Errorf("rows under another hour than their ts: %v; want 0", p)
	}
	if o := rowsOf[struct{ N int }](t, res["objects"]); len(o) != 1 || o[0].N != 21 {
		t.Errorf("objects = %v; want 21 (20 epochs, the one crossing 10:00 split in two)", o)
	}

	ep := rowsOf[struct {
		Ms string
		N  int64
	}](t, res["win_epochms"])
	if len(ep) != len(nPerWindow) {
		t.Fatalf("%d windows; want %d", len(ep), len(nPerWindow))
	}
	for _, r := range ep {
		var ms int64
		fmt.Sscan(r.Ms, &ms)
		if nPerWindow[ms] != r.N {
			t.Errorf("window %s: sum(n) = %d; want %d", r.Ms, r.N, nPerWindow[ms])
		}
	}
	var gotHourly []string
	for _, r := range rowsOf[struct {
		H string
		N int64
	}](t, res["win_hourly"]) {
		gotHourly = append(gotHourly, fmt.Sprintf("%s:%d", r.H, r.N))
	}
	var wantHourly []string
	for h, n := range nPerHour {
		wantHourly = append(wantHourly, fmt.Sprintf("%s:%d", h, n))
	}
	sort.Strings(wantHourly)
	if !reflect.DeepEqual(gotHourly, wantHourly) {
		t.Errorf("sum(n) by date_trunc('hour', window_start) = %v; want %v", gotHourly, wantHourly)
	}
	t.Logf("DuckDB %s read %d raw rows and %d windows; %s", duckdbVersion, len(raw), len(win), strings.TrimSpace(string(res["objects"])))
}
