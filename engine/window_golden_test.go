package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// updateGolden (golden_test.go) also rewrites the golden files of testdata/windows.

// goldenCases maps testdata/windows/<name>.in.jsonl to the window operator run
// over it (watermark delay 5 s); the outputs of every epoch are compared with
// <name>.golden.
var goldenCases = map[string]WindowConfig{
	"tumbling_append": {Keys: []string{"k"}, Size: 5000, Aggs: goldenAggs},
	"tumbling_update": {Keys: []string{"k"}, Size: 5000, Aggs: goldenAggs, Mode: OutputUpdate},
	"sliding_append":  {Keys: []string{"k"}, Size: 10000, Slide: 5000, Aggs: goldenAggs},
	"sliding_update":  {Keys: []string{"k"}, Size: 10000, Slide: 5000, Aggs: goldenAggs, Mode: OutputUpdate},
	"session_append":  {Keys: []string{"k"}, Gap: 4000, Aggs: goldenAggs},
	"session_update":  {Keys: []string{"k"}, Gap: 4000, Aggs: goldenAggs, Mode: OutputUpdate},
}

var goldenAggs = []AggSpec{{Func: "count", As: "count"}, {Func: "sum", Field: "v", As: "sum"},
	{Func: "avg", Field: "v", As: "avg"}, {Func: "max", Field: "v", As: "max"}}

// appendJSONRecord writes r as a one-line JSON object, fields in schema order,
// after an "epoch" member.
func appendJSONRecord(dst []byte, epoch int, s *Schema, r *Record) []byte {
	dst = append(dst, `{"epoch":`...)
	dst = strconv.AppendInt(dst, int64(epoch), 10)
	for i, v := range r.Vals {
		dst = append(dst, ',')
		dst = strconv.AppendQuote(dst, s.Field(i).Name)
		dst = append(dst, ':')
		switch v.Kind {
		case KindString:
			dst = strconv.AppendQuote(dst, v.Str)
		case KindNull:
			dst = append(dst, "null"...)
		default:
			dst = v.AppendText(dst)
		}
	}
	return append(dst, "}\n"...)
}

func TestWindowGoldenFiles(t *testing.T) {
	for name, cfg := range goldenCases {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join("testdata", "windows", name+".in.jsonl")
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var epochs [][]kv
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var row struct {
					Epoch int     `json:"epoch"`
					K     string  `json:"k"`
					V     float64 `json:"v"`
					TS    int64   `json:"ts"`
				}
				if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
					t.Fatalf("%s: %v", in, err)
				}
				for len(epochs) < row.Epoch {
					epochs = append(epochs, nil)
				}
				epochs[row.Epoch-1] = append(epochs[row.Epoch-1], kv{row.K, row.V, row.TS})
			}
			p := buildTest(t, func(s Stream) Stream { return s.Then("op", WindowAggregate(cfg)) }, 5*time.Second)
			x, err := NewExecutor(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for i, recs := range epochs {
				b := x.Input("in")
				for _, r := range recs {
					b.AppendValues(r.ts*1000, String(r.k), Number(r.v))
				}
				res, err := x.RunEpochAt(context.Background(), int64(i+1)*1000)
				if err != nil {
					t.Fatal(err)
				}
				o := res.Outputs[0]
				for j := range o.Recs {
					got = appendJSONRecord(got, i+1, o.Schema, &o.Recs[j])
				}
			}
			golden := filepath.Join("testdata", "windows", name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: got\n%s\nwant\n%s", golden, got, want)
			}
		})
	}
}
