package uplink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/edgedio/edged/uplink/s3test"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// readJSONL decompresses with an independent zstd decoder and decodes each
// line with encoding/json.
func readJSONL(t testing.TB, data []byte) []map[string]any {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plain, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// wantRows is what a reader must see: each row's JSON with the id column,
// nested values as JSON text for Parquet, mixed columns as text.
func wantRows(t testing.TB, rows []Row, idCol string, parquetTypes bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range rows {
		var m map[string]any
		if err := json.Unmarshal(r.Data, &m); err != nil {
			continue
		}
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
		if idCol != "" {
			if _, ok := m[idCol]; !ok || parquetTypes {
				m[idCol] = r.ID
			}
		}
		out = append(out, m)
	}
	return out
}

func jsonlWant(t testing.TB, rows []Row, idCol string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range rows {
		var m map[string]any
		if json.Unmarshal(r.Data, &m) != nil {
			continue
		}
		if _, ok := m[idCol]; idCol != "" && !ok {
			m[idCol] = r.ID
		}
		out = append(out, m)
	}
	return out
}

func mkRows(pipeline string, part int, epoch uint64, data ...string) []Row {
	var rs []Row
	for i, d := range data {
		rs = append(rs, Row{ID: fmt.Sprintf("%s/%d/1/%d/%d", pipeline, part, epoch, i), Data: []byte(d)})
	}
	return rs
}

func TestEncodersRoundTripEveryRow(t *testing.T) {
	rows := mkRows("agg", 0, 7,
		`{"sensor":"s-1","window_start":1700000000000,"n":12,"avg":21.4,"ok":true}`,
		`{"sensor":"s-2","window_start":1700000000000,"n":3,"avg":-1.5e3,"ok":false,"note":null}`,
		`{ "sensor" : "s-\"3\"\u00e9", "window_start":1700000060000, "n":0, "avg":0, "ok":true, "note":"hi"}`,
		`{"sensor":"s-4","window_start":1700000060000,"n":1,"avg":2,"ok":true,"tags":["a","b"]}`,
		`not json`,
		`[1,2]`,
		`{"sensor":"s-5","window_start":1700000060000,"n":1,"avg":2,"ok":true,"extra":"x"}`,
	)
	for _, tc := range []struct {
		format, idCol string
	}{{FormatParquet, "_id"}, {FormatParquet, ""}, {FormatJSONL, "_id"}, {FormatJSONL, ""}} {
		t.Run(tc.format+"/"+tc.idCol, func(t *testing.T) {
			enc, err := NewEncoder(tc.format, tc.idCol)
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ { // buffer reuse must not leak state
				var buf bytes.Buffer
				bad, err := enc.Encode(&buf, nil, rows)
				if err != nil {
					t.Fatal(err)
				}
				if len(bad) != 2 || bad[0].ID != rows[4].ID || bad[1].ID != rows[5].ID {
					t.Fatalf("bad rows = %+v; want rows 4 and 5", bad)
				}
				var got, want []map[string]any
				if tc.format == FormatParquet {
					got = s3test.ReadParquet(t, buf.Bytes())
					want = wantRows(t, rows, tc.idCol, true)
					want[3]["tags"] = `["a","b"]`
				} else {
					got = readJSONL(t, buf.Bytes())
					want = jsonlWant(t, rows, tc.idCol)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d: got\n%v\nwant\n%v", round, got, want)
				}
			}
		})
	}
}

func TestParquetMixedColumnBecomesString(t *testing.T) {
	rows := mkRows("p", 0, 1, `{"v":1.5}`, `{"v":"x"}`, `{"v":true}`, `{}`)
	var buf bytes.Buffer
	if _, err := (&ParquetEncoder{}).Encode(&buf, nil, rows); err != nil {
		t.Fatal(err)
	}
	got := s3test.ReadParquet(t, buf.Bytes())
	want := []map[string]any{{"v": "1.5"}, {"v": "x"}, {"v": "true"}, {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

func TestParquetDeterministicBytes(t *testing.T) {
	rows := mkRows("p", 0, 1, `{"a":1,"b":"x"}`, `{"b":"y","a":2}`)
	var a, b bytes.Buffer
	if _, err := (&ParquetEncoder{IDColumn: "_id"}).Encode(&a, nil, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := (&ParquetEncoder{IDColumn: "_id"}).Encode(&b, nil, rows); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two encodings of the same rows differ (%d vs %d bytes); want identical", a.Len(), b.Len())
	}
}
