package engine

import (
	"errors"
	"strconv"
	"strings"
)

// OutputID identifies one output of one epoch of one pipeline partition:
// "pipeline/partition/term/epoch/seq". It is deterministic: a replayed epoch
// numbers its outputs the same way, so every downstream write keyed by it
// (spool entry, file-sink line, uplink object, MQTT "_id") is idempotent.
// Seq counts the outputs of one sink in the epoch, so the same record sent
// to two sinks of a pipeline has the same id in both. Term is the ownership
// term under which the partition emitted (1 on a single gateway); after a
// network partition the uplink keeps the result of the highest term.
//
// The pipeline name may itself contain '/': the last four fields are numbers.
// OutputID is the only place that builds or parses the text form.
type OutputID struct {
	Pipeline  string
	Partition int
	Term      uint64
	Epoch     uint64
	Seq       int
}

// AppendText appends the text form of id to b.
func (id OutputID) AppendText(b []byte) []byte {
	b = append(b, id.Pipeline...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(id.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, id.Term, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, id.Epoch, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, int64(id.Seq), 10)
}

// String returns the text form "pipeline/partition/term/epoch/seq".
func (id OutputID) String() string {
	return string(id.AppendText(make([]byte, 0, len(id.Pipeline)+32)))
}

// Before reports whether id comes before o in one sink's delivery order
// (same pipeline and partition): by term, then epoch, then sequence.
func (id OutputID) Before(o OutputID) bool {
	if id.Term != o.Term {
		return id.Term < o.Term
	}
	if id.Epoch != o.Epoch {
		return id.Epoch < o.Epoch
	}
	return id.Seq < o.Seq
}

// errOutputID is the reason every malformed id gives.
var errOutputID = errors.New("output id: want pipeline/partition/term/epoch/seq with non-negative integers")

// ParseOutputID parses the text form of an output id.
func ParseOutputID(s string) (OutputID, error) {
	var f [4]string
	rest := s
	for i := 3; i >= 0; i-- {
		j := strings.LastIndexByte(rest, '/')
		if j < 0 {
			if i == 0 {
				return parseOldOutputID(s)
			}
			return OutputID{}, errOutputID
		}
		f[i], rest = rest[j+1:], rest[:j]
	}
	if rest == "" {
		return OutputID{}, errOutputID
	}
	p, err1 := strconv.Atoi(f[0])
	t, err2 := strconv.ParseUint(f[1], 10, 64)
	e, err3 := strconv.ParseUint(f[2], 10, 64)
	q, err4 := strconv.Atoi(f[3])
	if errors.Join(err1, err2, err3, err4) != nil || p < 0 || q < 0 {
		return OutputID{}, errOutputID
	}
	return OutputID{Pipeline: rest, Partition: p, Term: t, Epoch: e, Seq: q}, nil
}

// parseOldOutputID parses the id form of edged 0.1,
// "pipeline/partition/epoch/seq" (pipeline names hold no '/'), as term 0:
// its outputs, still spooled or written by a file sink when a gateway is
// upgraded, come before those of the new version (term 1).
func parseOldOutputID(s string) (OutputID, error) {
	f := strings.Split(s, "/")
	if len(f) != 4 || f[0] == "" {
		return OutputID{}, errOutputID
	}
	p, err1 := strconv.Atoi(f[1])
	e, err2 := strconv.ParseUint(f[2], 10, 64)
	q, err3 := strconv.Atoi(f[3])
	if errors.Join(err1, err2, err3) != nil || p < 0 || q < 0 {
		return OutputID{}, errOutputID
	}
	return OutputID{Pipeline: f[0], Partition: p, Epoch: e, Seq: q}, nil
}
