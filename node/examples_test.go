package node

import (
	"context"
	"strings"
	"testing"

	"github.com/edgedio/edged/internal/sim"
)

// stepStats returns a step's counters after the pipeline's last epoch.
func stepStats(t *testing.T, tn *testNode, pipeline, step string) (in, out, unmatched uint64) {
	t.Helper()
	for _, s := range tn.pipeByName(pipeline).r.Status().Steps {
		if s.Step == step {
			return s.In, s.Out, s.Unmatched
		}
	}
	t.Fatalf("pipeline %s has no step %s", pipeline, step)
	return 0, 0, 0
}

// TestSimDefaultsFeedEveryExamplePipeline feeds the example pipelines what
// `edgectl sim` publishes with no flags (its generators, defaults and topics)
// for 130 s of fake time, then nothing: every pipeline gets records, no
// reading falls out of the enrichment join, a per-site minute and a machine
// run are emitted while the simulator runs, and once it stops the idle rule
// closes the last open minute.
func TestSimDefaultsFeedEveryExamplePipeline(t *testing.T) {
	tn := examplesNode(t)
	gen, err := sim.New(sim.Config{Sensors: sim.DefaultSensors, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	power, err := sim.NewPower(sim.PowerConfig{Machines: sim.DefaultMachines, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 130 {
		now := tn.clock.Now().UnixMilli()
		var msgs []Message
		for k := range 10 { // the default rate: 10 readings a second
			p, idx, _ := gen.Next(nil, now+int64(k)*100)
			msgs = append(msgs, msg(strings.ReplaceAll(sim.DefaultTopic, "{sensor}", gen.SensorID(idx)), string(p)))
		}
		for i := range power.Machines() {
			msgs = append(msgs, msg(strings.ReplaceAll(sim.DefaultMachineTopic, "{machine}", power.MachineID(i)), string(power.Next(nil, i, now))))
		}
		if err := tn.Ingest(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		tn.epoch(t, "sessions")
	}
	for _, c := range []struct{ pipeline, source string }{
		{"etl", "readings"}, {"enrichment", "readings"}, {"alerts", "readings"}, {"sessions", "power"},
	} {
		if in, _, _ := stepStats(t, tn, c.pipeline, c.source); in == 0 {
			t.Errorf("pipeline %s: no records from the simulator's defaults", c.pipeline)
		}
	}
	if _, _, unmatched := stepStats(t, tn, "enrichment", "devices"); unmatched != 0 {
		t.Errorf("enrichment: %d simulated readings have no row in the device table", unmatched)
	}
	_, minutes, _ := stepStats(t, tn, "enrichment", "per-site")
	if minutes == 0 {
		t.Errorf("enrichment: no per-site minute after 130 s of input")
	}
	if _, runs, _ := stepStats(t, tn, "sessions", "runs"); runs == 0 {
		t.Errorf("sessions: no machine run emitted after 130 s of input")
	}
	// The simulator stops at +130 s; the open minute ends at +160 s (t0 is
	// 20 s into a minute). Idle, the watermark goes on with processing time
	// from the last reading's (+130 s - 10 s): the minute closes at +171 s,
	// when it would have closed had the readings gone on.
	for range 42 {
		tn.epoch(t, "enrichment")
	}
	if _, after, _ := stepStats(t, tn, "enrichment", "per-site"); after <= minutes {
		t.Errorf("enrichment: the last minute did not close after the input stopped (per-site rows %d, before %d)", after, minutes)
	}
}
