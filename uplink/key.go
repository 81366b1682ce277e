package uplink

import (
	"github.com/edgedio/edged/engine"
	"math"
	"strconv"
	"strings"
	"time"
)

// OutputID is a parsed output id (engine.OutputID:
// pipeline/partition/term/epoch/seq).
type OutputID = engine.OutputID

// ParseOutputID parses an output id (engine.ParseOutputID).
func ParseOutputID(id string) (OutputID, error) { return engine.ParseOutputID(id) }

// HiveDefaultPartition is the partition value used when a row has no
// usable time field (Hive's name for a null partition value).
const HiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// TimeFields are the row fields, in order of preference, that give a row's
// date and hour partitions when the output has no declared schema (with a
// schema: the first of these that is a timestamp column, else its first
// timestamp column).
var TimeFields = []string{"window_start", "ts"}

// epochDigits is the zero-padded width of epoch numbers in object names, so
// that names sort in epoch (time) order: 10^12 one-second epochs are
// 31,700 years.
const epochDigits = 12

// ObjectKey returns the key of the object holding the rows of the epochs
// first..last of pipeline/partition that fall in the Hive partition part
// (see HivePartition):
//
//	PREFIX/pipeline=P/sink=S/date=YYYY-MM-DD/hour=HH/NODE-pPART-eFIRST-LAST.EXT
//
// FIRST and LAST are zero-padded to 12 digits. The sink level is left out
// when sink is empty. The pipeline and sink names are path-escaped ('/'
// becomes %2F). The key depends only on the rows, so an upload retried
// after a timeout or a crash writes the same key.
func ObjectKey(prefix, node, sink, ext string, g OutputID, first, last uint64, part string) string {
	var b strings.Builder
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		b.WriteString(prefix)
		b.WriteByte('/')
	}
	b.WriteString("pipeline=")
	b.WriteString(escapeSegment(g.Pipeline))
	if sink != "" {
		b.WriteString("/sink=")
		b.WriteString(escapeSegment(sink))
	}
	b.WriteByte('/')
	b.WriteString(part)
	b.WriteByte('/')
	b.WriteString(node)
	b.WriteString("-p")
	b.WriteString(strconv.Itoa(g.Partition))
	b.WriteString("-e")
	b.WriteString(padEpoch(first))
	b.WriteByte('-')
	b.WriteString(padEpoch(last))
	b.WriteByte('.')
	b.WriteString(ext)
	return b.String()
}

func padEpoch(e uint64) string {
	s := strconv.FormatUint(e, 10)
	if len(s) < epochDigits {
		s = strings.Repeat("0", epochDigits-len(s)) + s
	}
	return s
}

// HivePartition returns "date=YYYY-MM-DD/hour=HH" for the UTC time t, or
// with HiveDefaultPartition for both when ok is false.
func HivePartition(t time.Time, ok bool) string {
	if !ok {
		return "date=" + HiveDefaultPartition + "/hour=" + HiveDefaultPartition
	}
	return t.UTC().Format("date=2006-01-02/hour=15")
}

// timeColumns returns the member names whose value gives a row's partition
// time for schema s (nil: TimeFields).
func timeColumns(s *Schema) []string {
	if s == nil {
		return TimeFields
	}
	for _, n := range TimeFields {
		for _, c := range s.cols {
			if c.Name == n && c.Type == TypeTimestamp {
				return []string{n}
			}
		}
	}
	for _, c := range s.cols {
		if c.Type == TypeTimestamp {
			return []string{c.Name}
		}
	}
	return nil
}

func escapeSegment(s string) string {
	if !strings.ContainsAny(s, "/%\\") {
		return s
	}
	r := strings.NewReplacer("%", "%25", "/", "%2F", "\\", "%5C")
	return r.Replace(s)
}

// rowTime finds the first of names that is a member of the JSON object row
// with a number of unix milliseconds or an RFC 3339 string.
func rowTime(row []byte, names []string) (time.Time, bool) {
	if len(row) == 0 || len(names) == 0 {
		return time.Time{}, false
	}
	var found [2]field
	var ok [2]bool
	err := scanObject(row, func(f field) {
		for i, n := range names {
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
			if ms, err := strconv.ParseFloat(string(f.raw), 64); err == nil && !math.IsInf(ms, 0) {
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
