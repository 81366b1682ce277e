package engine

import (
	"bytes"
	"slices"
	"sort"
)

// memTable is a history table of a MemStore: per encoded key, the rows in
// time order.
type memTable struct {
	spec    TableSpec
	rows    map[string][]memRow
	n       int64
	maxTime int64
	hasMax  bool
	pruned  int64 // rows before this time are gone
}

type memRow struct {
	t   int64
	val []byte
}

// writeTables applies an epoch's history-table rows (with m.mu held): a
// row replaces the one of the same key and time; rows older than the
// newest row minus Keep are dropped (checked every Keep/8 of time), and a row beyond MaxRows is not kept.
func (m *MemStore) writeTables(ws []TableWrite) {
	if len(ws) == 0 {
		return
	}
	if m.tables == nil {
		m.tables = map[string]*memTable{}
	}
	for _, w := range ws {
		tb := m.tables[w.Spec.Name]
		if tb == nil || !sameColumns(&tb.spec, w.Spec) {
			tb = &memTable{rows: map[string][]memRow{}}
			m.tables[w.Spec.Name] = tb
		}
		tb.spec = *w.Spec
		tb.spec.Keys, tb.spec.Cols = slices.Clone(w.Spec.Keys), slices.Clone(w.Spec.Cols)
		for _, r := range w.Rows {
			if !tb.hasMax || r.Time > tb.maxTime {
				tb.maxTime, tb.hasMax = r.Time, true
			}
			rows := tb.rows[string(r.Key)]
			i := sort.Search(len(rows), func(i int) bool { return rows[i].t >= r.Time })
			if i < len(rows) && rows[i].t == r.Time {
				rows[i].val = bytes.Clone(r.Val)
				continue
			}
			if tb.n >= tb.spec.MaxRows && tb.spec.MaxRows > 0 {
				continue
			}
			rows = slices.Insert(rows, i, memRow{r.Time, bytes.Clone(r.Val)})
			tb.rows[string(r.Key)] = rows
			tb.n++
		}
		// Old rows go in steps of Keep/8, as a chunk of the gateway's store.
		if cut := tb.maxTime - tb.spec.Keep; tb.spec.Keep > 0 && cut-tb.pruned >= max(tb.spec.Keep/8, 1) {
			tb.pruned = cut
			for k, rows := range tb.rows {
				i := sort.Search(len(rows), func(i int) bool { return rows[i].t >= cut })
				if i > 0 {
					tb.n -= int64(i)
					tb.rows[k] = slices.Delete(rows, 0, i)
				}
			}
		}
	}
}

// sameColumns reports whether two specs lay rows out alike.
func sameColumns(a, b *TableSpec) bool {
	return slices.Equal(a.Keys, b.Keys) && slices.Equal(a.Cols, b.Cols)
}

// ViewTables implements TableReader: the view holds the store's lock, so
// it sees no commit until fn returns.
func (m *MemStore) ViewTables(fn func(v TableView) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(memView{m})
}

type memView struct{ m *MemStore }

func (v memView) Spec(table string) (*TableSpec, bool) {
	tb := v.m.tables[table]
	if tb == nil {
		return nil, false
	}
	return &tb.spec, true
}

func (v memView) Rows(table string, key []byte, from, to int64, fn func(t int64, val []byte) bool) error {
	tb := v.m.tables[table]
	if tb == nil {
		return nil
	}
	rows := tb.rows[string(key)]
	i := sort.Search(len(rows), func(i int) bool { return rows[i].t >= from })
	for ; i < len(rows) && rows[i].t <= to; i++ {
		if !fn(rows[i].t, rows[i].val) {
			break
		}
	}
	return nil
}
