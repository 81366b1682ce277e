package engine

// Origin says where a record came from: the source, its partition and the offset
// of the record in that source's input log.
type Origin struct {
	Source    string
	Partition int32
	Offset    uint64
}

// Record is one row: positional field values described by the batch's Schema, plus
// its event time, its key and its origin. Vals is owned by the Batch that holds the
// record and is reused after the batch is Reset; operators that keep values across
// epochs must copy them.
type Record struct {
	Time   int64 // event time, unix milliseconds; 0 when the pipeline has no event time
	Key    string
	Origin Origin
	Vals   []Value
}

// Batch is the unit operators exchange: the records of one micro-batch (epoch)
// that share one Schema. Batches are reused across epochs: Reset keeps the
// capacity, so a steady-state epoch allocates nothing for its records.
type Batch struct {
	Schema *Schema
	Recs   []Record
	arena  []Value
	// spilled counts the values placed in earlier arena blocks since the last
	// Reset, so Reset can size one block for the whole batch next time.
	spilled int
	// staleRecs and staleVals are the lengths of Recs and arena at the last
	// Reset that found records: entries below them may still hold earlier
	// contents. Append clears each one as it reuses it (while it is in
	// cache), a Reset that finds records clears those not reused, and a Reset
	// of a batch found empty twice in a row clears them all, so an idle batch
	// retains nothing for longer than two Resets (epochs).
	staleRecs, staleVals int
	empties              uint8
}

// NewBatch returns an empty batch for schema s.
func NewBatch(s *Schema) *Batch { return &Batch{Schema: s} }

// Reset empties the batch and sets its schema, keeping allocated capacity.
func (b *Batch) Reset(s *Schema) {
	b.Schema = s
	if len(b.Recs) == 0 && len(b.arena) == 0 {
		if b.empties < 2 {
			b.empties++
			if b.empties < 2 {
				return
			}
		} else if b.staleRecs == 0 && b.staleVals == 0 {
			return
		}
	} else {
		b.empties = 0
	}
	if n := len(b.Recs); n < b.staleRecs {
		clear(b.Recs[n:b.staleRecs])
	}
	if n := len(b.arena); n < b.staleVals {
		clear(b.arena[n:b.staleVals])
	}
	b.staleRecs, b.staleVals = len(b.Recs), len(b.arena)
	b.Recs = b.Recs[:0]
	if b.spilled > 0 {
		// The batch outgrew its block: one block big enough for all of it, so
		// the next epoch of the same size appends without allocating.
		clear(b.Recs[:b.staleRecs])
		b.arena = make([]Value, 0, b.spilled+len(b.arena))
		b.spilled, b.staleRecs, b.staleVals = 0, 0, 0
	}
	b.arena = b.arena[:0]
}

// Len returns the number of records.
func (b *Batch) Len() int { return len(b.Recs) }

// Append adds a record with all fields null and returns it for filling. The
// pointer is valid until the next Append or Reset.
func (b *Batch) Append() *Record {
	n := b.Schema.Len()
	if len(b.arena)+n > cap(b.arena) {
		// Start a fresh arena: records already appended keep pointing at the old
		// one, which stays alive as long as they do.
		c := 2 * cap(b.arena)
		if c < 64*n {
			c = 64 * n
		}
		b.spilled += len(b.arena)
		b.arena = make([]Value, 0, c)
		b.staleVals = 0
	}
	start := len(b.arena)
	vals := b.arena[start : start+n : start+n]
	b.arena = b.arena[:start+n]
	if start < b.staleVals {
		for i := range vals { // field by field: a clear call costs more for a few fields
			vals[i].Kind, vals[i].Num, vals[i].Str, vals[i].list = 0, 0, "", nil
		}
	}
	if len(b.Recs) < cap(b.Recs) {
		b.Recs = b.Recs[:len(b.Recs)+1]
	} else {
		b.Recs = append(b.Recs, Record{})
	}
	r := &b.Recs[len(b.Recs)-1]
	*r = Record{Vals: vals}
	return r
}

// AppendCopy appends a copy of r (which must match the batch's schema width).
func (b *Batch) AppendCopy(r *Record) *Record {
	d := b.Append()
	copy(d.Vals, r.Vals)
	d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
	return d
}

// AppendValues appends a record holding vals (copied).
func (b *Batch) AppendValues(t int64, vals ...Value) *Record {
	d := b.Append()
	copy(d.Vals, vals)
	d.Time = t
	return d
}
