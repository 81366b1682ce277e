package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// rawPublisher speaks just enough MQTT 3.1.1 to publish at QoS 0 over one
// connection: CONNECT, PUBLISH packets written through a 64 KiB buffer,
// DISCONNECT. It costs a fraction of paho's CPU per message, so that on a
// small machine the publisher is not what limits the subscriber under test:
// TCP back-pressure paces it to what the broker forwards.
type rawPublisher struct {
	c net.Conn
	w *bufio.Writer
}

func dialRaw(broker, clientID string) (*rawPublisher, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	p := &rawPublisher{c: c, w: bufio.NewWriterSize(c, 64<<10)}
	// CONNECT: protocol "MQTT" level 4, clean session, keepalive 0 (off).
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0}
	body := append(vh, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	p.w.WriteByte(0x10)
	p.w.Write(remLen(nil, len(body)))
	p.w.Write(body)
	if err := p.w.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	var ack [4]byte
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK refused: % x", ack)
	}
	return p, nil
}

// publish buffers a QoS 0 PUBLISH.
func (p *rawPublisher) publish(topic string, payload []byte) error {
	p.w.WriteByte(0x30)
	var lb [4]byte
	p.w.Write(remLen(lb[:0], 2+len(topic)+len(payload)))
	p.w.WriteByte(byte(len(topic) >> 8))
	p.w.WriteByte(byte(len(topic)))
	p.w.WriteString(topic)
	_, err := p.w.Write(payload)
	return err
}

func (p *rawPublisher) flush() error { return p.w.Flush() }

// close sends DISCONNECT and closes the connection.
func (p *rawPublisher) close() error {
	p.w.Write([]byte{0xe0, 0})
	err := p.w.Flush()
	if cerr := p.c.Close(); err == nil {
		err = cerr
	}
	return err
}

// remLen appends MQTT's variable-length encoding of n.
func remLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}
