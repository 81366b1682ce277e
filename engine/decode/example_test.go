package decode_test

import (
	"fmt"
	"strings"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

func ExampleJSONDecoder_Decode() {
	schema := engine.MustSchema(
		engine.Field{Name: "sensor", Kind: engine.KindString},
		engine.Field{Name: "ts", Kind: engine.KindTime},
		engine.Field{Name: "temp", Kind: engine.KindNumber},
	)
	d, err := decode.NewJSON(decode.Config{Schema: schema, TimeField: "ts", KeyFields: []string{"sensor"}})
	if err != nil {
		panic(err)
	}
	b := engine.NewBatch(schema)
	if err := d.Decode([]byte(`{"sensor":"s-0042","ts":1732450000123,"temp":21.4,"hum":40.2}`), b); err != nil {
		panic(err)
	}
	err = d.Decode([]byte(`{"sensor":"s-0043","temp":"warm"}`), b)
	r := b.Recs[0]
	fmt.Println(r.Key, r.Time, b.Len())
	fmt.Println(string(decode.AppendJSON(nil, schema, &r)))
	fmt.Println(err)
	// Output:
	// s-0042 1732450000123 1
	// {"sensor":"s-0042","ts":1732450000123,"temp":21.4}
	// decode: field "temp": want number, got string "warm"
}

func ExampleJSONDecoder_DecodeLines() {
	schema := engine.MustSchema(engine.Field{Name: "temp", Kind: engine.KindNumber})
	d, _ := decode.NewJSON(decode.Config{Schema: schema})
	b := engine.NewBatch(schema)
	in := "{\"temp\":1}\n{\"temp\":}\n\n{\"temp\":3}\n"
	_ = d.DecodeLines(strings.NewReader(in), b, func(line int, raw []byte, err error) {
		fmt.Printf("dead letter %d %s: %v\n", line, raw, err)
	})
	fmt.Println(b.Len(), "records")
	// Output:
	// dead letter 2 {"temp":}: decode: line 2: byte 8: unexpected '}', want a value
	// 2 records
}
