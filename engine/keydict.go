package engine

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// keyDict interns the keys of a keyed operator: each distinct key (by
// Value.AppendKey) gets a small integer id, so that per-key data lives in dense
// slices indexed by id instead of maps. Ids are reference counted by the panes
// and state tables that use them and recycled when no longer referenced.
type keyDict struct {
	ids  map[string]int32
	keys []Value  // key value by id
	enc  []string // encoded key by id
	refs []int32
	free []int32
	buf  []byte
}

func newKeyDict() *keyDict { return &keyDict{ids: map[string]int32{}} }

// id returns the id of v, interning it if needed. A newly interned key has no
// references: the caller must ref it or it stays until the next unref to 0.
func (d *keyDict) id(v Value) int32 {
	d.buf = v.AppendKey(d.buf[:0])
	if id, ok := d.ids[string(d.buf)]; ok {
		return id
	}
	return d.insert(v, string(d.buf))
}

func (d *keyDict) insert(v Value, enc string) int32 {
	if v.Kind == KindList {
		v = List(slices.Clone(v.Items())...)
	}
	var id int32
	if n := len(d.free); n > 0 {
		id = d.free[n-1]
		d.free = d.free[:n-1]
		d.keys[id], d.enc[id], d.refs[id] = v, enc, 0
	} else {
		id = int32(len(d.keys))
		d.keys = append(d.keys, v)
		d.enc = append(d.enc, enc)
		d.refs = append(d.refs, 0)
	}
	d.ids[enc] = id
	return id
}

func (d *keyDict) ref(id int32) { d.refs[id]++ }

func (d *keyDict) unref(id int32) {
	d.refs[id]--
	if d.refs[id] <= 0 {
		delete(d.ids, d.enc[id])
		d.keys[id], d.enc[id], d.refs[id] = Value{}, "", 0
		d.free = append(d.free, id)
	}
}

// size is the number of id slots (live or free); dense per-id slices are grown
// to it.
func (d *keyDict) size() int { return len(d.keys) }

// live is the number of interned keys.
func (d *keyDict) live() int { return len(d.ids) }

func growValues(s []Value, n int) []Value {
	if len(s) < n {
		s = append(s, make([]Value, n-len(s))...)
	}
	return s
}

func growU32(s []uint32, n int) []uint32 {
	if len(s) < n {
		s = append(s, make([]uint32, n-len(s))...)
	}
	return s
}

func growI32(s []int32, n int) []int32 {
	if len(s) < n {
		s = append(s, make([]int32, n-len(s))...)
	}
	return s
}

func growBool(s []bool, n int) []bool {
	if len(s) < n {
		s = append(s, make([]bool, n-len(s))...)
	}
	return s
}

func growI64(s []int64, n int) []int64 {
	if len(s) < n {
		s = append(s, make([]int64, n-len(s))...)
	}
	return s
}

// appendTimeKey appends a state key made of a one-byte tag and a time that
// sorts in time order (negative times included).
func appendTimeKey(dst []byte, tag byte, t int64) []byte {
	dst = append(dst, tag)
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func readTimeKey(b []byte) (int64, bool) {
	if len(b) != 9 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[1:]) ^ (1 << 63)), true
}

// keyTable is per-key state over a keyDict: a value and a time per key, an
// insertion-ordered key list, and the set of keys changed since the last
// SaveState (so a commit writes only those).
type keyTable struct {
	d       *keyDict
	has     []bool
	held    []bool // the table holds a reference on the id
	inList  []bool // the id is in list (removed ids stay until compact)
	val     []Value
	tm      []int64
	seq     []uint64 // insertion order, kept across restarts
	next    uint64
	sorted  bool // list needs sorting by seq after a load
	list    []int32
	nlive   int
	dirty   []int32
	isDirty []bool
	buf     []byte
}

func (k *keyTable) grow() {
	n := k.d.size()
	k.has = growBool(k.has, n)
	k.held = growBool(k.held, n)
	k.inList = growBool(k.inList, n)
	k.val = growValues(k.val, n)
	k.tm = growI64(k.tm, n)
	if len(k.seq) < n {
		k.seq = append(k.seq, make([]uint64, n-len(k.seq))...)
	}
	k.isDirty = growBool(k.isDirty, n)
}

func (k *keyTable) markDirty(id int32) {
	if !k.isDirty[id] {
		k.isDirty[id] = true
		k.dirty = append(k.dirty, id)
	}
}

// set stores v for id, adding the key if absent.
func (k *keyTable) set(id int32, v Value) {
	k.grow()
	if !k.has[id] {
		k.has[id] = true
		if !k.held[id] {
			k.held[id] = true
			k.d.ref(id)
		}
		if !k.inList[id] {
			k.inList[id] = true
			k.list = append(k.list, id)
		}
		k.nlive++
		k.seq[id] = k.next
		k.next++
	}
	k.val[id] = v
	k.markDirty(id)
}

// remove deletes the key. Its id stays referenced until SaveState wrote the
// delete, so it is not recycled before that.
func (k *keyTable) remove(id int32) {
	if !k.has[id] {
		return
	}
	k.has[id] = false
	k.val[id] = Value{}
	k.nlive--
	k.markDirty(id)
}

// compact drops removed keys from the ordered list.
func (k *keyTable) compact() {
	if k.nlive == len(k.list) {
		return
	}
	j := 0
	for _, id := range k.list {
		if k.has[id] {
			k.list[j] = id
			j++
		} else {
			k.inList[id] = false
		}
	}
	k.list = k.list[:j]
}

// save writes the changed keys under tag: tag+encodedKey -> value, time.
func (k *keyTable) save(w *StateWriter, tag byte) {
	for _, id := range k.dirty {
		k.isDirty[id] = false
		k.buf = append(k.buf[:0], tag)
		k.buf = append(k.buf, k.d.enc[id]...)
		if k.has[id] {
			n := len(k.buf)
			v := AppendValue(k.buf, k.d.keys[id])
			v = AppendValue(v, k.val[id])
			v = AppendVarint(v, k.tm[id])
			v = AppendVarint(v, int64(k.seq[id]))
			k.buf = v
			w.Put(k.buf[:n], k.buf[n:])
		} else {
			w.Delete(k.buf)
			if k.held[id] {
				k.held[id] = false
				k.d.unref(id) // the reference the table held
			}
		}
	}
	k.dirty = k.dirty[:0]
	k.compact()
}

// load restores one entry written by save (val is the part after the key).
func (k *keyTable) load(val []byte) error {
	key, rest, err := ReadValue(val)
	if err != nil {
		return err
	}
	v, rest, err := ReadValue(rest)
	if err != nil {
		return err
	}
	t, rest, err := ReadVarint(rest)
	if err != nil {
		return err
	}
	sq, _, err := ReadVarint(rest)
	if err != nil {
		return err
	}
	id := k.d.id(key)
	k.grow()
	if !k.has[id] {
		k.has[id] = true
		k.held[id] = true
		k.inList[id] = true
		k.d.ref(id)
		k.list = append(k.list, id)
		k.nlive++
	}
	k.val[id], k.tm[id], k.seq[id] = v, t, uint64(sq)
	if uint64(sq) >= k.next {
		k.next = uint64(sq) + 1
	}
	k.sorted = true
	return nil
}

// order sorts the key list by insertion order after a restore.
func (k *keyTable) order() {
	if k.sorted {
		k.sorted = false
		slices.SortFunc(k.list, func(a, b int32) int { return cmp.Compare(k.seq[a], k.seq[b]) })
	}
}
