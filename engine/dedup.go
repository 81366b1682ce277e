package engine

import (
	"fmt"
	"slices"
	"strings"
)

// DedupConfig configures DropDuplicates.
type DedupConfig struct {
	// Keys are the fields whose values identify a duplicate (all fields when
	// empty).
	Keys []string
	// EventTimeField names the field that holds the record's event time. When it
	// is among Keys, the dedup state of a key lives until the watermark passes it
	// (evicted when Record.Time <= Watermark) and rows with Record.Time <=
	// LateBound are dropped as late. The event-time key is detected by this name
	// only: a time-kind key field of another name is an ordinary key.
	EventTimeField string
	// WithinWatermark selects dropDuplicatesWithinWatermark: a key's state
	// expires at the event time of its first kept row + Delay and is evicted when
	// expiry <= Watermark; rows with Record.Time <= LateBound are late.
	WithinWatermark bool
	// Delay is the expiry delay of WithinWatermark, in milliseconds (usually the
	// source's watermark delay).
	Delay int64
}

// DropDuplicates keeps the first row of each key, in input order (also within
// one batch), and drops the others, counting them in Stats.Duplicates. Late
// rows (see DedupConfig) are dropped before the duplicate check and counted in
// Stats.Late only. Without an event-time key and without WithinWatermark the
// state is never evicted. Output: the input rows, unchanged.
func DropDuplicates(cfg DedupConfig) Operator { return &dedupOp{cfg: cfg} }

type dedupEntry struct {
	exp   int64 // eviction time: event time, or first_kept_ts+delay; NoWatermark = never
	dirty bool
	saved bool
}

type dedupOp struct {
	cfg     DedupConfig
	in      *Schema
	keyIdx  []int
	timeKey bool
	seen    map[string]*dedupEntry
	dirty   []string
	deletes []string
	lastEv  int64
	buf     []byte
	vbuf    []byte
}

func (o *dedupOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	o.in = in[0]
	keys := o.cfg.Keys
	if len(keys) == 0 {
		for _, f := range in[0].fields {
			keys = append(keys, f.Name)
		}
	}
	o.keyIdx = make([]int, len(keys))
	for i, k := range keys {
		j, err := in[0].Lookup(k)
		if err != nil {
			return nil, fmt.Errorf("dedup key %q: %w", k, err)
		}
		o.keyIdx[i] = j
		if o.cfg.EventTimeField != "" && k == o.cfg.EventTimeField {
			o.timeKey = true
		}
	}
	if o.cfg.WithinWatermark && o.cfg.Delay < 0 {
		return nil, fmt.Errorf("dedup delay %d: must be >= 0", o.cfg.Delay)
	}
	o.seen = map[string]*dedupEntry{}
	o.lastEv = NoWatermark
	return in[0], nil
}

func (o *dedupOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	timed := o.timeKey || o.cfg.WithinWatermark
	for i := range b.Recs {
		r := &b.Recs[i]
		if timed && ep.LateBound != NoWatermark && r.Time <= ep.LateBound {
			ep.Stats.Late++
			continue
		}
		k := o.buf[:0]
		for _, f := range o.keyIdx {
			k = appendKeyValue(k, r.Vals[f])
		}
		o.buf = k
		if _, dup := o.seen[string(k)]; dup {
			ep.Stats.Duplicates++
			continue
		}
		e := &dedupEntry{exp: NoWatermark, dirty: true}
		switch {
		case o.cfg.WithinWatermark:
			e.exp = r.Time + o.cfg.Delay
		case o.timeKey:
			e.exp = r.Time
		}
		ks := string(k)
		o.seen[ks] = e
		o.dirty = append(o.dirty, ks)
		out.AppendCopy(r)
	}
	if timed && ep.Watermark != NoWatermark && ep.Watermark > o.lastEv {
		o.lastEv = ep.Watermark
		for k, e := range o.seen {
			if e.exp != NoWatermark && e.exp <= ep.Watermark {
				delete(o.seen, k)
				if e.saved {
					o.deletes = append(o.deletes, k)
				}
			}
		}
	}
	ep.Stats.add(len(b.Recs), out.Len())
	return nil
}

// SaveState implements Stateful: new keys are put, evicted keys deleted.
func (o *dedupOp) SaveState(w *StateWriter) error {
	slices.Sort(o.deletes)
	for _, k := range o.deletes {
		w.Delete([]byte(k))
	}
	o.deletes = o.deletes[:0]
	for _, k := range o.dirty {
		e := o.seen[k]
		if e == nil || !e.dirty {
			continue
		}
		e.dirty, e.saved = false, true
		o.vbuf = AppendVarint(o.vbuf[:0], e.exp)
		w.Put([]byte(k), o.vbuf)
	}
	o.dirty = o.dirty[:0]
	return nil
}

// LoadState implements Stateful.
func (o *dedupOp) LoadState(key, val []byte) error {
	exp, _, err := ReadVarint(val)
	if err != nil {
		return err
	}
	o.seen[string(key)] = &dedupEntry{exp: exp, saved: true}
	return nil
}

// StateRows implements Stateful: the number of remembered keys.
func (o *dedupOp) StateRows() int { return len(o.seen) }

var dedupQuerySchema = MustSchema(Field{"key", KindString}, Field{"expires", KindTime})

// QuerySchema implements Queryable: one row per remembered key (its values as
// text, joined by ",") with its expiry (null when it never expires).
func (o *dedupOp) QuerySchema() *Schema { return dedupQuerySchema }

// QueryState implements Queryable, keys in key order.
func (o *dedupOp) QueryState(fn func(r *Record) bool) {
	keys := make([]string, 0, len(o.seen))
	for k := range o.seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := NewBatch(dedupQuerySchema)
	for _, k := range keys {
		var parts []string
		rest := []byte(k)
		for len(rest) > 0 {
			v, r, err := ReadValue(rest)
			if err != nil {
				break
			}
			parts = append(parts, v.String())
			rest = r
		}
		b.Reset(dedupQuerySchema)
		exp := Null
		if e := o.seen[k]; e.exp != NoWatermark {
			exp = Time(e.exp)
		}
		d := b.AppendValues(0, String(strings.Join(parts, ",")), exp)
		if !fn(d) {
			return
		}
	}
}
