package s3test

import (
	"bytes"
	"io"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// ReadParquet reads a Parquet file back with parquet-go's file reader, one
// map per row (absent for null): DOUBLE as float64, INT64 (timestamps
// included) as int64, BOOLEAN as bool, byte arrays as string.
func ReadParquet(t testing.TB, data []byte) []map[string]any {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	cols := f.Schema().Columns()
	r := parquet.NewReader(f)
	defer r.Close()
	var out []map[string]any
	buf := make([]parquet.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string]any{}
			for _, v := range row {
				if v.IsNull() {
					continue
				}
				name := cols[v.Column()][0]
				switch v.Kind() {
				case parquet.Double:
					m[name] = v.Double()
				case parquet.Int64:
					m[name] = v.Int64()
				case parquet.Boolean:
					m[name] = v.Boolean()
				case parquet.ByteArray:
					m[name] = string(v.ByteArray())
				default:
					t.Fatalf("column %s: unexpected kind %v", name, v.Kind())
				}
			}
			out = append(out, m)
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read parquet: %v", err)
		}
	}
}
