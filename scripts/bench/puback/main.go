// Command puback is the flash benchmark's latency probe: it publishes one
// QoS 1 reading at a time (the next once the previous one was acknowledged)
// every --every until SIGTERM or --duration, and prints how many it sent and
// the PUBACK latency: the time from publish to acknowledgement, which for
// edged's embedded broker includes the fsync'd commit of the message into
// the input log.
//
//	puback --broker tcp://127.0.0.1:1883 --every 100ms
//
// Output, one line: "sent=N p50_ms=A p99_ms=B max_ms=C".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	topic := flag.String("topic", "sensors/s-probe/reading", "topic of the probe readings")
	every := flag.Duration("every", 100*time.Millisecond, "publish interval")
	duration := flag.Duration("duration", 0, "stop after this long (0: at SIGTERM)")
	flag.Parse()
	opts := paho.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("puback-%d", os.Getpid())).
		SetCleanSession(true).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		fmt.Fprintf(os.Stderr, "puback: connect %s: %v\n", *broker, tok.Error())
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var end <-chan time.Time
	if *duration > 0 {
		end = time.After(*duration)
	}
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var lat []time.Duration
loop:
	for i := 0; ; i++ {
		select {
		case <-stop:
			break loop
		case <-end:
			break loop
		case <-tick.C:
		}
		// A valid reading, like the simulator's (with its sensor id): one the
		// default install's etl rejects would add a dead letter per probe
		// to every epoch commit, which is not what the benchmark measures.
		payload := fmt.Sprintf(`{"sensor":"s-probe","seq":%d,"ts":%d,"temp":21.5,"hum":45}`, i, time.Now().UnixMilli())
		t0 := time.Now()
		tok := c.Publish(*topic, 1, false, payload)
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			fmt.Fprintf(os.Stderr, "puback: publish %d: not acknowledged within 30s (%v)\n", i, tok.Error())
			os.Exit(1)
		}
		lat = append(lat, time.Since(t0))
	}
	c.Disconnect(250)
	if len(lat) == 0 {
		fmt.Println("sent=0 p50_ms=0 p99_ms=0 max_ms=0")
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	fmt.Printf("sent=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", len(lat), q(0.5), q(0.99), q(1))
}
