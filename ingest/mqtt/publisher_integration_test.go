//go:build integration

package mqtt

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
	"github.com/edgedio/edged/internal/testkit"
)

// PublishBatch puts a whole batch in flight and returns once a real broker
// acknowledged every message: all of them reach a subscriber.
func TestIntegrationPublishBatchDeliversEveryMessage(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{})
	var mu sync.Mutex
	got := map[string]bool{}
	o := paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("batch-sub").
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			mu.Lock()
			got[string(m.Payload())] = true
			mu.Unlock()
		})
	sub := paho.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("out/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	p := NewPublisher(PublisherConfig{Brokers: []string{mq.URL()}, ClientID: "batch-pub"}, nil)
	defer p.Close()
	const n = 500
	topics, payloads := make([]string, n), make([][]byte, n)
	for i := range n {
		topics[i], payloads[i] = fmt.Sprintf("out/%d", i%7), fmt.Appendf(nil, `{"i":%d}`, i)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		return p.PublishBatch(context.Background(), topics, payloads, 1, false)
	})
	testkit.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != n {
			return fmt.Errorf("subscriber got %d of %d", len(got), n)
		}
		return nil
	})
}
