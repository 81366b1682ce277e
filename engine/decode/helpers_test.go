package decode

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

// sensorSchema is the schema of the typical sensor payload
// {"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}.
var sensorSchema = engine.MustSchema(
	engine.Field{Name: "sensor", Kind: engine.KindString},
	engine.Field{Name: "ts", Kind: engine.KindTime},
	engine.Field{Name: "temp", Kind: engine.KindNumber},
	engine.Field{Name: "hum", Kind: engine.KindNumber},
	engine.Field{Name: "ok", Kind: engine.KindBool},
)

func sensorConfig() Config {
	return Config{Schema: sensorSchema, TimeField: "ts", KeyFields: []string{"sensor"}}
}

// untimedConfig is sensorConfig for a pipeline without event time.
func untimedConfig() Config {
	cfg := sensorConfig()
	cfg.TimeField = ""
	return cfg
}

func mustJSON(t testing.TB, cfg Config) *JSONDecoder {
	t.Helper()
	d, err := NewJSON(cfg)
	if err != nil {
		t.Fatalf("NewJSON: %v", err)
	}
	return d
}

func valsString(vs []engine.Value) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(v.Kind.String())
		b.WriteString(":")
		b.WriteString(v.String())
	}
	return b.String()
}

func equalVals(a, b []engine.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func asDecodeError(t testing.TB, err error) *DecodeError {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	return de
}
