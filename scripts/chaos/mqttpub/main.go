// Command mqttpub publishes the crash harness's fixed MQTT input at QoS 1:
// N readings over K keys, record i on topic chaos/<sensor> with payload
// {"seq":i,"sensor":"sNNNN","ts":Base+i,"v":i%97}. The sequence number makes
// every (topic, payload) unique, so edged's redelivery dedup never drops a
// genuine record, and the event time (one record per millisecond) does not
// depend on when a message arrives. Once the broker has acknowledged every
// reading it publishes a sentinel (seq N, sensor "~end") an hour of event
// time later, which moves the watermark past every window. It prints
// "published N" when done.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Base is the event time of record 0 (unix ms); fixed so that every run
// cuts the same windows.
const Base = 1_700_000_000_000

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int("n", 200000, "records")
	keys := flag.Int("keys", 1000, "keys")
	rate := flag.Int("rate", 25000, "records per second (0: as fast as the broker takes them)")
	window := flag.Int("window", 1000, "publishes in flight")
	flag.Parse()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).
		SetClientID("chaos-pub-" + strconv.Itoa(os.Getpid())).SetCleanSession(true).
		SetMaxResumePubInFlight(*window).SetAutoReconnect(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "mqttpub: connect:", tok.Error())
		os.Exit(1)
	}
	toks := make([]paho.Token, 0, *window)
	flush := func() {
		for _, t := range toks {
			if !t.WaitTimeout(60*time.Second) || t.Error() != nil {
				fmt.Fprintln(os.Stderr, "mqttpub: publish not acknowledged:", t.Error())
				os.Exit(1)
			}
		}
		toks = toks[:0]
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		if *rate > 0 && i%100 == 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(*rate))); d > 0 {
				time.Sleep(d)
			}
		}
		s := (i * 7919) % *keys
		sensor := fmt.Sprintf("s%04d", s)
		payload := fmt.Sprintf(`{"seq":%d,"sensor":%q,"ts":%d,"v":%d}`, i, sensor, Base+int64(i), i%97)
		toks = append(toks, c.Publish("chaos/"+sensor, 1, false, payload))
		if len(toks) == cap(toks) {
			flush()
		}
	}
	flush()
	sentinel := fmt.Sprintf(`{"seq":%d,"sensor":"~end","ts":%d,"v":0}`, *n, Base+int64(*n)+3_600_000)
	toks = append(toks, c.Publish("chaos/~end", 1, false, sentinel))
	flush()
	c.Disconnect(250)
	fmt.Printf("published %d in %.1fs\n", *n, time.Since(start).Seconds())
}
