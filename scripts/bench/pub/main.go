// Command pub is the MQTT benchmark's publisher. It publishes --messages
// readings of --sensors sensors (topic sensors/sNNNN/reading, JSON payload
// seq, ts, temp, hum) with synthetic event times: --per-window readings per
// sensor in each 1 s of event time, from a fixed base, so every run sends
// byte-identical messages. After all of them it publishes a final reading per
// sensor an hour later in event time, so that every window of the data
// closes.
//
// --clients K publishes over K connections at once, each owning the sensors
// s with s%K == k; they move through event time together (a barrier after
// each 1 s of event time, once every client's messages of it were published,
// at QoS 1 acknowledged), so no reading arrives later than the pipeline's
// watermark allows. The finals go last, from the first client.
//
// At QoS 0 with one client it publishes through a minimal MQTT writer
// (--client raw, see rawPublisher) rather than paho, which costs several
// times the CPU of the subscribers it feeds; --client paho uses paho.
//
// It prints "start elapsed cpu": the unix time of the first publish, the
// seconds until the last one was sent (QoS 1: acknowledged) and its own CPU
// seconds. --write FILE writes the same readings (with a "sensor" field) as
// JSON Lines instead, for `edged batch` and `edged run --input`.
// --finals-ts prints the finals' event time (unix ms) and exits: outs
// leaves the outputs of windows holding the finals out of its count.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/scripts/bench/internal/proc"
)

// base is the event time of the first reading: 2026-01-01T00:00:00Z.
const base = 1_767_225_600_000

type gen struct {
	n, sensors, perWindow int
}

// reading appends message i's payload (with its sensor when withSensor).
func (g gen) reading(buf []byte, i int, withSensor bool) []byte {
	s := i % g.sensors
	per := g.sensors * g.perWindow
	ts := int64(base) + int64(i/per)*1000 + int64(i%per)*1000/int64(per)
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	if withSensor {
		buf = append(buf, `,"sensor":"`...)
		buf = append(buf, sensorName(s)...)
		buf = append(buf, '"')
	}
	buf = append(buf, `,"ts":`...)
	buf = strconv.AppendInt(buf, ts, 10)
	buf = append(buf, `,"temp":`...)
	buf = strconv.AppendFloat(buf, 20+float64((i/g.sensors+s)%100)/10, 'f', 1, 64)
	buf = append(buf, `,"hum":`...)
	buf = strconv.AppendInt(buf, int64(40+s%20), 10)
	return append(buf, '}')
}

// finalTS is the event time of the finals: an hour after the start of the
// last 1 s of the readings.
func (g gen) finalTS() int64 {
	per := g.sensors * g.perWindow
	return int64(base) + int64((g.n-1)/per)*1000 + 3_600_000
}

// final appends sensor s's final reading, an hour after the last one.
func (g gen) final(buf []byte, s int, withSensor bool) []byte {
	ts := g.finalTS()
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendInt(buf, int64(g.n+s), 10)
	if withSensor {
		buf = append(buf, `,"sensor":"`...)
		buf = append(buf, sensorName(s)...)
		buf = append(buf, '"')
	}
	buf = append(buf, `,"ts":`...)
	buf = strconv.AppendInt(buf, ts, 10)
	return append(buf, `,"temp":0,"hum":0}`...)
}

func sensorName(s int) string { return fmt.Sprintf("s%04d", s) }

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "pub: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int("messages", 1000000, "readings to publish (the finals come on top)")
	sensors := flag.Int("sensors", 1000, "sensors")
	perWindow := flag.Int("per-window", 50, "readings per sensor per 1 s of event time")
	qos := flag.Int("qos", 0, "QoS 0 or 1")
	clients := flag.Int("clients", 1, "concurrent publishing connections")
	window := flag.Int("window", 256, "publishes in flight per client (a sliding window)")
	write := flag.String("write", "", "write the readings as JSON Lines to this file instead of publishing")
	client := flag.String("client", "raw", "QoS 0 with one client: raw (a minimal MQTT writer, far cheaper than paho) or paho")
	finalsTS := flag.Bool("finals-ts", false, "print the event time of the finals (unix ms) and exit")
	flag.Parse()
	g := gen{n: *n, sensors: *sensors, perWindow: *perWindow}
	if *finalsTS {
		fmt.Println(g.finalTS())
		return
	}
	if *write != "" {
		writeFile(g, *write)
		return
	}
	if *qos == 0 && *clients == 1 && *client == "raw" {
		publishRaw(g, *broker)
		return
	}
	if *clients < 1 || *sensors%*clients != 0 {
		fail("--clients must divide --sensors")
	}
	cs := make([]paho.Client, *clients)
	for k := range cs {
		cs[k] = paho.NewClient(paho.NewClientOptions().AddBroker(*broker).
			SetClientID(fmt.Sprintf("bench-pub-%d-%d", os.Getpid(), k)).
			SetCleanSession(true).SetMaxResumePubInFlight(*window))
		if tok := cs[k].Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			fail("connect to %s: %v", *broker, tok.Error())
		}
	}
	topics := make([]string, *sensors)
	for i := range topics {
		topics[i] = "sensors/" + sensorName(i) + "/reading"
	}
	per := *sensors * *perWindow
	windows := (*n + per - 1) / per
	start := time.Now()
	var wg sync.WaitGroup
	for w := range windows {
		lo, hi := w*per, min((w+1)*per, *n)
		for k, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				// A sliding window of --window publishes in flight: the
				// publish --window places back must be done before the next.
				ring := make([]paho.Token, *window)
				pos := 0
				// lo is a multiple of --sensors, itself a multiple of K:
				// every K-th message from lo+k is of a sensor s%K == k.
				for i := lo + k; i < hi; i += *clients {
					if ring[pos] != nil {
						waitAll(ring[pos : pos+1])
					}
					buf = g.reading(buf[:0], i, false)
					ring[pos] = c.Publish(topics[i%*sensors], byte(*qos), false, append([]byte(nil), buf...))
					pos = (pos + 1) % len(ring)
				}
				for _, t := range ring {
					if t != nil {
						waitAll([]paho.Token{t})
					}
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	var buf []byte
	toks := make([]paho.Token, 0, *sensors)
	for s := range *sensors {
		buf = g.final(buf[:0], s, false)
		toks = append(toks, cs[0].Publish(topics[s], byte(*qos), false, append([]byte(nil), buf...)))
	}
	waitAll(toks)
	for _, c := range cs {
		c.Disconnect(1000)
	}
	ticks, err := proc.CPUTicks(0)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("%.6f %.3f %.2f\n", float64(start.UnixNano())/1e9, elapsed.Seconds(), float64(ticks)/100)
}

// publishRaw publishes the readings and the finals at QoS 0 over one
// connection with rawPublisher; the finals follow the readings on the same
// connection, so they arrive after them.
func publishRaw(g gen, broker string) {
	p, err := dialRaw(broker, fmt.Sprintf("bench-pub-%d", os.Getpid()))
	if err != nil {
		fail("connect to %s: %v", broker, err)
	}
	topics := make([]string, g.sensors)
	for i := range topics {
		topics[i] = "sensors/" + sensorName(i) + "/reading"
	}
	start := time.Now()
	var buf []byte
	for i := range g.n {
		buf = g.reading(buf[:0], i, false)
		if err := p.publish(topics[i%g.sensors], buf); err != nil {
			fail("publish: %v", err)
		}
	}
	if err := p.flush(); err != nil {
		fail("publish: %v", err)
	}
	elapsed := time.Since(start)
	for s := range g.sensors {
		buf = g.final(buf[:0], s, false)
		if err := p.publish(topics[s], buf); err != nil {
			fail("publish: %v", err)
		}
	}
	if err := p.close(); err != nil {
		fail("publish: %v", err)
	}
	ticks, err := proc.CPUTicks(0)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("%.6f %.3f %.2f\n", float64(start.UnixNano())/1e9, elapsed.Seconds(), float64(ticks)/100)
}

// waitAll waits for the tokens: QoS 1 until acknowledged, QoS 0 until sent.
func waitAll(toks []paho.Token) {
	for _, t := range toks {
		if !t.WaitTimeout(60*time.Second) || t.Error() != nil {
			fail("publish: %v (no acknowledgement within 60 s)", t.Error())
		}
	}
}

func writeFile(g gen, path string) {
	f, err := os.Create(path)
	if err != nil {
		fail("%v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := range g.n {
		buf = append(g.reading(buf[:0], i, true), '\n')
		w.Write(buf)
	}
	for s := range g.sensors {
		buf = append(g.final(buf[:0], s, true), '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		fail("%v", err)
	}
	if err := f.Close(); err != nil {
		fail("%v", err)
	}
}
