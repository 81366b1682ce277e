package uplink

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzScanObject checks the row scanner against encoding/json: it accepts
// exactly the valid JSON objects, and reports each member's value.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"x\"y","b":[1,{"c":2}],"d":null,"e":true}`, `[1]`, `{"a":1,}`, `{"a":01}`, `{"a":"\u00e9"}`, ` {"a" : -1.5e3 } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want map[string]json.RawMessage
		isObj := json.Unmarshal(data, &want) == nil && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
		got := map[string]field{}
		err := scanObject(data, func(f field) { got[string(f.name)] = f })
		if (err == nil) != isObj {
			t.Fatalf("scanObject(%q) err = %v; encoding/json object = %v", data, err, isObj)
		}
		if err != nil || !utf8.Valid(data) { // encoding/json replaces invalid UTF-8; the scanner keeps bytes
			return
		}
		for k, raw := range want {
			f, ok := got[k]
			if !ok {
				t.Fatalf("member %q missing", k)
			}
			if f.kind == kindString {
				var s string
				if json.Unmarshal(raw, &s) != nil || s != string(f.str) {
					t.Fatalf("member %q = %q; want %s", k, f.str, raw)
				}
			} else if !bytes.Equal(bytes.TrimSpace(raw), f.raw) {
				t.Fatalf("member %q raw = %s; want %s", k, f.raw, raw)
			}
		}
	})
}
