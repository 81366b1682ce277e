package mqtt

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// mqttString encodes s as an MQTT length-prefixed string.
func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// mqttPacket frames body as an MQTT packet of the given first byte.
func mqttPacket(first byte, body []byte) []byte {
	out := []byte{first}
	for n := len(body); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// readPacket reads one MQTT packet: its first byte and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// Every QoS 1 PUBLISH gets its PUBACK, in the order the PUBLISHes came
// ([MQTT-4.6.0-2]) and encoded as the client's protocol version wants, when
// the ack writer writes a client's queued acknowledgements together: MQTT
// 3.1.1 and MQTT 5 (which paho cannot speak) clients, on a raw connection.
func TestHandoffAcksInOrderPerProtocol(t *testing.T) {
	var handed atomic.Int64
	_, b := startHandoffBroker(t, HandlerFunc(func(_ context.Context, msgs []Message) error {
		handed.Add(int64(len(msgs)))
		return nil
	}), BrokerLimits{})
	const n = 700
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("protocol %d", v), func(t *testing.T) {
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			connect := append(mqttString("MQTT"), v, 0x02, 0, 60) // clean start, keepalive 60 s
			if v == 5 {
				connect = append(connect, 0) // no properties
			}
			connect = append(connect, mqttString(fmt.Sprintf("raw%d", v))...)
			var out []byte
			out = append(out, mqttPacket(0x10, connect)...)
			for id := 1; id <= n; id++ {
				body := binary.BigEndian.AppendUint16(mqttString("s/1"), uint16(id))
				if v == 5 {
					body = append(body, 0)
				}
				out = append(out, mqttPacket(0x32, append(body, fmt.Sprint(id)...))...)
			}
			if _, err := conn.Write(out); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			if first, body, err := readPacket(r); err != nil || first != 0x20 || len(body) < 2 || body[1] != 0 {
				t.Fatalf("CONNACK: % x % x, %v; want accepted", first, body, err)
			}
			for id := 1; id <= n; id++ {
				first, body, err := readPacket(r)
				if err != nil {
					t.Fatalf("after %d of %d PUBACKs: %v", id-1, n, err)
				}
				want := binary.BigEndian.AppendUint16(nil, uint16(id))
				if first != 0x40 || string(body) != string(want) {
					t.Fatalf("packet %d: % x % x; want PUBACK 40 02 % x", id, first, body, want)
				}
			}
		})
	}
	eventually(t, 10*time.Second, func() error {
		st := b.Stats().Handoff
		if st.Acked != 2*n || handed.Load() != 2*n {
			return fmt.Errorf("stats %+v, %d handed to the Handler; want %d acknowledged and handed", st, handed.Load(), 2*n)
		}
		if sent := atomic.LoadInt64(&b.srv.Info.PacketsSent); sent != 2*n+2 {
			return fmt.Errorf("broker counted %d packets sent; want %d PUBACKs and 2 CONNACKs", sent, 2*n)
		}
		return nil
	})
}
