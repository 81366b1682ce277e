package runner

import "encoding/binary"

// topicFrame marks an input-log entry that carries its MQTT topic:
// 0x00, uvarint(len(topic)), topic, payload. Entries of input files are the
// bare payload (JSON, CSV and SenML text never start with a NUL byte).
const topicFrame = 0x00

// AppendEntry appends the input-log entry of a message received on topic to
// dst. The topic routes the entry to the pipelines' sources when it is read
// and fills fields captured by topic templates; it also makes equal
// payloads on different topics distinct entries for the log's dedup.
func AppendEntry(dst []byte, topic string, payload []byte) []byte {
	dst = append(dst, topicFrame)
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	return append(dst, payload...)
}

// SplitEntry splits an input-log entry into topic and payload; framed is
// false for a bare payload (topic nil, payload the whole entry).
func SplitEntry(rec []byte) (topic, payload []byte, framed bool) {
	if len(rec) == 0 || rec[0] != topicFrame {
		return nil, rec, false
	}
	l, k := binary.Uvarint(rec[1:])
	if k <= 0 || uint64(len(rec)-1-k) < l {
		return nil, rec, false
	}
	start := 1 + k
	return rec[start : start+int(l)], rec[start+int(l):], true
}
