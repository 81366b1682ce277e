package mqtt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		limit   int
		rem, hl int
		err     string
	}{
		{"empty", nil, 100, 0, 0, ""},
		{"type only", []byte{0x30}, 100, 0, 0, ""},
		{"zero length", []byte{0xd0, 0}, 100, 0, 2, ""},
		{"one byte length", []byte{0x30, 127}, 200, 127, 2, ""},
		{"two byte length", []byte{0x30, 0x80, 0x01}, 200, 128, 3, ""},
		{"length continues past the bytes read", []byte{0x30, 0x80}, 200, 0, 0, ""},
		{"four byte length", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 268435455, 268435455, 5, ""},
		{"five byte length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1 << 30, 0, 0, "longer than 4 bytes"},
		{"over the limit", []byte{0x30, 0x80, 0x08}, 1023, 0, 0, "PUBLISH of 1024 bytes is larger than mqtt.max_packet_size (1023)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, rem, hl, err := decodeHeader(tc.in, tc.limit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errMalformed) {
					t.Fatalf("got %v; want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || rem != tc.rem || hl != tc.hl {
				t.Fatalf("got rem=%d hl=%d err=%v; want rem=%d hl=%d", rem, hl, err, tc.rem, tc.hl)
			}
		})
	}
}

func TestDecodePublish(t *testing.T) {
	pub := func(first byte, topic string, id []byte, payload string) (byte, []byte) {
		b := appendString(nil, topic)
		b = append(b, id...)
		return first, append(b, payload...)
	}
	t.Run("qos1 dup", func(t *testing.T) {
		first, body := pub(0x3a, "a/b", []byte{0x12, 0x34}, "hello")
		p, err := decodePublish(first, body)
		if err != nil || string(p.topic) != "a/b" || p.id != 0x1234 || p.qos != 1 || !p.dup || string(p.payload) != "hello" {
			t.Fatalf("got %+v, %v", p, err)
		}
		if cap(p.payload) != len(p.payload) {
			t.Errorf("payload capacity %d beyond its length %d: an append would overwrite the next packet", cap(p.payload), len(p.payload))
		}
	})
	t.Run("qos0 empty payload", func(t *testing.T) {
		first, body := pub(0x30, "t", nil, "")
		p, err := decodePublish(first, body)
		if err != nil || string(p.topic) != "t" || p.qos != 0 || len(p.payload) != 0 || p.retain {
			t.Fatalf("got %+v, %v", p, err)
		}
	})
	t.Run("qos0 retained copy", func(t *testing.T) {
		first, body := pub(0x31, "t", nil, "21.5")
		p, err := decodePublish(first, body)
		if err != nil || p.qos != 0 || !p.retain || p.dup || string(p.payload) != "21.5" {
			t.Fatalf("got %+v, %v; want a retained QoS 0 message", p, err)
		}
	})
	bad := []struct {
		name  string
		first byte
		body  []byte
		err   string
	}{
		{"qos 3", 0x36, appendString(nil, "t"), "QoS 3"},
		{"no topic length", 0x30, []byte{0}, "no topic length"},
		{"topic longer than the packet", 0x30, []byte{0, 9, 'a'}, "topic length 9"},
		{"empty topic", 0x30, []byte{0, 0, 'x'}, "topic length 0"},
		{"no packet id", 0x32, appendString(nil, "t"), "without a packet id"},
		{"packet id 0", 0x32, append(appendString(nil, "t"), 0, 0), "packet id 0"},
		{"topic not UTF-8", 0x30, []byte{0, 1, 0xff}, "not UTF-8"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePublish(tc.first, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errMalformed) {
				t.Fatalf("got %v; want an error containing %q", err, tc.err)
			}
		})
	}
}

// TestEncodePackets checks the client's packets byte for byte against MQTT
// 3.1.1 (sections 3.1, 3.4, 3.8, 3.12, 3.14).
func TestEncodePackets(t *testing.T) {
	got := appendConnect(nil, connectOptions{clientID: "id", username: "u", password: "pw", keepAlive: 30})
	want := []byte{0x10, 21, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc0, 0, 30, 0, 2, 'i', 'd', 0, 1, 'u', 0, 2, 'p', 'w'}
	if !bytes.Equal(got, want) {
		t.Errorf("CONNECT:\n got %v\nwant %v", got, want)
	}
	got = appendConnect(nil, connectOptions{clientID: "c", cleanSession: true})
	want = []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'c'}
	if !bytes.Equal(got, want) {
		t.Errorf("clean CONNECT:\n got %v\nwant %v", got, want)
	}
	got = appendSubscribe(nil, 1, []Subscription{{Topic: "a/#", QoS: 1}, {Topic: "$share/g/b", QoS: 0}})
	want = append([]byte{0x82, 21, 0, 1, 0, 3, 'a', '/', '#', 1, 0, 10}, "$share/g/b"...)
	want = append(want, 0)
	if !bytes.Equal(got, want) {
		t.Errorf("SUBSCRIBE:\n got %v\nwant %v", got, want)
	}
	if got := appendPuback(nil, 0x0102); !bytes.Equal(got, []byte{0x40, 2, 1, 2}) {
		t.Errorf("PUBACK: got %v", got)
	}
	long := appendLength(nil, 321)
	if !bytes.Equal(long, []byte{0xc1, 0x02}) {
		t.Errorf("length 321: got %v; want [193 2]", long)
	}
	if _, rem, hl, err := decodeHeader(append([]byte{0x30}, appendLength(nil, 2097152)...), 1<<30); err != nil || rem != 2097152 || hl != 5 {
		t.Errorf("length round trip: got %d, %d, %v", rem, hl, err)
	}
}

// streamConn is a net.Conn whose reads come from r (then EOF) and whose
// writes are discarded; deadlines are ignored.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c *streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// readStream runs a connection's reader over in and returns its error and
// the messages it queued.
func readStream(t testing.TB, in []byte, maxPacket int) ([]Message, error) {
	cfg := testConfig("tcp://127.0.0.1:1", "fuzz", "#", 1)
	cfg.MaxPacketSize = maxPacket
	cfg.MaxInFlight = 1 << 20
	s, err := New(cfg, HandlerFunc(func(context.Context, []Message) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	s.stopIn, s.ready, s.room = make(chan struct{}), make(chan struct{}, 1), make(chan struct{}, 1)
	w := &wire{s: s, conn: &streamConn{r: bytes.NewReader(in)}, connack: make(chan error, 1), suback: make(chan error, 1),
		closing: make(chan struct{})}
	err = w.readLoop()
	return s.inMsgs, err
}

// connackOK is a CONNACK accepting the connection.
var connackOK = []byte{0x20, 2, 0, 0}

func publishBytes(qos byte, id uint16, topic, payload string) []byte {
	body := appendString(nil, topic)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	body = append(body, payload...)
	return append(appendLength([]byte{pktPublish<<4 | qos<<1}, len(body)), body...)
}

// TestReaderParsesManyPacketsAndRefusesBadOnes: a stream holding a CONNACK,
// a SUBACK and PUBLISH packets of every size class is queued message by
// message; a malformed or oversized packet ends the connection with an
// error naming the problem.
func TestReaderParsesManyPacketsAndRefusesBadOnes(t *testing.T) {
	var in []byte
	in = append(in, connackOK...)
	in = append(in, 0x90, 3, 0, 1, 1) // SUBACK for id 1, QoS 1 granted
	want := []string{}
	for i := range 3000 {
		p := strings.Repeat("x", i%300) // crosses read boundaries and slabs
		if i == 2999 {
			p = strings.Repeat("y", 200_000) // larger than a slab
		}
		in = append(in, publishBytes(byte(i%2), uint16(i%65535+1), "s/"+string(rune('a'+i%26)), p)...)
		want = append(want, p)
	}
	in = append(in, 0xd0, 0) // PINGRESP
	msgs, err := readStream(t, in, 1<<20)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("reader ended with %v; want EOF", err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages; want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if string(m.Payload) != want[i] || m.Topic != "s/"+string(rune('a'+i%26)) || m.QoS != byte(i%2) {
			t.Fatalf("message %d: got topic %q QoS %d payload of %d bytes; want %q, %d, %d bytes",
				i, m.Topic, m.QoS, len(m.Payload), "s/"+string(rune('a'+i%26)), i%2, len(want[i]))
		}
	}

	bad := []struct {
		name string
		in   []byte
		err  string
	}{
		{"PUBLISH before CONNACK", publishBytes(0, 0, "t", "x"), "PUBLISH before CONNACK"},
		{"oversized packet", append(append([]byte{}, connackOK...), 0x30, 0xff, 0xff, 0xff, 0x7f), "larger than mqtt.max_packet_size"},
		{"QoS 2 PUBLISH", append(append([]byte{}, connackOK...), 0x34, 5, 0, 1, 't', 0, 1), "QoS 2 PUBLISH"},
		{"PUBREL", append(append([]byte{}, connackOK...), 0x62, 2, 0, 1), "unexpected PUBREL"},
		{"second CONNACK", append(append([]byte{}, connackOK...), connackOK...), "unexpected CONNACK"},
		{"refused CONNACK", []byte{0x20, 2, 0, 5}, "not authorized"},
		{"PINGRESP with a body", append(append([]byte{}, connackOK...), 0xd0, 1, 0), "PINGRESP with a body"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readStream(t, tc.in, 1<<20)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v; want an error containing %q", err, tc.err)
			}
		})
	}
}

// TestReaderAllocatesOnlyWhatArrives: a header claiming a packet of 256 MB
// (allowed by the limit) followed by a few bytes costs the reader about a
// slab, not what the header claims.
func TestReaderAllocatesOnlyWhatArrives(t *testing.T) {
	in := append(append([]byte{}, connackOK...), 0x30, 0xff, 0xff, 0xff, 0x7f, 0, 1, 't')
	in = append(in, make([]byte, 300_000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readStream(t, in, 268435455)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("got %v; want EOF (the packet never completed)", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("reader allocated %d bytes for 300 KB of a packet claiming 256 MB; want at most 4 MiB", got)
	}
}

// FuzzReader feeds arbitrary bytes after a CONNACK to a connection's reader:
// it must end with an error (EOF at the latest) and never panic, and what
// it queued must lie within the bytes it was given.
func FuzzReader(f *testing.F) {
	f.Add(publishBytes(1, 7, "a/b", "payload"))
	f.Add(append(publishBytes(0, 0, "t", "x"), 0xd0, 0))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x90, 3, 0, 1, 0x80})
	f.Add([]byte{0x32, 3, 0, 1, 't'})
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		in := append(append([]byte{}, connackOK...), data...)
		msgs, err := readStream(t, in, 4096)
		if err == nil {
			t.Fatal("reader ended without an error")
		}
		total := 0
		for _, m := range msgs {
			total += len(m.Payload)
			if cap(m.Payload) != len(m.Payload) {
				t.Fatal("payload capacity beyond its length")
			}
		}
		if total > len(in) {
			t.Fatalf("queued %d payload bytes from %d input bytes", total, len(in))
		}
	})
}
