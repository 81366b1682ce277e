package decode

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

type msg struct {
	line int
	text string
}

func split(t *testing.T, data, format string) []msg {
	t.Helper()
	var out []msg
	if err := SplitFile([]byte(data), format, func(line int, m []byte) error {
		out = append(out, msg{line, string(m)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSplitFile(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               []msg
	}{
		{"json lines", FormatJSON, "{\"a\":1}\r\n\n  \n[{\"a\":2}]\n{\"a\":3}", []msg{{1, `{"a":1}`}, {4, `[{"a":2}]`}, {5, `{"a":3}`}}},
		{"senml packs", FormatSenML, "[{\"n\":\"a\",\"v\":1}]\n\n[{\"n\":\"b\",\"v\":2}]\n", []msg{{1, `[{"n":"a","v":1}]`}, {3, `[{"n":"b","v":2}]`}}},
		{"raw keeps spaces, skips empty lines", FormatRaw, "hello\n\n  \nworld\r\n", []msg{{1, "hello"}, {3, "  "}, {4, "world"}}},
		{"csv rows, a quoted cell over two lines", FormatCSV, "a,b\r\n1,\"x\ny\"\n\n2,z", []msg{{1, "a,b"}, {2, "1,\"x\ny\""}, {5, "2,z"}}},
		{"csv quote never closed goes on at the next line", FormatCSV, "a,b\n1,\"x\n2,y\n", []msg{{1, "a,b"}, {2, "1,\"x"}, {3, "2,y"}}},
		{"empty", FormatCSV, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := split(t, tt.data, tt.format)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v; want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("message %d: got %v; want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
	stop := errors.New("stop")
	if err := SplitFile([]byte("a\nb\n"), FormatRaw, func(int, []byte) error { return stop }); err != stop {
		t.Errorf("got %v; want fn's error", err)
	}
}

func TestWithCSVHeader(t *testing.T) {
	cfg, err := readingConfig(FormatCSV).WithCSVHeader([]byte("\ufeffextra, ts ,site,sensor,temp\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cfg.CSVColumns, ","), "-,ts,site,sensor,temp"; got != want {
		t.Errorf("got columns %s; want %s", got, want)
	}
	d := mustNew(t, cfg)
	b := engine.NewBatch(readingSchema)
	if err := d.Decode(b, Input{Payload: []byte("x,1000,a,s1,1")}); err != nil {
		t.Fatal(err)
	}
	if got := recs(b); !equalRecs(got, []rec{reading("a", "s1", 1000, 1)}) {
		t.Errorf("got %v", got)
	}
	if _, err := readingConfig(FormatCSV).WithCSVHeader([]byte("site,sensor,temp")); err == nil || !strings.Contains(err.Error(), `field "ts": missing column in the header`) {
		t.Errorf("got %v; want the missing time column", err)
	}
}
