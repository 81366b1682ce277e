package engine

import (
	"encoding/binary"
	"math"
)

// groupDict interns grouping keys: the encoded key bytes map to a dense int32 id,
// so per-group state is a slice indexed by id rather than a map of pointers.
// Ids are reference counted and recycled when no state uses them any more.
type groupDict struct {
	idx  map[string]int32
	enc  []string  // encoded key per id
	vals [][]Value // decoded key values per id
	refs []int32
	free []int32
	buf  []byte
	// unused counts interned ids with no reference; released counts releases
	// since the last sweep (a sweep is O(ids), so it runs at most once per
	// len/2 releases).
	unused, released int
	// gen counts sweeps; used[id] is the gen at which id was last referenced.
	gen  uint32
	used []uint32
	// str is the fast path for a single string key field: raw string -> id.
	str     map[string]int32
	strOnly bool
	// strs holds, with strOnly, the key string per id ("" for a key that is
	// not a non-empty string): what emitting a row copies, without going
	// through vals.
	strs []string
}

func newGroupDict() *groupDict { return &groupDict{idx: map[string]int32{}} }

// newGroupDictFor returns a dictionary for keys over fields of s, with the fast
// path (lookup by the raw string, no encoding) for a single string field.
func newGroupDictFor(s *Schema, fields []int) *groupDict {
	d := newGroupDict()
	if len(fields) == 1 && s.Field(fields[0]).Kind == KindString {
		d.strOnly, d.str = true, map[string]int32{}
	}
	return d
}

// appendKeyValue encodes v for a grouping key (AppendValue with -0 folded to 0).
func appendKeyValue(dst []byte, v Value) []byte {
	if v.Num == 0 {
		v.Num = 0
	}
	if math.IsNaN(v.Num) {
		v.Num = math.NaN()
	}
	return AppendValue(dst, v)
}

// encode builds the key of r over fields in d.buf and returns it.
func (d *groupDict) encode(r *Record, fields []int) []byte {
	b := d.buf[:0]
	for _, f := range fields {
		b = appendKeyValue(b, r.Vals[f])
	}
	d.buf = b
	return b
}

// lookup returns the id of r's key, interning it (without a reference) if new.
func (d *groupDict) lookup(r *Record, fields []int) int32 {
	if d.strOnly {
		v := r.Vals[fields[0]]
		if v.Kind == KindString {
			if id, ok := d.str[v.Str]; ok {
				return id
			}
		}
	}
	b := d.encode(r, fields)
	if id, ok := d.idx[string(b)]; ok {
		return id
	}
	vals := make([]Value, len(fields))
	for i, f := range fields {
		vals[i] = r.Vals[f]
	}
	return d.insert(string(b), vals)
}

// insertEncoded interns an encoded key read back from state.
func (d *groupDict) insertEncoded(enc []byte, nvals int) (int32, error) {
	if id, ok := d.idx[string(enc)]; ok {
		return id, nil
	}
	vals := make([]Value, nvals)
	b := enc
	for i := range vals {
		var err error
		if vals[i], b, err = ReadValue(b); err != nil {
			return 0, err
		}
	}
	if len(b) != 0 {
		return 0, ErrCorruptState
	}
	return d.insert(string(enc), vals), nil
}

func (d *groupDict) insert(enc string, vals []Value) int32 {
	var id int32
	if n := len(d.free); n > 0 {
		id = d.free[n-1]
		d.free = d.free[:n-1]
		d.enc[id], d.vals[id], d.refs[id], d.used[id] = enc, vals, 0, d.gen
	} else {
		id = int32(len(d.enc))
		d.enc = append(d.enc, enc)
		d.vals = append(d.vals, vals)
		d.refs = append(d.refs, 0)
		d.used = append(d.used, d.gen)
		if d.strOnly {
			d.strs = append(d.strs, "")
		}
	}
	d.idx[enc] = id
	if d.strOnly && len(vals) == 1 && vals[0].Kind == KindString {
		d.str[vals[0].Str] = id
		d.strs[id] = vals[0].Str
	}
	d.unused++
	return id
}

// size returns the number of ids ever handed out (an upper bound on ids).
func (d *groupDict) size() int { return len(d.enc) }

func (d *groupDict) ref(id int32) {
	if d.refs[id] == 0 {
		d.unused--
	}
	d.refs[id]++
	d.used[id] = d.gen
}

// release drops a reference. Unreferenced keys stay interned (a key that
// comes back in the next window costs no allocation) until they outnumber the
// live ones, when sweep recycles them.
func (d *groupDict) release(id int32) {
	d.refs[id]--
	if d.refs[id] == 0 {
		d.unused++
	}
	d.released++
}

// sweep recycles the ids that have had no reference for two sweeps, when
// unreferenced ids are at least half of the dictionary (amortized O(1) per
// release). Keys that come back in the next window are thus kept.
func (d *groupDict) sweep() {
	if d.unused < 1024 || d.unused*2 < len(d.idx) || d.released < len(d.idx)/2 {
		return
	}
	d.released = 0
	d.gen++
	for id, r := range d.refs {
		if r > 0 {
			d.used[id] = d.gen
			continue
		}
		if d.vals[id] != nil && d.gen-d.used[id] > 2 {
			delete(d.idx, d.enc[id])
			if d.strOnly && len(d.vals[id]) == 1 {
				delete(d.str, d.vals[id][0].Str)
			}
			d.enc[id], d.vals[id] = "", nil
			if d.strOnly {
				d.strs[id] = ""
			}
			d.free = append(d.free, int32(id))
			d.unused--
		}
	}
}

// appendWinTimeKey encodes t so that byte order is time order.
func appendWinTimeKey(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func readWinTimeKey(b []byte) (int64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, ErrCorruptState
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
}

// floorDiv returns floor(a / b) for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// WindowStarts returns the starts of the event-time windows [start, start+size)
// that contain ts, where start ≡ offset (mod slide), in ascending order,
// appended to dst. It uses floor division, so windows before the epoch have
// negative starts. slide <= 0 means slide = size (tumbling).
func WindowStarts(dst []int64, ts, size, slide, offset int64) []int64 {
	if size <= 0 {
		return dst
	}
	if slide <= 0 {
		slide = size
	}
	last := floorDiv(ts-offset, slide)*slide + offset
	first := last
	for first-slide > ts-size {
		first -= slide
	}
	for s := first; s <= last; s += slide {
		if s+size > ts {
			dst = append(dst, s)
		}
	}
	return dst
}
