package engine_test

import (
	"context"
	"fmt"
	"time"

	"github.com/edgedio/edged/engine"
)

// A high-temperature alarm per sensor with hysteresis and a 10 s debounce.
func ExampleThreshold() {
	in := engine.MustSchema(engine.Field{Name: "sensor", Kind: engine.KindString}, engine.Field{Name: "temp", Kind: engine.KindNumber})
	b := engine.NewBuilder("alarms")
	hot := b.Source("readings", in).Then("overheat", engine.Threshold(engine.ThresholdConfig{
		Rule:  "overheat",
		Keys:  []string{"sensor"},
		Value: "temp",
		Above: new(80.0), // raise above 80
		Clear: new(75.0), // clear at 75 or below
		For:   10 * time.Second,
	}))
	b.Sink("events", hot)
	p, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	x, _ := engine.NewExecutor(p, engine.Options{})
	for i, v := range []float64{79, 81, 82, 83, 78, 74} {
		x.Input("readings").AppendValues(int64(i)*5000, engine.String("boiler"), engine.Number(v))
	}
	res, _ := x.RunEpochAt(context.Background(), 1)
	fmt.Println(p.SinkSchema("events"))
	for _, r := range res.Output(p, "events").Recs {
		fmt.Println(r.Vals)
	}
	// Output:
	// sensor:string, rule:string, event:string, value:number, time:time, limit:number, since:time
	// [boiler overheat raise 83 15000 80 5000]
	// [boiler overheat clear 74 25000 75 15000]
}
