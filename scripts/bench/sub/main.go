// Command sub is the MQTT benchmark's bare subscriber: it subscribes to
// sensors/# with paho (acknowledging at once), counts messages and exits
// once it has --messages of them (or after --idle without any), printing
// "count seconds cpu last" where seconds runs from the first message to the
// last and cpu is its user+system CPU seconds (getrusage) and last the unix time of the last message.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int64("messages", 1000000, "messages to wait for")
	qos := flag.Int("qos", 0, "subscription QoS")
	id := flag.String("id", "bench-bare", "client id")
	idle := flag.Duration("idle", 15*time.Second, "give up after this long without a message")
	flag.Parse()
	var count atomic.Int64
	var first, last atomic.Int64
	done := make(chan struct{})
	c := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).SetClientID(*id).SetCleanSession(true).
		SetOrderMatters(false).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		if count.Add(1) == *n {
			close(done)
		}
	}))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "connect:", tok.Error())
		os.Exit(1)
	}
	if tok := c.Subscribe("sensors/#", byte(*qos), nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "subscribe:", tok.Error())
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "ready")
	prev := int64(-1)
	for {
		select {
		case <-done:
		case <-time.After(*idle):
			if k := count.Load(); k != prev {
				prev = k
				continue
			}
		}
		break
	}
	c.Disconnect(100)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("%d %.3f %.3f %.3f\n", count.Load(), float64(last.Load()-first.Load())/1e9, cpu.Seconds(), float64(last.Load())/1e9)
}
