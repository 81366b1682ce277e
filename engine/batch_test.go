package engine

import "testing"

// fillBatch appends n records whose every field and header is non-zero.
func fillBatch(b *Batch, n int) {
	for i := range n {
		r := b.Append()
		r.Time, r.Key, r.Origin = int64(i+1), "k", Origin{Source: "src", Partition: 1, Offset: uint64(i + 1)}
		r.Vals[0] = String("sensor")
		r.Vals[1] = List(Number(1))
	}
}

// staleRefs counts, past the batch's records, the records and values that
// still reference something (they would keep it alive for the GC).
func staleRefs(b *Batch) (recs, vals int) {
	for _, r := range b.Recs[len(b.Recs):cap(b.Recs)] {
		if r.Key != "" || r.Origin.Source != "" || r.Vals != nil {
			recs++
		}
	}
	for _, v := range b.arena[len(b.arena):cap(b.arena)] {
		if v.Str != "" || v.list != nil {
			vals++
		}
	}
	return recs, vals
}

// TestBatchAppendAfterResetIsNull protects Append's contract now that Reset
// leaves the previous contents in place: a reused record and its values come
// back all null, with no time, key or origin.
func TestBatchAppendAfterResetIsNull(t *testing.T) {
	s := MustSchema(Field{"sensor", KindString}, Field{"l", KindList})
	b := NewBatch(s)
	fillBatch(b, 100)
	b.Reset(s) // sizes one arena block for 100 records
	fillBatch(b, 100)
	b.Reset(s)
	for i := range 100 {
		r := b.Append()
		if r.Time != 0 || r.Key != "" || r.Origin != (Origin{}) {
			t.Fatalf("record %d after Reset: time %d key %q origin %+v, want none", i, r.Time, r.Key, r.Origin)
		}
		for j, v := range r.Vals {
			if !v.Equal(Null) || v.Str != "" || v.list != nil {
				t.Fatalf("record %d field %d after Reset: %+v, want null", i, j, v)
			}
		}
	}
}

// TestBatchResetRetainsNothingStale protects against a leak: what an epoch
// left in a batch and the next epoch did not overwrite is cleared by the next
// Reset that finds records, and by the second Reset in a row of an empty
// (idle) batch.
func TestBatchResetRetainsNothingStale(t *testing.T) {
	s := MustSchema(Field{"sensor", KindString}, Field{"l", KindList})
	b := NewBatch(s)
	fillBatch(b, 100)
	b.Reset(s) // sizes one arena block for 100 records
	fillBatch(b, 100)
	b.Reset(s)
	fillBatch(b, 10) // a smaller epoch reuses the first 10
	b.Reset(s)
	if b.Len() != 0 {
		t.Fatalf("Len after Reset = %d", b.Len())
	}
	b.Recs, b.arena = b.Recs[:10], b.arena[:20] // look past what this epoch kept
	if recs, vals := staleRefs(b); recs != 0 || vals != 0 {
		t.Fatalf("after a 10-record epoch following a 100-record one: %d records and %d values past the first 10 still hold references", recs, vals)
	}
	b.Recs, b.arena = b.Recs[:0], b.arena[:0]

	b.Reset(s) // idle: first empty Reset keeps the 10 for reuse
	b.Reset(s) // second: clears them
	if recs, vals := staleRefs(b); recs != 0 || vals != 0 {
		t.Fatalf("after two empty Resets: %d records and %d values still hold references", recs, vals)
	}
}
