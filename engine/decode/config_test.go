package decode

import (
	"strings"
	"testing"

	"github.com/edgedio/edged/engine"
)

func TestConfigValidate(t *testing.T) {
	withList := engine.MustSchema(engine.Field{Name: "xs", Kind: engine.KindList}, engine.Field{Name: "v", Kind: engine.KindNumber})
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none for a valid config
	}{
		{"default config", DefaultConfig(sensorSchema), nil},
		{"sensor config", sensorConfig(), nil},
		{"no schema", Config{}, []string{"schema: required"}},
		{"unknown time field", Config{Schema: sensorSchema, TimeField: "when"}, []string{`time_field: unknown field: "when" (have sensor, ts, temp, hum, ok)`}},
		{"time field of wrong kind", Config{Schema: sensorSchema, TimeField: "temp"}, []string{`time_field: field "temp" has kind number; want time`}},
		{"bad time format", Config{Schema: sensorSchema, TimeFormat: "unix_ns"}, []string{`time_format: "unix_ns" is not one of`}},
		{"unknown key field", Config{Schema: sensorSchema, KeyFields: []string{"sensor", "site"}}, []string{`key_fields[1]: unknown field: "site"`}},
		{"list field", Config{Schema: withList}, []string{`schema: field "xs": kind list cannot be decoded`}},
		{"negative max line", Config{Schema: sensorSchema, MaxLineBytes: -1}, []string{"max_line_bytes: -1 is negative"}},
		{"every problem at once", Config{Schema: sensorSchema, TimeField: "x", TimeFormat: "y", KeyFields: []string{"z"}},
			[]string{"time_field", "time_format", "key_fields[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := strings.Join(tt.cfg.KeyFields, ",")
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q; want it to contain %q", err, w)
				}
			}
			if after := strings.Join(tt.cfg.KeyFields, ","); after != before {
				t.Errorf("Validate modified KeyFields: got %q; want %q", after, before)
			}
		})
	}
}
