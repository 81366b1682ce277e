// Package pipeline reads pipeline specs (YAML documents of kind Pipeline) and
// compiles them into engine plans through the engine's typed Go API, so a YAML
// pipeline and one built in Go produce the same plan.
//
// # Format
//
//	apiVersion: edged/v1
//	kind: Pipeline
//	metadata:
//	  name: etl
//	spec:
//	  sources:
//	    - name: readings
//	      format: json
//	      fields:
//	        - {name: sensor, type: string}
//	        - {name: ts, type: time}
//	        - {name: temp, type: number}
//	      eventTime: ts
//	      watermark: 10s
//	  steps:
//	    - name: clean
//	      filter: temp > -40 and temp < 125
//	  sinks:
//	    - name: out
//	      input: clean
//	      type: stdout
//
// Every step has a name and exactly one operator key (filter, project, ...).
// Its input is the step before it (the first step reads the first source)
// unless input or inputs names other steps or sources.
//
// # History tables
//
// A history step writes its input into a named table on the gateway,
// committed with the epoch; historyJoin and the anomaly step's baseline read
// it back by key and time offset (see engine.WriteHistory,
// engine.JoinHistory, engine.Anomaly). CheckTables checks the readers of a
// set of pipelines against their writers. Durations of history steps take
// days and weeks too (keep: 7d).
//
// # Idle sources
//
// An event-time source (eventTime and watermark set) that receives nothing
// for spec.idleTimeout (default DefaultIdleTimeout, 10s; 0s turns it off;
// sources[].idleTimeout overrides it per source) stops holding the watermark
// back: its watermark advances with processing time from where its last
// record left it, so the last windows close when the input stops (see
// engine.WithIdleTimeout).
//
// # Errors
//
// Decoding is strict: an unknown key is an error. Every problem is reported at
// once (key typos and expression errors together, with ParseAndCompile), each
// as FILE:LINE: KEY.PATH: message in the words of the file, for example
//
//	configs/pipelines/etl.yaml:14: spec.steps[1].window.size: must be positive
//	configs/pipelines/etl.yaml:15: spec.steps[1].window.sise: unknown key "sise" (did you mean "size"?); valid keys: ...
//	configs/pipelines/etl.yaml:6: spec.interval: "fast" is not a duration; use e.g. 500ms, 10s, 1m, 1h30m
//
// The catalogue testdata/bad holds bad files with their exact messages.
//
// This package lives outside engine because it depends on a YAML library, and
// the engine imports only the standard library.
package pipeline
