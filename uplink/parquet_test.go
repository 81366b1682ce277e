package uplink

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/edgedio/edged/uplink/s3test"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// windowSchema is the output of a typical window step: key, bounds, count,
// average.
func windowSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema(
		Column{Name: "sensor", Type: TypeString, Optional: true},
		Column{Name: "window_start", Type: TypeTimestamp, Optional: true},
		Column{Name: "window_end", Type: TypeTimestamp, Optional: true},
		Column{Name: "n", Type: TypeInt64, Optional: true},
		Column{Name: "avg_temp", Type: TypeDouble, Optional: true},
		Column{Name: "hot", Type: TypeBool, Optional: true},
		Column{Name: "tags", Type: TypeJSON, Optional: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encodeParquet(t testing.TB, e *ParquetEncoder, s *Schema, rows []Row) ([]byte, []BadRow) {
	t.Helper()
	var buf bytes.Buffer
	bad, err := e.Encode(&buf, s, rows)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), bad
}

func openParquet(t testing.TB, data []byte) *parquet.File {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("parquet-go cannot open the file: %v", err)
	}
	return f
}

// TestParquetSchemaLogicalTypes: the footer says what a reader needs, read
// by parquet-go's own Thrift decoder: physical and logical types in the
// pipeline's order, optionality, the id column last and required, the
// schema in the metadata, zstd.
func TestParquetSchemaLogicalTypes(t *testing.T) {
	rows := mkRows("agg", 0, 3,
		`{"sensor":"s-1","window_start":1700000000000,"window_end":1700000060000,"n":12,"avg_temp":21.5,"hot":false,"tags":["a"]}`)
	data, bad := encodeParquet(t, &ParquetEncoder{IDColumn: "_id"}, windowSchema(t), rows)
	if len(bad) != 0 {
		t.Fatalf("bad rows %v; want none", bad)
	}
	f := openParquet(t, data)
	got := f.Schema().String()
	want := `message schema {
	optional binary sensor (STRING);
	optional int64 window_start (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	optional int64 window_end (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	optional int64 n (INT(64,true));
	optional double avg_temp;
	optional boolean hot;
	optional binary tags (JSON);
	required binary _id (STRING);
}`
	if got != want {
		t.Fatalf("schema:\n%s\nwant\n%s", got, want)
	}
	md := f.Metadata()
	kv := map[string]string{}
	for _, x := range md.KeyValueMetadata {
		kv[x.Key] = x.Value
	}
	if v := kv["edged.schema_version"]; v != windowSchema(t).Version() || len(v) != 8 {
		t.Errorf("edged.schema_version = %q; want %q", v, windowSchema(t).Version())
	}
	var back Schema
	if err := json.Unmarshal([]byte(kv["edged.schema"]), &back); err != nil || !back.Equal(windowSchema(t)) {
		t.Errorf("edged.schema = %s (%v); want the encoder's schema", kv["edged.schema"], err)
	}
	for _, cc := range md.RowGroups[0].Columns {
		if cc.MetaData.Codec != format.Zstd {
			t.Errorf("column %v: codec %v; want ZSTD", cc.MetaData.PathInSchema, cc.MetaData.Codec)
		}
	}
	if n := len(md.ColumnOrders); n != 8 {
		t.Errorf("%d column orders; want 8 (min/max are undefined without them)", n)
	}
	if got := s3test.ReadParquet(t, data); !reflect.DeepEqual(got, []map[string]any{{
		"sensor": "s-1", "window_start": int64(1700000000000), "window_end": int64(1700000060000), "n": int64(12),
		"avg_temp": 21.5, "hot": false, "tags": `["a"]`, "_id": "agg/0/1/3/0"}}) {
		t.Fatalf("rows = %v", got)
	}
}

// TestParquetStableAcrossBatches: two batches, one of whose rows lack a
// field altogether, give the same schema (the fix for avg(temp) failing
// across objects).
func TestParquetStableAcrossBatches(t *testing.T) {
	s, _ := NewSchema(Column{Name: "ts", Type: TypeTimestamp}, Column{Name: "temp", Type: TypeDouble, Optional: true},
		Column{Name: "seq", Type: TypeInt64})
	e := &ParquetEncoder{IDColumn: "_id"}
	a, _ := encodeParquet(t, e, s, mkRows("raw", 0, 1, `{"ts":1,"temp":20.5,"seq":1}`, `{"ts":2,"temp":null,"seq":2}`))
	b, _ := encodeParquet(t, e, s, mkRows("raw", 0, 2, `{"ts":3,"seq":3}`))
	sa, sb := openParquet(t, a).Schema().String(), openParquet(t, b).Schema().String()
	if sa != sb {
		t.Fatalf("schemas differ between batches:\n%s\n%s", sa, sb)
	}
	if !strings.Contains(sa, "optional double temp") || !strings.Contains(sa, "required int64 seq") {
		t.Fatalf("schema %s; want optional double temp and required int64 seq", sa)
	}
	if got := s3test.ReadParquet(t, b); !reflect.DeepEqual(got, []map[string]any{{"ts": int64(3), "seq": int64(3), "_id": "raw/0/1/2/0"}}) {
		t.Fatalf("rows = %v", got)
	}
}

// TestParquetRowsThatDoNotFitAreBad: a value of another type is a bad row
// with a reason naming the member, never a new column type.
func TestParquetRowsThatDoNotFitAreBad(t *testing.T) {
	s, _ := NewSchema(Column{Name: "ts", Type: TypeTimestamp}, Column{Name: "temp", Type: TypeDouble, Optional: true},
		Column{Name: "n", Type: TypeInt64, Optional: true}, Column{Name: "sensor", Type: TypeString, Optional: true})
	rows := mkRows("raw", 0, 1,
		`{"ts":1,"temp":20.5,"n":1,"sensor":"a"}`,
		`{"ts":2,"temp":"warm"}`,
		`{"ts":3,"n":1.5}`,
		`{"temp":1}`,
		`{"ts":4,"extra":1}`,
		`{"ts":5,"sensor":7}`,
		`{"ts":"2024-01-01T00:00:00Z","n":1e3}`,
		`{"ts":6,"n":9223372036854775808}`,
	)
	data, bad := encodeParquet(t, &ParquetEncoder{}, s, rows)
	reasons := map[string]string{}
	for _, b := range bad {
		reasons[b.ID] = b.Reason
	}
	for id, want := range map[string]string{
		"raw/0/1/1/1": `member "temp": is a string, the output schema says double`,
		"raw/0/1/1/2": `member "n": 1.5 is not an integer`,
		"raw/0/1/1/3": `member "ts" is missing or null; the output schema requires it`,
		"raw/0/1/1/4": `member "extra" is not a column of the output schema (ts, temp, n, sensor)`,
		"raw/0/1/1/5": `member "sensor": is a number, the output schema says string`,
		"raw/0/1/1/7": `member "n": 9223372036854775808 is not an integer in the int64 range`,
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("row %s: reason %q; want it to contain %q", id, reasons[id], want)
		}
	}
	if len(bad) != 6 {
		t.Errorf("%d bad rows; want 6", len(bad))
	}
	got := s3test.ReadParquet(t, data)
	want := []map[string]any{{"ts": int64(1), "temp": 20.5, "n": int64(1), "sensor": "a"}, {"ts": int64(1704067200000), "n": int64(1000)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %v; want %v", got, want)
	}
}

// TestParquetManyRowsPagesAndDeltas: thousands of rows over several pages,
// with nulls, negative and huge deltas (DELTA_BINARY_PACKED blocks and
// miniblocks of every bit width), read back value for value.
func TestParquetManyRowsPagesAndDeltas(t *testing.T) {
	s, _ := NewSchema(Column{Name: "seq", Type: TypeInt64}, Column{Name: "ts", Type: TypeTimestamp, Optional: true},
		Column{Name: "v", Type: TypeDouble, Optional: true}, Column{Name: "ok", Type: TypeBool, Optional: true},
		Column{Name: "s", Type: TypeString, Optional: true})
	rng := rand.New(rand.NewPCG(7, 8))
	var rows []Row
	var want []map[string]any
	for i := 0; i < 5000; i++ {
		m := map[string]any{}
		var seq int64
		switch {
		case i%997 == 0:
			seq = math.MinInt64 + int64(i)
		case i%991 == 0:
			seq = math.MaxInt64 - int64(i)
		case i < 300:
			seq = int64(i) // width 0 miniblocks (constant deltas)
		default:
			seq = rng.Int64N(1<<uint(i%62+1)) - 1<<uint(i%62)
		}
		m["seq"] = seq
		obj := fmt.Sprintf(`{"seq":%d`, seq)
		if i%7 != 0 {
			ts := int64(1700000000000 + i*1000 - rng.IntN(500))
			m["ts"] = ts
			obj += fmt.Sprintf(`,"ts":%d`, ts)
		}
		if i%5 != 0 {
			v := rng.NormFloat64() * 100
			m["v"] = v
			obj += fmt.Sprintf(`,"v":%s`, strconvFloat(v))
		}
		if i%3 != 0 {
			m["ok"] = i%2 == 0
			obj += fmt.Sprintf(`,"ok":%v`, i%2 == 0)
		}
		if i%11 != 0 {
			str := strings.Repeat("x", i%40) + fmt.Sprint(i)
			m["s"] = str
			obj += fmt.Sprintf(`,"s":%q`, str)
		}
		rows = append(rows, Row{ID: fmt.Sprint(i), Data: []byte(obj + "}")})
		want = append(want, m)
	}
	e := &ParquetEncoder{PageSize: 4096}
	for round := 0; round < 2; round++ { // buffer reuse must not leak state
		data, bad := encodeParquet(t, e, s, rows)
		if len(bad) != 0 {
			t.Fatalf("bad = %v", bad[0])
		}
		md := openParquet(t, data).Metadata()
		pages := 0
		for _, cc := range md.RowGroups[0].Columns {
			if cc.MetaData.TotalUncompressedSize > 8192 {
				pages++
			}
		}
		if pages == 0 {
			t.Fatalf("no column chunk above two pages of 4 KiB; the test needs several pages")
		}
		if got := s3test.ReadParquet(t, data); !reflect.DeepEqual(got, want) {
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("round %d row %d: got %v; want %v", round, i, got[i], want[i])
				}
			}
			t.Fatalf("round %d: %d rows; want %d", round, len(got), len(want))
		}
	}
}

func strconvFloat(v float64) string { b, _ := json.Marshal(v); return string(b) }

// TestParquetStatistics: min, max and null count per column chunk, PLAIN
// encoded, as parquet-go decodes them.
func TestParquetStatistics(t *testing.T) {
	s, _ := NewSchema(Column{Name: "ts", Type: TypeTimestamp, Optional: true}, Column{Name: "v", Type: TypeDouble, Optional: true},
		Column{Name: "s", Type: TypeString, Optional: true}, Column{Name: "ok", Type: TypeBool, Optional: true})
	rows := mkRows("p", 0, 1, `{"ts":30,"v":0,"s":"m","ok":true}`, `{"ts":10,"v":2.5,"s":"b"}`, `{"v":-1,"s":"z","ok":true}`, `{}`)
	data, _ := encodeParquet(t, &ParquetEncoder{}, s, rows)
	md := openParquet(t, data).Metadata()
	le := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	want := []format.Statistics{
		{NullCount: 2, MinValue: le(10), MaxValue: le(30)},
		{NullCount: 1, MinValue: le(math.Float64bits(-1)), MaxValue: le(math.Float64bits(2.5))},
		{NullCount: 1, MinValue: []byte("b"), MaxValue: []byte("z")},
		{NullCount: 2, MinValue: []byte{1}, MaxValue: []byte{1}},
	}
	for i, cc := range md.RowGroups[0].Columns {
		if got := cc.MetaData.Statistics; !reflect.DeepEqual(got, want[i]) {
			t.Errorf("column %v: statistics %+v; want %+v", cc.MetaData.PathInSchema, got, want[i])
		}
	}
}

// TestParquetEmptyBatch: a batch whose rows are all bad is still a valid
// file with the schema and no rows.
func TestParquetEmptyBatch(t *testing.T) {
	data, bad := encodeParquet(t, &ParquetEncoder{IDColumn: "_id"}, windowSchema(t), mkRows("p", 0, 1, `[1]`))
	if len(bad) != 1 {
		t.Fatalf("bad = %v; want the one row", bad)
	}
	f := openParquet(t, data)
	if f.NumRows() != 0 || len(f.Schema().Fields()) != 8 {
		t.Fatalf("rows %d, %d fields; want 0 rows and 8 fields", f.NumRows(), len(f.Schema().Fields()))
	}
}

func TestSchemaVersionAndJSON(t *testing.T) {
	a := windowSchema(t)
	cols := a.Columns()
	cols[3].Type = TypeDouble
	b, _ := NewSchema(cols...)
	if a.Version() == b.Version() || a.Equal(b) {
		t.Fatalf("versions %s and %s of different schemas must differ", a.Version(), b.Version())
	}
	js, _ := json.Marshal(a)
	var back Schema
	if err := json.Unmarshal(js, &back); err != nil || !back.Equal(a) || back.Version() != a.Version() {
		t.Fatalf("JSON round trip: %s -> %v (%v)", js, back.String(), err)
	}
	if _, err := NewSchema(Column{Name: "a", Type: TypeString}, Column{Name: "a", Type: TypeBool}, Column{Type: TypeBool}); err == nil ||
		!strings.Contains(err.Error(), `column "a": declared twice`) || !strings.Contains(err.Error(), "column 3: empty name") {
		t.Fatalf("err = %v; want both problems", err)
	}
}

// FuzzParquetEncode: any rows (one per input line) encode to a file that
// parquet-go opens and reads back with exactly the rows that were not
// returned as bad, with the declared schema and with inferred columns.
func FuzzParquetEncode(f *testing.F) {
	f.Add([]byte("{\"sensor\":\"a\",\"ts\":1700000000000,\"n\":3,\"avg_temp\":1.5,\"hot\":true}\n{\"n\":-9223372036854775808,\"tags\":[1,{\"x\":null}]}\n{}"))
	f.Add([]byte("{\"sensor\":7}\n[1]\n{\"window_start\":\"2024-01-01T00:00:00Z\",\"n\":1e3}\nnot json"))
	f.Add([]byte("{\"avg_temp\":1e999,\"hot\":null,\"sensor\":\"\\u00e9\\\"\"}"))
	schema := windowSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rows []Row
		for i, line := range bytes.Split(data, []byte("\n")) {
			rows = append(rows, Row{ID: fmt.Sprintf("p/0/1/%d", i), Data: line})
		}
		for _, s := range []*Schema{schema, nil} {
			var buf bytes.Buffer
			bad, err := (&ParquetEncoder{IDColumn: "_id", PageSize: 64}).Encode(&buf, s, rows)
			if err != nil {
				t.Fatal(err)
			}
			got := s3test.ReadParquet(t, buf.Bytes())
			if len(got) != len(rows)-len(bad) {
				t.Fatalf("schema %v: read %d rows; want %d (%d rows, %d bad)", s, len(got), len(rows)-len(bad), len(rows), len(bad))
			}
			k := 0
			badIDs := map[string]bool{}
			for _, b := range bad {
				badIDs[b.ID] = true
			}
			for _, r := range rows {
				if badIDs[r.ID] {
					continue
				}
				if got[k]["_id"] != r.ID {
					t.Fatalf("row %d: _id %v; want %s", k, got[k]["_id"], r.ID)
				}
				k++
			}
		}
	})
}
