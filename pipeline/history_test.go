package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// historyInput is nine days of readings of three sensors every ten
// minutes, a daily cycle plus seeded noise, as JSON Lines.
func historyInput(seed uint64) (lines []byte, readings []reading) {
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var b bytes.Buffer
	for ts := t0; ts < t0+9*24*3600_000; ts += 600_000 {
		for s := range 3 {
			h := float64(ts%(24*3600_000)) / 3600_000
			temp := 20 + float64(s) + 5*math.Sin(2*math.Pi*h/24) + rng.NormFloat64()
			temp = math.Round(temp*100) / 100
			r := reading{fmt.Sprintf("s%d", s), ts, temp}
			readings = append(readings, r)
			fmt.Fprintf(&b, `{"sensor":%q,"ts":%d,"temp":%v}`+"\n", r.sensor, r.ts, r.temp)
		}
	}
	return b.Bytes(), readings
}

type reading struct {
	sensor string
	ts     int64
	temp   float64
}

// TestHistoryExampleMatchesPlainCode runs configs/pipelines/history.yaml in
// batch mode (the executor, its history table in the store, the join
// reading it back) over nine days of readings and checks its "warmer than
// the same hour on the last 7 days" rows against the same comparison
// computed by plain code over the same readings: every hour, its mean
// temperature and its history's mean, and no other row.
func TestHistoryExampleMatchesPlainCode(t *testing.T) {
	seed := rand.Uint64()
	data, readings := historyInput(seed)
	c := compileExample(t, "history.yaml")
	c.Interval = time.Minute // event-time results do not depend on it; fewer idle epochs
	var out bytes.Buffer
	// Event-time order: one minute of event time per epoch, so each hour's row
	// is in the table before later hours join it (arrival order would feed the
	// whole file to one epoch).
	if _, err := RunBatch(context.Background(), c, BatchOptions{Input: bytes.NewReader(data), Output: &out, Order: OrderEventTime}); err != nil {
		t.Fatal(err)
	}
	// Plain code: hourly means per sensor, then each hour against the mean
	// of the hours 24h, 48h, ..., 168h before it that exist.
	type key struct {
		sensor string
		hour   int64
	}
	sum, n := map[key]float64{}, map[key]int{}
	for _, r := range readings {
		k := key{r.sensor, r.ts / 3600_000 * 3600_000}
		sum[k] += r.temp
		n[k]++
	}
	var want []string
	for k, s := range sum {
		mean := s / float64(n[k])
		hs, hn := 0.0, 0
		for d := int64(1); d <= 7; d++ {
			p := key{k.sensor, k.hour - d*24*3600_000}
			if n[p] > 0 {
				hs += sum[p] / float64(n[p])
				hn++
			}
		}
		if hn > 0 && mean > hs/float64(hn) {
			want = append(want, fmt.Sprintf("%s %d %.9f %.9f %d", k.sensor, k.hour, mean, hs/float64(hn), hn))
		}
	}
	var got []string
	anomalies := 0
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var row struct {
			Sink     string  `json:"_sink"`
			Sensor   string  `json:"sensor"`
			Start    int64   `json:"window_start"`
			Temp     float64 `json:"temp"`
			Hist     float64 `json:"hist_temp"`
			HistRows int     `json:"hist_rows"`
		}
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		switch row.Sink {
		case "warmer-than-last-week":
			got = append(got, fmt.Sprintf("%s %d %.9f %.9f %d", row.Sensor, row.Start, row.Temp, row.Hist, row.HistRows))
		case "anomalies":
			anomalies++
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) < 100 {
		t.Fatalf("seed %d: only %d warmer hours computed; the input should give hundreds", seed, len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("seed %d: pipeline gave %d warmer hours, plain code %d; first difference:\n%s", seed, len(got), len(want), firstDiff(got, want))
	}
	// Gaussian noise at k=4: a handful of false alarms at most. The baseline
	// is the mean and spread of up to 7 hourly means, so its tails are wider
	// than a Gaussian's: over 150 seeds, 0 to 10 false alarms in 3,888
	// readings (4 on average; the bound of 1 in 500 failed 1 seed in 20).
	if anomalies > len(readings)/250 {
		t.Errorf("seed %d: %d anomalies in %d readings of noise", seed, anomalies, len(readings))
	}
}
