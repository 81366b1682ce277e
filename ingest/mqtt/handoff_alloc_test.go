package mqtt

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawQoS1Publisher is a minimal MQTT 3.1.1 client on a plain connection:
// it connects and then writes pre-encoded QoS 1 PUBLISH packets and reads
// PUBACKs, so that nothing on the client side allocates per message.
type rawQoS1Publisher struct {
	c net.Conn
	r *bufio.Reader
}

func dialRawPublisher(t testing.TB, url, id string) *rawQoS1Publisher {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	body := append(vh, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	p := &rawQoS1Publisher{c: c, r: bufio.NewReader(c)}
	var ack [4]byte
	if _, err := io.ReadFull(p.r, ack[:]); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	return p
}

// publish writes n QoS 1 PUBLISH packets of payload to topic, window of
// them unacknowledged at a time, and reads every PUBACK.
func (p *rawQoS1Publisher) publish(t testing.TB, topic string, payload []byte, n, window int) {
	t.Helper()
	rem := 2 + len(topic) + 2 + len(payload)
	pk := make([]byte, 0, 4+rem)
	pk = append(pk, 0x32, byte(rem|0x80), byte(rem>>7))
	pk = binary.BigEndian.AppendUint16(pk, uint16(len(topic)))
	pk = append(pk, topic...)
	idAt := len(pk)
	pk = append(pk, 0, 0)
	pk = append(pk, payload...)
	var ack [4]byte
	sent, acked := 0, 0
	for acked < n {
		for sent < n && sent-acked < window {
			binary.BigEndian.PutUint16(pk[idAt:], uint16(sent%60000+1))
			if _, err := p.c.Write(pk); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if _, err := io.ReadFull(p.r, ack[:]); err != nil || ack[0] != 0x40 {
			t.Fatalf("PUBACK %x after %d: %v", ack, acked, err)
		}
		acked++
	}
}

// The embedded broker's QoS 1 hand-off must not allocate a copy of mochi's
// Packet per message. mochi logs every publish a hook rejects at Debug with
// the whole Packet as an argument, which boxes (copies to the heap) about
// 800 bytes per message whatever the log level; the hand-off holds QoS 1
// messages without rejecting them.
func TestHandoffQoS1AllocatesLittlePerMessage(t *testing.T) {
	accept := HandlerFunc(func(context.Context, []Message) error { return nil })
	url, _ := startBroker(t, BrokerConfig{Handler: accept, MaxBatchDelay: time.Millisecond, BatchSize: 1000})
	p := dialRawPublisher(t, url, "alloc")
	payload := []byte(`{"sensor":"s-0001","ts":1700000000000,"temp":21.5,"hum":40.25}`)
	p.publish(t, "sensors/s-0001", payload, 2000, 100) // warm up
	const n = 20000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p.publish(t, "sensors/s-0001", payload, n, 100)
	runtime.ReadMemStats(&after)
	perMsg := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per QoS 1 message (payload %d bytes)", perMsg, len(payload))
	if perMsg > 700 {
		t.Fatalf("%.0f bytes allocated per QoS 1 message; want under 700 (no boxed copy of the Packet)", perMsg)
	}
}
