package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/edgedio/edged/engine"
	bolt "go.etcd.io/bbolt"
)

// History tables (engine.WriteHistory) live in the bucket "tables", one
// bucket per table: the key "m" holds its metadata (JSON: columns,
// retention, row budget, counters), and its rows are split into chunk
// buckets by time ('c' + 8-byte chunk number), each row keyed by its
// 8-byte time and then its encoded key. Time first makes a commit append
// at the end of its chunk (an hour of 10,000 rows writes new pages, it does
// not rewrite every key's page), and a read of (key, time) is one Get.
// Chunks make retention and the row budget cheap: the oldest rows go a
// whole chunk (DeleteBucket) at a time. The
// bucket is created by the first write, so older files need no migration.
var bktTables = []byte("tables")

var keyTableMeta = []byte("m")

// tableMeta is a table's metadata.
type tableMeta struct {
	Keys    []tableCol `json:"keys"`
	Cols    []tableCol `json:"cols"`
	Keep    int64      `json:"keepMs,omitempty"`
	MaxRows int64      `json:"maxRows"`
	Chunk   int64      `json:"chunkMs"`
	Writer  string     `json:"writer"`
	Rows    int64      `json:"rows"`
	MaxTime int64      `json:"maxTime"`
	HasTime bool       `json:"hasTime"`
	// Chunks counts the rows of each chunk, by chunk number.
	Chunks map[int64]int64 `json:"chunks"`
	// Expired rows went with retention, Evicted ones for the row budget;
	// Dropped rows were not written (over the budget with no older chunk
	// to evict, or older than the retention when written).
	Expired int64 `json:"expired"`
	Evicted int64 `json:"evicted"`
	Dropped int64 `json:"dropped"`
}

type tableCol struct {
	Name string `json:"name"`
	Kind string `json:"type"`
}

func toCols(fs []engine.Field) []tableCol {
	out := make([]tableCol, len(fs))
	for i, f := range fs {
		out[i] = tableCol{f.Name, f.Kind.String()}
	}
	return out
}

func fromCols(cs []tableCol) []engine.Field {
	out := make([]engine.Field, len(cs))
	for i, c := range cs {
		k, _ := engine.ParseKind(c.Kind)
		out[i] = engine.Field{Name: c.Name, Kind: k}
	}
	return out
}

// chunkWidth is the time a chunk covers: an eighth of the retention (rows
// stay at most Keep + Keep/8), at least a minute; a day without retention.
func chunkWidth(keep int64) int64 {
	if keep <= 0 {
		return 24 * 3600 * 1000
	}
	return max(keep/8, 60_000)
}

func chunkName(b []byte, idx int64) []byte {
	return be64(append(b, 'c'), uint64(idx)^1<<63)
}

// appendTime appends a row time so that byte order is time order.
func appendTime(b []byte, t int64) []byte { return be64(b, uint64(t)^1<<63) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func readTableMeta(tb *bolt.Bucket) (*tableMeta, error) {
	v := tb.Get(keyTableMeta)
	if v == nil {
		return nil, nil
	}
	m := &tableMeta{}
	if err := json.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if m.Chunks == nil {
		m.Chunks = map[int64]int64{}
	}
	return m, nil
}

// applyTables writes an epoch's history-table rows in its transaction.
func (x *DB) applyTables(tx *bolt.Tx, ws []engine.TableWrite) error {
	if len(ws) == 0 {
		return nil
	}
	root, err := tx.CreateBucketIfNotExists(bktTables)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if err := x.applyTable(root, &w); err != nil {
			return fmt.Errorf("history table %q: %w", w.Spec.Name, err)
		}
	}
	return nil
}

func (x *DB) applyTable(root *bolt.Bucket, w *engine.TableWrite) error {
	sp := w.Spec
	tb, err := root.CreateBucketIfNotExists([]byte(sp.Name))
	if err != nil {
		return err
	}
	m, err := readTableMeta(tb)
	if err != nil {
		return err
	}
	keys, cols := toCols(sp.Keys), toCols(sp.Cols)
	if m != nil && (!slices.Equal(m.Keys, keys) || !slices.Equal(m.Cols, cols)) {
		// The writer's columns changed: old rows would read as the new
		// columns, so the table starts afresh.
		x.log.Warn("history table columns changed; its rows are dropped", "table", sp.Name, "writer", sp.Writer, "rows", m.Rows)
		for idx := range m.Chunks {
			if err := tb.DeleteBucket(chunkName(nil, idx)); err != nil && err != bolt.ErrBucketNotFound {
				return err
			}
		}
		m = nil
	}
	if m == nil {
		m = &tableMeta{Chunks: map[int64]int64{}, Chunk: chunkWidth(sp.Keep)}
	}
	m.Keys, m.Cols, m.Keep, m.MaxRows, m.Writer = keys, cols, sp.Keep, sp.MaxRows, sp.Writer
	if m.MaxRows <= 0 {
		m.MaxRows = engine.DefaultTableRows
	}
	chunks := map[int64]*bolt.Bucket{}
	drop := func(idx int64) error {
		delete(chunks, idx)
		n := m.Chunks[idx]
		delete(m.Chunks, idx)
		m.Rows -= n
		if err := tb.DeleteBucket(chunkName(nil, idx)); err != nil && err != bolt.ErrBucketNotFound {
			return err
		}
		return nil
	}
	// Rows go in (time, key) order, so they append to the chunk's pages,
	// which are then packed full.
	order := make([]int32, len(w.Rows))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		ra, rb := &w.Rows[a], &w.Rows[b]
		if ra.Time != rb.Time {
			return cmp.Compare(ra.Time, rb.Time)
		}
		return bytes.Compare(ra.Key, rb.Key)
	})
	for _, oi := range order {
		r := &w.Rows[oi]
		if m.Keep > 0 && m.HasTime && r.Time < m.MaxTime-m.Keep {
			m.Dropped++ // older than what the table keeps
			continue
		}
		idx := floorDiv(r.Time, m.Chunk)
		b := chunks[idx]
		if b == nil {
			if b, err = tb.CreateBucketIfNotExists(chunkName(nil, idx)); err != nil {
				return err
			}
			b.FillPercent = 1.0
			chunks[idx] = b
		}
		var tk [8]byte
		k := x.stable(appendTime(tk[:0], r.Time), r.Key)
		if b.Get(k) == nil {
			for m.Rows >= m.MaxRows {
				oldest, ok := minKey(m.Chunks)
				if !ok || oldest >= idx {
					break
				}
				m.Evicted += m.Chunks[oldest]
				if err := drop(oldest); err != nil {
					return err
				}
			}
			if m.Rows >= m.MaxRows {
				m.Dropped++
				continue
			}
			m.Rows++
			m.Chunks[idx]++
		}
		if err := b.Put(k, r.Val); err != nil {
			return err
		}
		if !m.HasTime || r.Time > m.MaxTime {
			m.MaxTime, m.HasTime = r.Time, true
		}
	}
	if m.Keep > 0 {
		for idx, n := range m.Chunks {
			if (idx+1)*m.Chunk <= m.MaxTime-m.Keep {
				m.Expired += n
				if err := drop(idx); err != nil {
					return err
				}
			}
		}
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tb.Put(keyTableMeta, v)
}

func minKey(m map[int64]int64) (int64, bool) {
	first, k := true, int64(0)
	for i := range m {
		if first || i < k {
			first, k = false, i
		}
	}
	return k, !first
}

// tableCache keeps the parsed metadata of each table, by its stored bytes,
// so a view parses a table's metadata once per change rather than once
// per read.
type tableCache struct {
	mu sync.Mutex
	m  map[string]*cachedTable
}

type cachedTable struct {
	raw    []byte
	meta   *tableMeta
	spec   *engine.TableSpec
	chunks []int64 // chunk numbers, ascending
}

func (c *tableCache) get(name string, raw []byte) (*cachedTable, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.m[name]; t != nil && bytes.Equal(t.raw, raw) {
		return t, nil
	}
	m := &tableMeta{}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("history table %q: metadata: %w", name, err)
	}
	t := &cachedTable{raw: bytes.Clone(raw), meta: m, spec: &engine.TableSpec{Name: name, Keys: fromCols(m.Keys),
		Cols: fromCols(m.Cols), Keep: m.Keep, MaxRows: m.MaxRows, Writer: m.Writer}}
	for idx := range m.Chunks {
		t.chunks = append(t.chunks, idx)
	}
	slices.Sort(t.chunks)
	if c.m == nil {
		c.m = map[string]*cachedTable{}
	}
	c.m[name] = t
	return t, nil
}

// TableView is a consistent snapshot of the history tables (one read
// transaction). It implements engine.TableView.
type TableView struct {
	x   *DB
	tx  *bolt.Tx
	got map[string]*viewTable
	buf []byte
}

// viewTable is a table opened by a view, with its chunk buckets as they
// are opened (bbolt opens a nested bucket anew at every lookup).
type viewTable struct {
	*cachedTable
	b      *bolt.Bucket
	opened map[int64]*bolt.Bucket
}

func (t *viewTable) chunk(idx int64, buf []byte) *bolt.Bucket {
	b, ok := t.opened[idx]
	if !ok {
		b = t.b.Bucket(chunkName(buf[:0], idx))
		t.opened[idx] = b
	}
	return b
}

// ViewTables implements engine.TableReader: fn reads the tables as of the
// last commit, in one read transaction.
func (x *DB) ViewTables(fn func(v engine.TableView) error) error {
	return x.view(func(tx *bolt.Tx) error { return fn(&TableView{x: x, tx: tx}) })
}

// ViewTableSnapshot is ViewTables with the concrete view, for the API.
func (x *DB) ViewTableSnapshot(fn func(v *TableView) error) error {
	return x.view(func(tx *bolt.Tx) error { return fn(&TableView{x: x, tx: tx}) })
}

func (v *TableView) table(name string) (*viewTable, error) {
	if t, ok := v.got[name]; ok {
		return t, nil
	}
	if v.got == nil {
		v.got = map[string]*viewTable{}
	}
	v.got[name] = nil
	root := v.tx.Bucket(bktTables)
	if root == nil {
		return nil, nil
	}
	tb := root.Bucket([]byte(name))
	if tb == nil {
		return nil, nil
	}
	raw := tb.Get(keyTableMeta)
	if raw == nil {
		return nil, nil
	}
	t, err := v.x.tables.get(name, raw)
	if err != nil {
		return nil, err
	}
	vt := &viewTable{cachedTable: t, b: tb, opened: map[int64]*bolt.Bucket{}}
	v.got[name] = vt
	return vt, nil
}

// Spec implements engine.TableView.
func (v *TableView) Spec(table string) (*engine.TableSpec, bool) {
	t, err := v.table(table)
	if t == nil || err != nil {
		return nil, false
	}
	return t.spec, true
}

// Rows implements engine.TableView.
func (v *TableView) Rows(table string, key []byte, from, to int64, fn func(t int64, val []byte) bool) error {
	_, err := v.scan(table, key, false, from, to, func(_ []byte, t int64, val []byte) bool { return fn(t, val) })
	return err
}

// Scan calls fn for the rows of table with a time in [from, to], in time
// then key order: those of one encoded key, or with all set every key. A
// range read goes through every key's rows of the range. It returns the table's
// spec, or nil if there is no such table.
func (v *TableView) Scan(table string, key []byte, all bool, from, to int64, fn func(key []byte, t int64, val []byte) bool) (*engine.TableSpec, error) {
	return v.scan(table, key, all, from, to, fn)
}

func (v *TableView) scan(table string, key []byte, all bool, from, to int64, fn func(key []byte, t int64, val []byte) bool) (*engine.TableSpec, error) {
	t, err := v.table(table)
	if t == nil || err != nil {
		return nil, err
	}
	lo, hi := floorDiv(from, t.meta.Chunk), floorDiv(to, t.meta.Chunk)
	i, _ := slices.BinarySearch(t.chunks, lo)
	for ; i < len(t.chunks) && t.chunks[i] <= hi; i++ {
		b := t.chunk(t.chunks[i], v.buf)
		if b == nil {
			continue
		}
		if !all && from == to {
			v.buf = append(appendTime(v.buf[:0], from), key...)
			if val := b.Get(v.buf); val != nil && !fn(key, from, val) {
				return t.spec, nil
			}
			continue
		}
		c := b.Cursor()
		for k, val := c.Seek(appendTime(v.buf[:0], from)); len(k) >= 8; k, val = c.Next() {
			rt := int64(binary.BigEndian.Uint64(k) ^ 1<<63)
			if rt > to {
				break
			}
			if !all && !bytes.Equal(k[8:], key) {
				continue
			}
			if !fn(k[8:], rt, val) {
				return t.spec, nil
			}
		}
	}
	return t.spec, nil
}

// TableInfo describes a history table, for the API.
type TableInfo struct {
	Name    string         `json:"name"`
	Writer  string         `json:"writer"`
	Keys    []engine.Field `json:"-"`
	Cols    []engine.Field `json:"-"`
	Keep    int64          `json:"keepMs"`
	MaxRows int64          `json:"maxRows"`
	Rows    int64          `json:"rows"`
	MaxTime int64          `json:"-"`
	Bytes   int64          `json:"bytes"`
	Expired int64          `json:"expired"`
	Evicted int64          `json:"evicted"`
	Dropped int64          `json:"dropped"`
}

// Tables describes every history table, from one snapshot. Bytes are the
// bbolt pages a table holds (its share of the disk budget).
func (x *DB) Tables() ([]TableInfo, error) {
	var out []TableInfo
	err := x.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktTables)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(name []byte) error {
			tb := root.Bucket(name)
			m, err := readTableMeta(tb)
			if err != nil || m == nil {
				return err
			}
			st := tb.Stats()
			out = append(out, TableInfo{Name: string(name), Writer: m.Writer, Keys: fromCols(m.Keys), Cols: fromCols(m.Cols),
				Keep: m.Keep, MaxRows: m.MaxRows, Rows: m.Rows, MaxTime: m.MaxTime,
				Bytes:   int64(st.BranchAlloc + st.LeafAlloc),
				Expired: m.Expired, Evicted: m.Evicted, Dropped: m.Dropped})
			return nil
		})
	})
	return out, err
}
