package mqtt

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The MQTT 3.1.1 packets the Source's own client speaks: it sends CONNECT,
// SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT and receives CONNACK, SUBACK,
// PUBLISH and PINGRESP. Decoding never allocates and never trusts a length
// it read: every length is checked against the bytes present and against
// the largest packet allowed (Config.MaxPacketSize).

// Control packet types (the high nibble of the first byte).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingreq    = 12
	pktPingresp   = 13
	pktDisconnect = 14
)

// errMalformed is wrapped by every decoding error: the broker sent bytes
// that are not MQTT 3.1.1, and the connection is closed.
var errMalformed = errors.New("malformed packet from the broker")

// packetName names a control packet type for error messages.
func packetName(t byte) string {
	names := [...]string{"reserved(0)", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
		"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved(15)"}
	return names[t&15]
}

// decodeHeader decodes the fixed header at the start of b: the first byte,
// the remaining length and the header's own length. hl is 0 when b does not
// hold the whole header yet. A remaining length encoded in more than four
// bytes, or larger than limit, is an error.
func decodeHeader(b []byte, limit int) (first byte, rem, hl int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, nil
	}
	mult := 1
	for i := 1; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, 0, nil
		}
		c := b[i]
		rem += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if rem > limit {
				return 0, 0, 0, fmt.Errorf("%w: %s of %d bytes is larger than mqtt.max_packet_size (%d)",
					errMalformed, packetName(b[0]>>4), rem, limit)
			}
			return b[0], rem, i + 1, nil
		}
		mult <<= 7
	}
	return 0, 0, 0, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed)
}

// publishPacket is a decoded PUBLISH; Topic and Payload alias the packet's bytes.
type publishPacket struct {
	topic   []byte
	payload []byte
	id      uint16
	qos     byte
	dup     bool
	retain  bool
}

// decodePublish decodes the body of a PUBLISH whose first byte is first.
// The payload is capped at its own length, so that appending to it never
// writes over the bytes that follow it.
func decodePublish(first byte, body []byte) (publishPacket, error) {
	p := publishPacket{qos: (first >> 1) & 3, dup: first&8 != 0, retain: first&1 != 0}
	if p.qos == 3 {
		return p, fmt.Errorf("%w: PUBLISH with QoS 3", errMalformed)
	}
	if len(body) < 2 {
		return p, fmt.Errorf("%w: PUBLISH of %d bytes has no topic length", errMalformed, len(body))
	}
	tl := int(body[0])<<8 | int(body[1])
	if tl == 0 || 2+tl > len(body) {
		return p, fmt.Errorf("%w: PUBLISH topic length %d in a packet of %d bytes", errMalformed, tl, len(body))
	}
	p.topic = body[2 : 2+tl : 2+tl]
	if !utf8.Valid(p.topic) {
		return p, fmt.Errorf("%w: PUBLISH topic is not UTF-8", errMalformed)
	}
	i := 2 + tl
	if p.qos > 0 {
		if i+2 > len(body) {
			return p, fmt.Errorf("%w: QoS %d PUBLISH without a packet id", errMalformed, p.qos)
		}
		p.id = uint16(body[i])<<8 | uint16(body[i+1])
		if p.id == 0 {
			return p, fmt.Errorf("%w: QoS %d PUBLISH with packet id 0", errMalformed, p.qos)
		}
		i += 2
	}
	p.payload = body[i:len(body):len(body)]
	return p, nil
}

// connackError is the meaning of a CONNACK return code other than 0.
func connackError(code byte) error {
	switch code {
	case 1:
		return errors.New("broker refused the connection: unacceptable protocol version (it does not speak MQTT 3.1.1)")
	case 2:
		return errors.New("broker refused the connection: client identifier rejected (mqtt client id)")
	case 3:
		return errors.New("broker refused the connection: server unavailable")
	case 4:
		return errors.New("broker refused the connection: bad user name or password")
	case 5:
		return errors.New("broker refused the connection: not authorized")
	}
	return fmt.Errorf("broker refused the connection: return code %d", code)
}

// appendLength appends the variable-length encoding of a remaining length.
func appendLength(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// connectOptions are the fields of a CONNECT packet.
type connectOptions struct {
	clientID           string
	username, password string
	cleanSession       bool
	keepAlive          uint16 // seconds
}

// appendConnect appends a CONNECT packet (MQTT 3.1.1, protocol level 4).
func appendConnect(b []byte, o connectOptions) []byte {
	var flags byte
	n := 10 + 2 + len(o.clientID) // variable header, then the client id
	if o.cleanSession {
		flags |= 0x02
	}
	if o.username != "" {
		flags |= 0x80
		n += 2 + len(o.username)
		if o.password != "" {
			flags |= 0x40
			n += 2 + len(o.password)
		}
	}
	b = appendLength(append(b, pktConnect<<4), n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags, byte(o.keepAlive>>8), byte(o.keepAlive))
	b = appendString(b, o.clientID)
	if o.username != "" {
		b = appendString(b, o.username)
		if o.password != "" {
			b = appendString(b, o.password)
		}
	}
	return b
}

// appendSubscribe appends a SUBSCRIBE packet with packet id id.
func appendSubscribe(b []byte, id uint16, subs []Subscription) []byte {
	n := 2
	for _, s := range subs {
		n += 2 + len(s.Topic) + 1
	}
	b = appendLength(append(b, pktSubscribe<<4|2), n)
	b = append(b, byte(id>>8), byte(id))
	for _, s := range subs {
		b = append(appendString(b, s.Topic), s.QoS)
	}
	return b
}

// appendPuback appends the PUBACK of packet id.
func appendPuback(b []byte, id uint16) []byte {
	return append(b, pktPuback<<4, 2, byte(id>>8), byte(id))
}

var (
	pingreqPacket    = []byte{pktPingreq << 4, 0}
	disconnectPacket = []byte{pktDisconnect << 4, 0}
)
