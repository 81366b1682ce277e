// Command plain is the MQTT benchmark's reference processor: the benchmark
// pipeline's windows (count, avg(temp), max(temp) per sensor per 1 s
// tumbling window of event time "ts", watermark 2 s behind the largest event
// time seen, each window emitted once when the watermark passes its end)
// computed by a plain Go program in memory, each output published at QoS 0
// to out/SENSOR on the broker it reads, as edged's mqtt sink does. It reads
// the broker like the bare subscriber (paho, OrderMatters, edged's buffered
// reads: scripts/bench/internal/benchconn).
//
// It keeps nothing on disk: no input log, no state, no exactly-once; a crash
// loses what it held. So it is the ceiling of the benchmark's part (b), the
// rate to the last output that any processor publishing its outputs through
// the same broker can reach: where the broker is the bottleneck, edged can
// come close to it but not pass it. It prints "ready" on stderr once
// subscribed and runs until killed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/scripts/bench/internal/benchconn"
)

const (
	size      = 1000 // window size, ms
	watermark = 2000 // ms behind the largest event time
)

// agg is one open window of one sensor.
type agg struct {
	sensor     string
	start      int64
	n          int64
	sum, maxed float64
}

// windows holds the open windows, keyed by sensor and window start.
type windows struct {
	open   map[key]*agg
	free   []*agg
	maxTS  int64
	closed int64 // every window ending at or before this was emitted
	emit   func(a *agg)
	late   int64
}

type key struct {
	sensor string
	start  int64
}

func newWindows(emit func(a *agg)) *windows {
	return &windows{open: make(map[key]*agg, 4096), maxTS: -1 << 62, closed: -1 << 62, emit: emit}
}

// add folds one reading into its window, then emits the windows the
// watermark passed.
func (w *windows) add(sensor string, ts int64, temp float64) {
	start := ts - ts%size
	if start+size <= w.closed {
		w.late++
		return
	}
	k := key{sensor, start}
	a := w.open[k]
	if a == nil {
		if n := len(w.free); n > 0 {
			a, w.free = w.free[n-1], w.free[:n-1]
			*a = agg{}
		} else {
			a = new(agg)
		}
		a.sensor, a.start, a.maxed = sensor, start, temp
		w.open[k] = a
	}
	a.n++
	a.sum += temp
	a.maxed = max(a.maxed, temp)
	if ts <= w.maxTS {
		return
	}
	w.maxTS = ts
	if wm := ts - watermark; wm-wm%size > w.closed {
		w.closed = wm - wm%size
		for k, a := range w.open {
			if a.start+size <= w.closed {
				w.emit(a)
				delete(w.open, k)
				w.free = append(w.free, a)
			}
		}
	}
}

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	flag.Parse()

	var out []byte
	var c paho.Client
	w := newWindows(func(a *agg) {
		out = append(out[:0], `{"_id":"`...)
		out = append(out, a.sensor...)
		out = append(out, '/')
		out = strconv.AppendInt(out, a.start, 10)
		out = append(out, `","sensor":"`...)
		out = append(out, a.sensor...)
		out = append(out, `","window_start":`...)
		out = strconv.AppendInt(out, a.start, 10)
		out = append(out, `,"window_end":`...)
		out = strconv.AppendInt(out, a.start+size, 10)
		out = append(out, `,"n":`...)
		out = strconv.AppendInt(out, a.n, 10)
		out = append(out, `,"avg_temp":`...)
		out = strconv.AppendFloat(out, a.sum/float64(a.n), 'g', -1, 64)
		out = append(out, `,"max_temp":`...)
		out = strconv.AppendFloat(out, a.maxed, 'g', -1, 64)
		out = append(out, '}')
		// paho keeps the payload until it is written: a copy per output.
		c.Publish("out/"+a.sensor, 0, false, bytes.Clone(out))
	})
	sensors := map[string]string{} // topic -> sensor, one string per sensor
	handler := func(_ paho.Client, m paho.Message) {
		topic := m.Topic()
		sensor, ok := sensors[topic]
		if !ok {
			rest, ok1 := strings.CutPrefix(topic, "sensors/")
			s, ok2 := strings.CutSuffix(rest, "/reading")
			if !ok1 || !ok2 {
				return
			}
			sensor = s
			sensors[topic] = sensor
		}
		p := m.Payload()
		ts, ok1 := number(p, `"ts":`)
		temp, ok2 := number(p, `"temp":`)
		if !ok1 || !ok2 {
			return
		}
		w.add(sensor, int64(ts), temp)
	}
	c = paho.NewClient(paho.NewClientOptions().AddBroker(*broker).
		SetClientID(fmt.Sprintf("bench-plain-%d", os.Getpid())).
		SetCleanSession(true).SetOrderMatters(true).SetKeepAlive(30 * time.Second).
		SetCustomOpenConnectionFn(benchconn.DialBuffered).SetDefaultPublishHandler(handler))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintf(os.Stderr, "plain: connect to %s: %v\n", *broker, tok.Error())
		os.Exit(1)
	}
	if tok := c.Subscribe("sensors/+/reading", 0, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintf(os.Stderr, "plain: subscribe: %v\n", tok.Error())
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Disconnect(250)
	if w.late > 0 {
		fmt.Fprintf(os.Stderr, "plain: %d readings came after their window closed (dropped)\n", w.late)
	}
}

// number parses the JSON number after name in p.
func number(p []byte, name string) (float64, bool) {
	i := bytes.Index(p, []byte(name))
	if i < 0 {
		return 0, false
	}
	p = p[i+len(name):]
	j := bytes.IndexAny(p, ",}")
	if j < 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(p[:j])), 64)
	return v, err == nil
}
