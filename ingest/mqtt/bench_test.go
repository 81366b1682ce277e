package mqtt

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkSourceThroughput sends b.N messages through the embedded broker
// on loopback, once to a bare paho subscriber that only counts (the
// baseline) and once to a Source with a handler that only counts, and
// reports both rates and their ratio (source/bare).
func BenchmarkSourceThroughput(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			broker, _ := startBroker(b, BrokerConfig{})
			payload := []byte(`{"sensor":"s-0042","temp":21.37,"hum":40.1,"ts":1700000000000}`)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()

			bare := func(n int) time.Duration {
				var count atomic.Int64
				done := make(chan struct{})
				o := paho.NewClientOptions().AddBroker(broker).SetClientID("bench-bare").SetCleanSession(true).
					SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
						if count.Add(1) == int64(n) {
							close(done)
						}
					})
				c := paho.NewClient(o)
				if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Fatalf("bare connect: %v", tok.Error())
				}
				defer c.Disconnect(0)
				if tok := c.Subscribe("bench/#", qos, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Fatalf("bare subscribe: %v", tok.Error())
				}
				return timedPublish(b, broker, qos, payload, n, done, &count)
			}
			runs := 0
			source := func(n int) time.Duration {
				var count atomic.Int64
				done := make(chan struct{})
				h := HandlerFunc(func(_ context.Context, msgs []Message) error {
					if count.Add(int64(len(msgs))) == int64(n) {
						close(done)
					}
					return nil
				})
				runs++
				id := fmt.Sprintf("bench-source-%d", runs)
				cfg := testConfig(broker, id, "bench/#", qos)
				cfg.CleanSession = qos == 0
				s, err := New(cfg, h)
				if err != nil {
					b.Fatal(err)
				}
				stop := runSource(b, s)
				waitConnected(b, s)
				d := timedPublish(b, broker, qos, payload, n, done, &count)
				stop()
				// Wipe the persistent session so it does not queue the
				// next runs' messages.
				c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true))
				if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					c.Disconnect(0)
				}
				return d
			}

			n := b.N
			b.ResetTimer()
			var tb, ts time.Duration
			// Alternate, twice each, so drift affects both equally.
			for range 2 {
				tb += bare(n)
				ts += source(n)
			}
			b.StopTimer()
			bareRate := float64(2*n) / tb.Seconds()
			srcRate := float64(2*n) / ts.Seconds()
			b.ReportMetric(bareRate, "bare_msgs/s")
			b.ReportMetric(srcRate, "source_msgs/s")
			b.ReportMetric(srcRate/bareRate, "ratio")
		})
	}
}

// timedPublish publishes n messages and returns the time until the
// subscriber counted all of them (done closed).
func timedPublish(b *testing.B, broker string, qos byte, payload []byte, n int, done <-chan struct{}, count *atomic.Int64) time.Duration {
	b.Helper()
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("bench-pub").SetCleanSession(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	start := time.Now()
	var last paho.Token
	for i := range n {
		last = c.Publish(fmt.Sprintf("bench/s%d", i%1000), qos, false, payload)
		if qos == 0 && i%512 == 511 {
			// Keep the QoS 0 publisher from outrunning the broker's
			// per-client write queue (it would drop): wait for the write.
			last.Wait()
		}
	}
	last.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("subscriber counted %d of %d messages within 60s", count.Load(), n)
	}
	return time.Since(start)
}
