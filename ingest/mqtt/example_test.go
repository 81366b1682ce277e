package mqtt_test

import (
	"fmt"
	"time"

	"github.com/edgedio/edged/ingest/mqtt"
)

func ExampleParseTopicTemplate() {
	t, err := mqtt.ParseTopicTemplate("sensors/{site}/{sensor}/temp")
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Filter())
	t.Match("sensors/berlin/s17/temp", func(name, value string) { fmt.Println(name, "=", value) })
	// Output:
	// sensors/+/+/temp
	// site = berlin
	// sensor = s17
}

func ExampleDecodeSenML() {
	pack := `[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},
	          {"n":"humidity","u":"%RH","v":80,"t":1}]`
	_ = mqtt.DecodeSenML([]byte(pack), time.Now(), func(r *mqtt.SenMLRecord) error {
		fmt.Println(r.Name, r.Unit, r.Millis(), r.Value.Num)
		return nil
	})
	// Output:
	// urn:dev:ow:10e2073a01080063:temperature Cel 1320078429000 27.2
	// urn:dev:ow:10e2073a01080063:humidity %RH 1320078430000 80
}
