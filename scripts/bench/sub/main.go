// Command sub is the MQTT benchmark's bare subscriber: paho configured like
// edged's MQTT source (ingest/mqtt: OrderMatters true, so messages are
// handled one at a time on paho's router goroutine in arrival order; a
// persistent session, clean session false; keepalive 30 s) except that it
// acknowledges each QoS 1 message at once (paho's auto-ack). By default
// (--conn edged) it also reads the connection like edged's client does
// (scripts/bench/internal/benchconn), so that edged's read buffering does
// not flatter the CPU ratio. --conn paho uses paho's own unbuffered
// connection. It subscribes
// to sensors/#, counts the readings, each once by its "seq" (a bitmap, so a
// duplicate is seen), and stops the clock on the last of --messages.
//
// It prints "count dups end ticks": the readings counted, the duplicates
// among them, the unix time the last one arrived, and its CPU clock ticks
// (utime+stime from /proc/self/stat) at that moment. It exits 1 if it did
// not get them all (nothing for --idle), after printing the same line.
//
// --setup only creates the persistent session (connect, subscribe,
// disconnect), so that a broker queues messages for it while it is offline.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/scripts/bench/internal/benchconn"
	"github.com/edgedio/edged/scripts/bench/internal/proc"
)

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sub: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int("messages", 1001000, "readings to wait for (seq 0 to messages-1)")
	qos := flag.Int("qos", 0, "subscription QoS")
	id := flag.String("id", "bench-bare", "client id")
	idle := flag.Duration("idle", 30*time.Second, "give up after this long without a reading")
	setup := flag.Bool("setup", false, "only create the persistent session and exit")
	conn := flag.String("conn", "edged", "edged: read the connection through a buffer like edged's client; paho: paho's own connection")
	flag.Parse()

	seen := make([]bool, *n)
	var count, dups, bad, endNanos, endTicks atomic.Int64
	done := make(chan struct{})
	handler := func(_ paho.Client, m paho.Message) {
		seq, ok := seqOf(m.Payload())
		if !ok || seq < 0 || seq >= int64(*n) {
			bad.Add(1)
			return
		}
		if seen[seq] { // OrderMatters: one handler call at a time
			dups.Add(1)
			return
		}
		seen[seq] = true
		if count.Add(1) == int64(*n) {
			endNanos.Store(time.Now().UnixNano())
			t, err := proc.CPUTicks(0)
			if err != nil {
				fail("%v", err)
			}
			endTicks.Store(t)
			close(done)
		}
	}
	o := paho.NewClientOptions().AddBroker(*broker).SetClientID(*id).
		SetCleanSession(false).SetOrderMatters(true).SetKeepAlive(30 * time.Second).
		SetAutoReconnect(false).SetDefaultPublishHandler(handler)
	switch *conn {
	case "edged":
		o.SetCustomOpenConnectionFn(benchconn.DialBuffered)
	case "paho":
	default:
		fail("--conn must be edged or paho")
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fail("connect to %s: %v", *broker, tok.Error())
	}
	if tok := c.Subscribe("sensors/#", byte(*qos), nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fail("subscribe: %v", tok.Error())
	}
	if *setup {
		c.Disconnect(250)
		return
	}
	fmt.Fprintln(os.Stderr, "ready")
	ok := true
	prev := int64(-1)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-time.After(*idle):
			if k := count.Load(); k != prev {
				prev = k
				continue
			}
			ok = false
			break wait
		}
	}
	// Linger a little so that a duplicate of the last readings is seen.
	time.Sleep(200 * time.Millisecond)
	c.Disconnect(250)
	if b := bad.Load(); b > 0 {
		fmt.Fprintf(os.Stderr, "sub: %d messages without a seq in range\n", b)
	}
	fmt.Printf("%d %d %.6f %d\n", count.Load(), dups.Load(), float64(endNanos.Load())/1e9, endTicks.Load())
	if !ok {
		os.Exit(1)
	}
}

// seqOf finds the "seq" number in a reading.
func seqOf(p []byte) (int64, bool) {
	i := bytes.Index(p, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	p = p[i+6:]
	j := bytes.IndexAny(p, ",}")
	if j < 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(p[:j])), 10, 64)
	return v, err == nil
}
