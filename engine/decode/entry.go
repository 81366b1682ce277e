package decode

import (
	"encoding/binary"
)

// Input-log entry layouts. AppendEntry writes entryV1; ParseEntry also reads
// entryV0 (written before receipt times were kept) and bare payloads.
const (
	// entryV0: 0x00, uvarint(len(topic)), topic, payload.
	entryV0 = 0x00
	// entryV1: 0x01, receipt time (8 bytes, big-endian unix ms),
	// uvarint(len(topic)), topic, payload.
	entryV1 = 0x01
	// entryV1Head is the part of an entryV1 before its identity.
	entryV1Head = 1 + 8
)

// AppendEntry appends to dst the input-log entry of a message: its receipt
// time (unix ms), topic ("" when it has none) and payload. ParseEntry reads
// it back as the Input to decode. Keeping the receipt time in the entry is
// what makes decoding deterministic on replay: relative SenML times resolve
// the same after a crash. It takes the topic as a string, as MQTT clients
// deliver it, and allocates nothing when dst has room.
func AppendEntry(dst []byte, received int64, topic string, payload []byte) []byte {
	dst = append(dst, entryV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(received))
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	return append(dst, payload...)
}

// ParseEntry splits an input-log entry into an Input whose Payload and
// Topic alias rec. It reads the entries of AppendEntry, the older framing
// without a receipt time (Received 0), and anything else as a bare payload
// (no topic, Received 0): JSON, CSV and SenML text never start with the
// bytes 0x00 or 0x01. It never fails.
func ParseEntry(rec []byte) Input {
	if len(rec) == 0 {
		return Input{Payload: rec}
	}
	var received int64
	rest := rec[1:]
	switch rec[0] {
	case entryV1:
		if len(rec) < entryV1Head {
			return Input{Payload: rec}
		}
		received = int64(binary.BigEndian.Uint64(rec[1:]))
		rest = rec[entryV1Head:]
	case entryV0:
	default:
		return Input{Payload: rec}
	}
	l, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) < l {
		return Input{Payload: rec}
	}
	topic := rest[k : k+int(l)]
	return Input{Payload: rest[k+int(l):], Topic: topic, Received: received}
}

// EntryIdentity returns the part of an input-log entry that identifies the
// message, its topic and payload, without the receipt time: two receptions
// of one message (a QoS 1 redelivery) have equal identities and different
// entries. The log's duplicate detection must compare identities. For an
// AppendEntry entry it is rec[9:]; other entries are their own identity.
func EntryIdentity(rec []byte) []byte {
	if len(rec) >= entryV1Head && rec[0] == entryV1 {
		return rec[entryV1Head:]
	}
	return rec
}
