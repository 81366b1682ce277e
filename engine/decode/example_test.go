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

// ExampleNew decodes a SenML pack received over MQTT: the relative time
// counts from the receipt time kept with the message, and the topic
// template fills the field dev.
func ExampleNew() {
	schema := engine.MustSchema(
		engine.Field{Name: "dev", Kind: engine.KindString},
		engine.Field{Name: "name", Kind: engine.KindString},
		engine.Field{Name: "value", Kind: engine.KindNumber},
		engine.Field{Name: "ts", Kind: engine.KindTime},
	)
	d, err := decode.New(decode.Config{Schema: schema, Format: decode.FormatSenML, TimeField: "ts",
		Topics: []decode.TopicMatcher{devTopic{}}})
	if err != nil {
		panic(err)
	}
	// What ingest writes to the input log when the pack arrives...
	entry := decode.AppendEntry(nil, 1700000000000, "senml/boiler-1",
		[]byte(`[{"bn":"boiler/","n":"temp","v":71.5,"t":-2},{"n":"pressure","v":1.8}]`))
	// ...and what an epoch, or a replay after a crash, decodes from it.
	b := engine.NewBatch(schema)
	if err := d.Decode(b, decode.ParseEntry(entry)); err != nil {
		panic(err)
	}
	for _, r := range b.Recs {
		fmt.Println(r.Vals[0], r.Vals[1], r.Vals[2], r.Time)
	}
	// Output:
	// boiler-1 boiler/temp 71.5 1699999998000
	// boiler-1 boiler/pressure 1.8 1700000000000
}

// devTopic matches "senml/{dev}"; the daemon passes *topic.Template.
type devTopic struct{}

func (devTopic) Fields() []string { return []string{"dev"} }

func (devTopic) Match(topic string, fn func(name, value string)) bool {
	dev, ok := strings.CutPrefix(topic, "senml/")
	if ok && fn != nil {
		fn("dev", dev)
	}
	return ok
}
