package sim_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgedio/edged/internal/sim"
)

const ts0 = int64(1700000000000)

// reading is what a strict consumer expects; pointers detect missing fields.
type reading struct {
	Sensor  *string  `json:"sensor"`
	Seq     *uint64  `json:"seq"`
	TS      *int64   `json:"ts"`
	Temp    *float64 `json:"temp"`
	Hum     *float64 `json:"hum"`
	Battery *float64 `json:"battery"`
}

// parse returns the reading and whether the payload is well-formed: valid
// UTF-8, valid JSON of the right types, no unknown and no missing field.
func parse(p []byte) (reading, bool) {
	var r reading
	if !utf8.Valid(p) {
		return r, false
	}
	d := json.NewDecoder(bytes.NewReader(p))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil || d.More() {
		return r, false
	}
	ok := r.Sensor != nil && r.Seq != nil && r.TS != nil && r.Temp != nil && r.Hum != nil && r.Battery != nil
	return r, ok
}

func TestFirstPayloadsArePinnedForASeed(t *testing.T) {
	tests := []struct {
		name string
		cfg  sim.Config
		want []string
	}{
		{
			name: "clean readings, round-robin over sensors",
			cfg:  sim.Config{Sensors: 3, Seed: 42},
			want: []string{
				`{"sensor":"s-0000","seq":0,"ts":1700000000000,"temp":23.22,"hum":44.7,"battery":72}`,
				`{"sensor":"s-0001","seq":1,"ts":1700000000000,"temp":21.88,"hum":60.2,"battery":72}`,
				`{"sensor":"s-0002","seq":2,"ts":1700000000000,"temp":19.29,"hum":42.4,"battery":98}`,
				`{"sensor":"s-0000","seq":3,"ts":1700000000000,"temp":23.19,"hum":44.8,"battery":72}`,
				`{"sensor":"s-0001","seq":4,"ts":1700000000000,"temp":21.74,"hum":60.4,"battery":72}`,
				`{"sensor":"s-0002","seq":5,"ts":1700000000000,"temp":19.32,"hum":42.2,"battery":98}`,
			},
		},
		{
			name: "same walks with spikes and malformed payloads",
			cfg:  sim.Config{Sensors: 3, Seed: 42, Malformed: 0.15, Spikes: 0.3},
			want: []string{
				`{"sensor":"s-0000","seq":0,"ts":1700000000000,"temp":-1.50,"hum":44.7,"battery":72}`,
				`{"sensor":"s-0001","seq":1,"ts":1700000000000,"temp":21.88,"hum":60.2,"battery":72}`,
				`sensor offline: check wiring`,
				"{\"sensor\":\"s-\xff\xfe\",\"seq\":3,\"ts\":1700000000000,\"temp\":23.19,\"hum\":44.8,\"battery\":72}",
				`{"sensor":"s-0001","seq":4,"ts":170000000`,
				`{"sensor":"s-0002","seq":5,"ts":1700000000000,"temp":19.32,"hum":42.2,"battery":98}`,
				`{"sensor":"s-0000","seq":6,"ts":1700000000000,"temp":-0.38,"hum":44.7,"battery":72}`,
			},
		},
		{
			name: "no sequence field",
			cfg:  sim.Config{Sensors: 1, Seed: 7, NoSequence: true},
			want: []string{
				`{"sensor":"s-0000","ts":1700000000000,"temp":18.68,"hum":45.7,"battery":61}`,
				`{"sensor":"s-0000","ts":1700000000000,"temp":18.53,"hum":45.2,"battery":61}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := sim.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var buf []byte
			for i, want := range tt.want {
				buf, _, _ = g.Next(buf[:0], ts0)
				if string(buf) != want {
					t.Errorf("payload %d: got %q; want %q", i, buf, want)
				}
			}
		})
	}
}

func TestSameSeedSameStreamOtherSeedOtherStream(t *testing.T) {
	gen := func(seed uint64) []byte {
		g, err := sim.New(sim.Config{Sensors: 10, Seed: seed, Malformed: 0.05, Spikes: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for i := range 1000 {
			out, _, _ = g.Next(out, ts0+int64(i))
			out = append(out, '\n')
		}
		return out
	}
	a, b, c := gen(1), gen(1), gen(2)
	if !bytes.Equal(a, b) {
		t.Errorf("seed 1 twice: streams differ; want identical")
	}
	if bytes.Equal(a, c) {
		t.Errorf("seeds 1 and 2: streams identical; want different")
	}
}

func TestFractionsChangeOnlyWhichPayloadsAreSpecial(t *testing.T) {
	clean, err := sim.New(sim.Config{Sensors: 7, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := sim.New(sim.Config{Sensors: 7, Seed: 5, Malformed: 0.1, Spikes: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var a, b []byte
	for i := range 10_000 {
		var kind sim.Kind
		a, _, _ = clean.Next(a[:0], ts0)
		b, _, kind = mixed.Next(b[:0], ts0)
		if kind == sim.Normal && !bytes.Equal(a, b) {
			t.Fatalf("payload %d: got %q with spikes and malformed; want the clean stream's %q", i, b, a)
		}
	}
}

func TestMalformedFractionIsHonoured(t *testing.T) {
	tests := []struct {
		malformed float64
		lo, hi    float64 // accepted observed fraction (fixed seed)
	}{
		{0, 0, 0},
		{0.01, 0.0085, 0.0115},
		{0.2, 0.194, 0.206},
		{1, 1, 1},
	}
	const n = 50_000
	for _, tt := range tests {
		g, err := sim.New(sim.Config{Sensors: 100, Seed: 3, Malformed: tt.malformed, Spikes: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		var buf []byte
		bad := 0
		for i := range n {
			var kind sim.Kind
			buf, _, kind = g.Next(buf[:0], ts0+int64(i))
			_, ok := parse(buf)
			if ok == (kind == sim.Malformed) {
				t.Fatalf("malformed=%v payload %d %q: well-formed %v but kind %v", tt.malformed, i, buf, ok, kind)
			}
			if !ok {
				bad++
			}
		}
		if got := float64(bad) / n; got < tt.lo || got > tt.hi {
			t.Errorf("malformed=%v: got fraction %.4f; want in [%v, %v]", tt.malformed, got, tt.lo, tt.hi)
		}
	}
}

func TestReadingsDriftSlowlyWithinPlausibleRanges(t *testing.T) {
	const sensors, perSensor = 10, 10_000
	g, err := sim.New(sim.Config{Sensors: sensors, Seed: 9, Spikes: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	first := make([]reading, sensors)
	last := make([]reading, sensors)
	spikes := 0
	var buf []byte
	for i := range sensors * perSensor {
		var (
			idx  int
			kind sim.Kind
		)
		buf, idx, kind = g.Next(buf[:0], ts0+int64(i))
		r, ok := parse(buf)
		if !ok {
			t.Fatalf("payload %d %q not well-formed", i, buf)
		}
		if got, want := *r.Sensor, g.SensorID(idx); got != want || *r.Seq != uint64(i) {
			t.Fatalf("payload %d: got sensor %s seq %d; want %s %d", i, got, *r.Seq, want, i)
		}
		if *r.Temp < sim.MinTemp || *r.Temp > sim.MaxTemp || *r.Hum < sim.MinHum || *r.Hum > sim.MaxHum ||
			*r.Battery < sim.MinBattery || *r.Battery > sim.MaxBattery {
			t.Fatalf("payload %d %q: value out of its plausible range", i, buf)
		}
		if kind == sim.Spike {
			spikes++
			continue
		}
		if first[idx].Temp == nil {
			first[idx] = r
		} else {
			prev := last[idx]
			if d := math.Abs(*r.Temp - *prev.Temp); d > 1 {
				t.Fatalf("payload %d: temp stepped %.2f from %.2f; want a slow walk (< 1 °C per reading)", i, d, *prev.Temp)
			}
			if d := math.Abs(*r.Hum - *prev.Hum); d > 2 {
				t.Fatalf("payload %d: hum stepped %.1f from %.1f; want < 2 %% per reading", i, d, *prev.Hum)
			}
		}
		last[idx] = r
		if d := math.Abs(*r.Temp - *first[idx].Temp); d > 6 {
			t.Fatalf("payload %d: temp %.2f drifted %.2f from the sensor's first %.2f; want mean reversion (< 6 °C)", i, *r.Temp, d, *first[idx].Temp)
		}
	}
	if spikes < 60 || spikes > 140 {
		t.Errorf("got %d spikes in %d readings; want about 100", spikes, sensors*perSensor)
	}
}

func TestSensorIDsWidenPastTenThousand(t *testing.T) {
	for _, tt := range []struct {
		sensors int
		last    string
	}{{1, "s-0000"}, {10_000, "s-9999"}, {10_001, "s-10000"}} {
		g, err := sim.New(sim.Config{Sensors: tt.sensors})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.SensorID(tt.sensors - 1); got != tt.last {
			t.Errorf("%d sensors: got last id %q; want %q", tt.sensors, got, tt.last)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		cfg  sim.Config
		want []string
	}{
		{sim.Config{Sensors: 0}, []string{"sensors:"}},
		{sim.Config{Sensors: 1, Malformed: 1.5}, []string{"malformed:"}},
		{sim.Config{Sensors: 1, Spikes: math.NaN()}, []string{"spikes:"}},
		{sim.Config{Sensors: -1, Malformed: -0.1, Spikes: 2}, []string{"sensors:", "malformed:", "spikes:"}},
	}
	for _, tt := range tests {
		_, err := sim.New(tt.cfg)
		if err == nil {
			t.Errorf("%+v: got nil error; want one naming %v", tt.cfg, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: got %q; want it to name %q", tt.cfg, err, w)
			}
		}
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	g, err := sim.New(sim.Config{Sensors: 1000, Seed: 1, Malformed: 0.1, Spikes: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	if got := testing.AllocsPerRun(1000, func() { buf, _, _ = g.Next(buf[:0], ts0) }); got != 0 {
		t.Errorf("got %v allocs per payload; want 0", got)
	}
}

func BenchmarkNext(b *testing.B) {
	g, err := sim.New(sim.Config{Sensors: 1000, Seed: 1, Spikes: 0.001})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf, _, _ = g.Next(buf[:0], ts0+int64(i))
	}
	b.SetBytes(int64(len(buf)))
}

// TestPowerDutyCycle: a machine runs (hundreds of watts) for Run, then idles
// (under 10 W) for Idle, starting with a run; the second machine is a third
// of a cycle behind.
func TestPowerDutyCycle(t *testing.T) {
	g, err := sim.NewPower(sim.PowerConfig{Machines: 2, Run: 30 * time.Second, Idle: 75 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if g.MachineID(0) != "lathe-1" || g.MachineID(1) != "press-1" {
		t.Fatalf("names %q, %q", g.MachineID(0), g.MachineID(1))
	}
	const t0 = 1_700_000_000_000
	watts := func(i int, ts int64) float64 {
		var r struct {
			Machine string
			TS      int64
			Watts   float64
		}
		if err := json.Unmarshal(g.Next(nil, i, ts), &r); err != nil {
			t.Fatal(err)
		}
		if r.Machine != g.MachineID(i) || r.TS != ts {
			t.Fatalf("reading %+v", r)
		}
		return r.Watts
	}
	for _, tc := range []struct {
		i       int
		at      int64 // ms after t0
		running bool
	}{
		{0, 0, true}, {0, 29_000, true}, {0, 30_000, false}, {0, 104_000, false}, {0, 105_000, true},
		{1, 0, false}, {1, 70_000, true}, {1, 99_000, true}, {1, 100_000, false},
	} {
		w := watts(tc.i, t0+tc.at)
		if got := w > 100; got != tc.running {
			t.Errorf("machine %d at +%dms: %v W; want running=%v", tc.i, tc.at, w, tc.running)
		}
	}
	if _, err := sim.NewPower(sim.PowerConfig{}); err == nil || !strings.Contains(err.Error(), "machines: must be at least 1") {
		t.Errorf("zero machines: got %v", err)
	}
}
