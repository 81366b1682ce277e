package topic_test

import (
	"fmt"

	"github.com/edgedio/edged/internal/topic"
)

func ExampleParseTemplate() {
	t, err := topic.ParseTemplate("sensors/{site}/{sensor}/temp")
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
