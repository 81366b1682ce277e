package engine_test

import (
	"fmt"

	"github.com/edgedio/edged/engine"
)

func ExampleCompileExpr() {
	s := engine.MustSchema(engine.Field{Name: "sensor", Kind: engine.KindString}, engine.Field{Name: "temp", Kind: engine.KindNumber})
	e, err := engine.CompileExpr("temp > 30 ? concat(sensor, ' hot') : 'ok'", s)
	if err != nil {
		panic(err)
	}
	r := &engine.Record{Vals: []engine.Value{engine.String("t1"), engine.Number(35)}}
	fmt.Println(e.Kind(), e.Eval(r))

	_, err = engine.CompileExpr("temp > 'x'", s)
	fmt.Println(err)
	_, err = engine.CompileExpr("tmp > 3", s)
	fmt.Println(err)
	// Output:
	// string t1 hot
	// expression "temp > 'x'": column 6: cannot compare number with string (field "temp")
	// expression "tmp > 3": column 1: unknown field "tmp" (have sensor, temp)
}
