// Command pub is the MQTT benchmark's publisher: it publishes readings of
// --sensors sensors (JSON: sensor, ts, temp, hum) round-robin as fast as the
// broker takes them, then one sentinel reading an hour ahead so that
// event-time windows close. It prints the elapsed seconds of publishing and
// its CPU seconds (user+system).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int("messages", 1000000, "messages to publish")
	sensors := flag.Int("sensors", 1000, "sensors")
	qos := flag.Int("qos", 0, "QoS 0 or 1")
	window := flag.Int("window", 256, "QoS 1 publishes in flight")
	flag.Parse()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).SetClientID("bench-pub-" + strconv.Itoa(os.Getpid())).
		SetCleanSession(true).SetMaxResumePubInFlight(*window))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "connect:", tok.Error())
		os.Exit(1)
	}
	topics := make([]string, *sensors)
	for i := range topics {
		topics[i] = fmt.Sprintf("sensors/s%04d/reading", i)
	}
	start := time.Now()
	toks := make([]paho.Token, 0, *window)
	flush := func() {
		for _, t := range toks {
			if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
				fmt.Fprintln(os.Stderr, "publish:", t.Error())
				os.Exit(1)
			}
		}
		toks = toks[:0]
	}
	var buf []byte
	for i := 0; i < *n; i++ {
		s := i % *sensors
		buf = buf[:0]
		buf = append(buf, `{"seq":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"ts":`...)
		buf = strconv.AppendInt(buf, time.Now().UnixMilli(), 10)
		buf = append(buf, `,"temp":`...)
		buf = strconv.AppendFloat(buf, 20+float64((i/(*sensors)+s)%100)/10, 'f', 1, 64)
		buf = append(buf, `,"hum":`...)
		buf = strconv.AppendInt(buf, int64(40+s%20), 10)
		buf = append(buf, '}')
		t := c.Publish(topics[s], byte(*qos), false, append([]byte(nil), buf...))
		toks = append(toks, t)
		if len(toks) == cap(toks) {
			flush()
		}
	}
	flush()
	elapsed := time.Since(start)
	time.Sleep(time.Second) // let the last readings reach the subscribers before the sentinel
	sentinel := fmt.Sprintf(`{"seq":-1,"ts":%d,"temp":0,"hum":0}`, time.Now().Add(time.Hour).UnixMilli())
	c.Publish("sentinel/reading", 1, false, sentinel).WaitTimeout(10 * time.Second)
	c.Disconnect(250)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("%.3f %.3f\n", elapsed.Seconds(), time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
}
