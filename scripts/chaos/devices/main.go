// Command devices publishes the crash harness's fixed MQTT input at QoS 1
// from many device clients at once, as sensors publishing to a gateway's
// embedded broker do: D devices share N readings (record i belongs to device
// i mod D) and each keeps up to W publishes in flight. When its connection
// breaks (edged was killed) or an acknowledgement does not come, a device
// reconnects with backoff and resends every message of its window that was
// not acknowledged, so the broker gets redelivered copies, some of which
// were already durable.
//
// Record i is published on chaos/<sensor> with payload
// {"seq":i,"sensor":"sNNNN","ts":Base+i,"v":i%97}, exactly as mqttpub does:
// the sequence number makes every (topic, payload) unique, so edged's
// redelivery dedup drops resent copies and never a genuine record. Once all
// devices have every reading acknowledged, one device publishes the
// sentinel (seq N, sensor "~end", an hour of event time later). It prints
// "published N" and the resend count when done.
//
// Event time follows the sequence number (one record per millisecond), as a
// device's clock would follow wall time; so that a device held back by
// reconnects does not fall behind the others by more than the pipeline's
// watermark (30 s), no device starts a window of publishes more than
// -max-skew records ahead of the oldest unacknowledged record of any device.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Base is the event time of record 0 (unix ms), the same as mqttpub's.
const Base = 1_700_000_000_000

type msg struct {
	seq     int
	topic   string
	payload []byte
}

// progress holds, per device, the sequence number of its oldest
// unacknowledged record (MaxInt64 once it has none).
type progress []atomic.Int64

// low returns the oldest unacknowledged sequence number of all devices.
func (p progress) low() int64 {
	m := int64(math.MaxInt64)
	for i := range p {
		m = min(m, p[i].Load())
	}
	return m
}

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	n := flag.Int("n", 200000, "records")
	keys := flag.Int("keys", 1000, "keys")
	devices := flag.Int("devices", 20, "device clients")
	window := flag.Int("window", 100, "publishes in flight per device")
	rate := flag.Int("rate", 0, "records per second over all devices (0: as fast as acknowledged)")
	skew := flag.Int("max-skew", 10000, "records a device may publish ahead of the oldest unacknowledged one")
	flag.Parse()
	if *devices < 1 || *window < 1 {
		fmt.Fprintln(os.Stderr, "devices: -devices and -window must be at least 1")
		os.Exit(2)
	}
	var resent, reconnects atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	prog := make(progress, *devices)
	for d := range *devices {
		var msgs []msg
		for i := d; i < *n; i += *devices {
			s := (i * 7919) % *keys
			sensor := fmt.Sprintf("s%04d", s)
			msgs = append(msgs, msg{i, "chaos/" + sensor,
				fmt.Appendf(nil, `{"seq":%d,"sensor":%q,"ts":%d,"v":%d}`, i, sensor, Base+int64(i), i%97)})
		}
		prog[d].Store(int64(d))
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := &device{id: fmt.Sprintf("chaos-dev-%d-%d", os.Getpid(), d), broker: *broker, window: *window,
				rate: *rate / *devices, resent: &resent, reconnects: &reconnects,
				prog: prog, self: &prog[d], skew: int64(*skew)}
			dev.send(msgs, start)
		}()
	}
	wg.Wait()
	sentinel := fmt.Appendf(nil, `{"seq":%d,"sensor":"~end","ts":%d,"v":0}`, *n, Base+int64(*n)+3_600_000)
	end := make(progress, 1)
	dev := &device{id: "chaos-dev-" + strconv.Itoa(os.Getpid()) + "-end", broker: *broker, window: 1,
		resent: &resent, reconnects: &reconnects, prog: end, self: &end[0], skew: math.MaxInt64}
	dev.send([]msg{{*n, "chaos/~end", sentinel}}, time.Now())
	fmt.Printf("published %d from %d devices in %.3fs; resent %d unacknowledged messages over %d reconnects\n",
		*n, *devices, time.Since(start).Seconds(), resent.Load(), reconnects.Load())
}

// device is one publishing client.
type device struct {
	id, broker         string
	window, rate       int
	resent, reconnects *atomic.Int64
	prog               progress      // every device's oldest unacknowledged record
	self               *atomic.Int64 // this device's entry in prog
	skew               int64
}

// send publishes msgs in order, window by window, until every one is
// acknowledged, reconnecting and resending the unacknowledged rest of a
// window whenever the connection fails.
func (d *device) send(msgs []msg, start time.Time) {
	next := 0 // msgs[:next] are acknowledged
	sent := 0 // msgs[:sent] were published at least once
	backoff := 20 * time.Millisecond
	for next < len(msgs) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(d.broker).SetClientID(d.id).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(2 * time.Second).SetWriteTimeout(2 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
			time.Sleep(backoff)
			backoff = min(2*backoff, 500*time.Millisecond)
			continue
		}
		backoff = 20 * time.Millisecond
		for next < len(msgs) {
			end := min(next+d.window, len(msgs))
			for int64(msgs[next].seq)-d.prog.low() > d.skew {
				time.Sleep(time.Millisecond)
			}
			if d.rate > 0 {
				if w := time.Until(start.Add(time.Duration(next) * time.Second / time.Duration(d.rate))); w > 0 {
					time.Sleep(w)
				}
			}
			toks := make([]paho.Token, 0, end-next)
			for i := next; i < end; i++ {
				if i < sent {
					d.resent.Add(1)
				}
				toks = append(toks, c.Publish(msgs[i].topic, 1, false, msgs[i].payload))
			}
			sent = max(sent, end)
			acked := 0
			for _, tok := range toks {
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					break
				}
				acked++
			}
			if acked < len(toks) {
				// In order: msgs[next+acked] was not acknowledged; resend from
				// there (later ones may have been, their copies are dropped).
				next += acked
				d.self.Store(int64(msgs[next].seq))
				break
			}
			next = end
			if next < len(msgs) {
				d.self.Store(int64(msgs[next].seq))
			} else {
				d.self.Store(math.MaxInt64)
			}
		}
		c.Disconnect(50)
		if next < len(msgs) {
			d.reconnects.Add(1)
		}
	}
}
