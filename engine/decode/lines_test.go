package decode

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/edgedio/edged/engine"
)

type badLine struct {
	line int
	raw  string
	err  error
}

func TestDecodeLinesContinuesAfterBadLine(t *testing.T) {
	in := strings.Join([]string{
		`{"sensor":"s-1","ts":1000,"temp":20.5}`,
		``,
		`   `,
		`{"sensor":"s-2","ts":2000,"temp":"hot"}`,
		`{"sensor":"s-3","ts":3000,"temp":22}` + "\r",
		`not json`,
		`{"sensor":"s-4","ts":4000}`, // no final newline
	}, "\n")
	var bad []badLine
	b := engine.NewBatch(sensorSchema)
	err := DecodeLines(strings.NewReader(in), sensorConfig(), b, func(line int, raw []byte, err error) {
		bad = append(bad, badLine{line, string(raw), err})
	})
	if err != nil {
		t.Fatalf("DecodeLines: %v", err)
	}
	var keys []string
	for _, r := range b.Recs {
		keys = append(keys, r.Key)
	}
	if got, want := strings.Join(keys, ","), "s-1,s-3,s-4"; got != want {
		t.Errorf("got records %s; want %s", got, want)
	}
	if len(bad) != 2 {
		t.Fatalf("got %d bad lines; want 2: %v", len(bad), bad)
	}
	if bad[0].line != 4 || bad[0].raw != `{"sensor":"s-2","ts":2000,"temp":"hot"}` {
		t.Errorf("got bad line %d %q; want line 4 with its raw bytes", bad[0].line, bad[0].raw)
	}
	if got, want := bad[0].err.Error(), `decode: line 4: field "temp": want number, got string "hot"`; got != want {
		t.Errorf("got error %q; want %q", got, want)
	}
	if de := asDecodeError(t, bad[1].err); bad[1].line != 6 || de.Line != 6 || de.Offset != 0 {
		t.Errorf("got line %d, error %v; want line 6 at byte 0", bad[1].line, bad[1].err)
	}
}

func TestDecodeLinesNilOnErrStops(t *testing.T) {
	in := "{\"temp\":1}\n{\"temp\":x}\n{\"temp\":3}\n"
	b := engine.NewBatch(sensorSchema)
	err := DecodeLines(strings.NewReader(in), untimedConfig(), b, nil)
	if de := asDecodeError(t, err); de.Line != 2 {
		t.Errorf("got line %d; want 2", de.Line)
	}
	if b.Len() != 1 {
		t.Errorf("got %d records; want 1", b.Len())
	}
}

func TestDecodeLinesLongLines(t *testing.T) {
	cfg := untimedConfig()
	cfg.MaxLineBytes = 100 << 10
	long := `{"sensor":"` + strings.Repeat("x", 90<<10) + `"}`
	tooLong := `{"sensor":"` + strings.Repeat("y", 200<<10) + `"}`
	in := long + "\n" + tooLong + "\n" + `{"temp":1}` + "\n"
	var bad []badLine
	b := engine.NewBatch(sensorSchema)
	err := DecodeLines(iotest.HalfReader(strings.NewReader(in)), cfg, b, func(line int, raw []byte, err error) {
		bad = append(bad, badLine{line, string(raw), err})
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 2 || len(b.Recs[0].Vals[0].Str) != 90<<10 {
		t.Fatalf("got %d records; want the 90 KiB line and the short one", b.Len())
	}
	if len(bad) != 1 || bad[0].line != 2 || !strings.Contains(bad[0].err.Error(), "line 2: byte 102400: line longer than 102400 bytes") {
		t.Fatalf("got bad lines %v; want line 2 reported as too long", bad)
	}
}

func TestDecodeLinesReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("{\"temp\":1}\n"), iotest.ErrReader(boom))
	b := engine.NewBatch(sensorSchema)
	if err := DecodeLines(r, untimedConfig(), b, func(int, []byte, error) {}); !errors.Is(err, boom) {
		t.Errorf("got %v; want %v", err, boom)
	}
	if b.Len() != 1 {
		t.Errorf("got %d records; want 1", b.Len())
	}
}

func TestDecodeLinesEmpty(t *testing.T) {
	b := engine.NewBatch(sensorSchema)
	if err := DecodeLines(bytes.NewReader(nil), sensorConfig(), b, nil); err != nil || b.Len() != 0 {
		t.Errorf("got %v, %d records; want nil, 0", err, b.Len())
	}
}
