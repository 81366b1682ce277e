package uplink

import (
	"github.com/edgedio/edged/engine"
	"strconv"
	"strings"
	"time"
)

// OutputID is a parsed output id (engine.OutputID:
// pipeline/partition/term/epoch/seq).
type OutputID = engine.OutputID

// ParseOutputID parses an output id (engine.ParseOutputID).
func ParseOutputID(id string) (OutputID, error) { return engine.ParseOutputID(id) }

// HiveDefaultPartition is the partition value used when a batch's first row
// has no usable time field (Hive's name for a null partition value).
const HiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// TimeFields are the row fields, in order of preference, that give an
// object's date and hour partitions.
var TimeFields = []string{"window_start", "ts"}

// ObjectKey returns the key of the object holding the whole epochs
// first..last of pipeline/partition:
//
//	PREFIX/pipeline=P/date=YYYY-MM-DD/hour=HH/NODE-pPART-eFIRST-LAST.EXT
//
// date and hour are the UTC time of the batch's first row (the smallest id):
// its "window_start" field, else its "ts" field, each a number of unix
// milliseconds or an RFC 3339 string; without either both are
// HiveDefaultPartition. The pipeline name is path-escaped ('/' becomes %2F).
// The key depends only on the rows, so an upload retried after a timeout or
// a crash writes the same key.
func ObjectKey(prefix, node, ext string, g OutputID, first, last uint64, firstRow []byte) string {
	date, hour := HiveDefaultPartition, HiveDefaultPartition
	if t, ok := rowTime(firstRow); ok {
		t = t.UTC()
		date, hour = t.Format("2006-01-02"), t.Format("15")
	}
	var b strings.Builder
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		b.WriteString(prefix)
		b.WriteByte('/')
	}
	b.WriteString("pipeline=")
	b.WriteString(escapeSegment(g.Pipeline))
	b.WriteString("/date=")
	b.WriteString(date)
	b.WriteString("/hour=")
	b.WriteString(hour)
	b.WriteByte('/')
	b.WriteString(node)
	b.WriteString("-p")
	b.WriteString(strconv.Itoa(g.Partition))
	b.WriteString("-e")
	b.WriteString(strconv.FormatUint(first, 10))
	b.WriteByte('-')
	b.WriteString(strconv.FormatUint(last, 10))
	b.WriteByte('.')
	b.WriteString(ext)
	return b.String()
}

func escapeSegment(s string) string {
	if !strings.ContainsAny(s, "/%\\") {
		return s
	}
	r := strings.NewReplacer("%", "%25", "/", "%2F", "\\", "%5C")
	return r.Replace(s)
}

// rowTime finds the first TimeFields member of a JSON object row.
func rowTime(row []byte) (time.Time, bool) {
	if len(row) == 0 {
		return time.Time{}, false
	}
	var found [2]field
	var ok [2]bool
	err := scanObject(row, func(f field) {
		for i, n := range TimeFields {
			if i < len(found) && !ok[i] && string(f.name) == n {
				found[i], ok[i] = f, true
			}
		}
	})
	if err != nil {
		return time.Time{}, false
	}
	for i := range found {
		if !ok[i] {
			continue
		}
		switch f := found[i]; f.kind {
		case kindNumber:
			if ms, err := strconv.ParseFloat(string(f.raw), 64); err == nil {
				return time.UnixMilli(int64(ms)), true
			}
		case kindString:
			if t, err := time.Parse(time.RFC3339Nano, string(f.str)); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}
