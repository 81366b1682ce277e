package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
	"github.com/edgedio/edged/storage"
)

// TableSummary describes a history table in GET /api/v1/tables.
type TableSummary struct {
	Name    string     `json:"name"`
	Writer  string     `json:"writer"`
	Keys    []TableCol `json:"keys"`
	Columns []TableCol `json:"columns"`
	Keep    string     `json:"keep,omitempty"`
	MaxRows int64      `json:"maxRows"`
	Rows    int64      `json:"rows"`
	Bytes   int64      `json:"bytes"`
	Newest  string     `json:"newest,omitempty"`
	Expired int64      `json:"expired"`
	Evicted int64      `json:"evicted"`
	Dropped int64      `json:"dropped"`
}

// TableCol is a column of a history table.
type TableCol struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func tableCols(fs []engine.Field) []TableCol {
	out := make([]TableCol, len(fs))
	for i, f := range fs {
		out[i] = TableCol{f.Name, f.Kind.String()}
	}
	return out
}

// handleTables serves GET /api/v1/tables: every history table on this
// node, with its columns, retention, row budget and size.
func (n *Node) handleTables(w http.ResponseWriter, r *http.Request) {
	infos, err := n.db.Tables()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	out := struct {
		Tables []TableSummary `json:"tables"`
	}{Tables: []TableSummary{}}
	for _, t := range infos {
		s := TableSummary{Name: t.Name, Writer: t.Writer, Keys: tableCols(t.Keys), Columns: tableCols(t.Cols),
			MaxRows: t.MaxRows, Rows: t.Rows, Bytes: t.Bytes, Expired: t.Expired, Evicted: t.Evicted, Dropped: t.Dropped}
		if t.Keep > 0 {
			s.Keep = (time.Duration(t.Keep) * time.Millisecond).String()
		}
		if t.Rows > 0 {
			s.Newest = time.UnixMilli(t.MaxTime).UTC().Format(time.RFC3339Nano)
		}
		out.Tables = append(out.Tables, s)
	}
	writeJSON(w, http.StatusOK, out)
}

// TableRows is the answer of GET /api/v1/tables/NAME: rows of a history
// table read from one snapshot, as objects of the key columns, time and the
// other columns (times also as NAME_rfc3339).
type TableRows struct {
	Table     string            `json:"table"`
	Columns   []string          `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
	Truncated bool              `json:"truncated,omitempty"`
}

// handleTableRows serves GET /api/v1/tables/NAME?key=K&from=T1&to=T2&limit=N:
// the rows of one key (one key parameter per key column, in order; none
// for every key) with a time in [from, to] (RFC 3339; open ends when left
// out), from one read transaction.
func (n *Node) handleTableRows(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	var errs []error
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	for _, p := range []struct {
		key string
		dst *int64
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("parameter %s: %q is not an RFC 3339 time (e.g. 2026-03-01T12:00:00Z)", p.key, v))
				continue
			}
			*p.dst = t.UnixMilli()
		}
	}
	limit, err := intParam(q.Get("limit"), queryLimit)
	if err != nil || limit <= 0 || limit > queryMaxLimit {
		errs = append(errs, fmt.Errorf("parameter limit: want 1..%d, got %q", queryMaxLimit, q.Get("limit")))
	}
	if len(errs) > 0 {
		writeErr(w, http.StatusBadRequest, errors.Join(errs...))
		return
	}
	keys := q["key"]
	res := &TableRows{Table: name, Columns: []string{}, Rows: []json.RawMessage{}}
	found, code := false, http.StatusBadRequest
	err = n.db.ViewTableSnapshot(func(v *storage.TableView) error {
		spec, ok := v.Spec(name)
		if !ok {
			code = http.StatusNotFound
			return fmt.Errorf("no history table %q", name)
		}
		found = true
		var key []byte
		if len(keys) > 0 {
			if len(keys) != len(spec.Keys) {
				return fmt.Errorf("parameter key: table %q has key columns [%s]; give one key= per column, in that order",
					name, colNames(spec.Keys))
			}
			for i, k := range keys {
				val, err := parseKey(k, spec.Keys[i].Kind)
				if err != nil {
					return fmt.Errorf("parameter key: column %q: %w", spec.Keys[i].Name, err)
				}
				key = engine.AppendTableKey(key, val)
			}
		}
		fields := append(append(append([]engine.Field(nil), spec.Keys...), engine.Field{Name: "time", Kind: engine.KindTime}), spec.Cols...)
		s, err := engine.NewSchema(fields...)
		if err != nil {
			return err
		}
		for _, f := range fields {
			res.Columns = append(res.Columns, f.Name)
		}
		rec := engine.Record{Vals: make([]engine.Value, len(fields))}
		var buf []byte
		var derr error
		_, err = v.Scan(name, key, key == nil, from, to, func(k []byte, t int64, val []byte) bool {
			if len(res.Rows) >= limit {
				res.Truncated = true
				return false
			}
			if derr = decodeRow(rec.Vals, k, t, val, len(spec.Keys)); derr != nil {
				return false
			}
			buf = appendRFC3339(decode.AppendJSON(buf[:0], s, &rec), s, &rec)
			res.Rows = append(res.Rows, json.RawMessage(append([]byte(nil), buf...)))
			return true
		})
		if err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		if found {
			code = http.StatusBadRequest
		}
		writeErr(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// decodeRow fills vals with a stored row: key values, time, columns.
func decodeRow(vals []engine.Value, k []byte, t int64, val []byte, nkeys int) error {
	var err error
	for i := range nkeys {
		if vals[i], k, err = engine.ReadValue(k); err != nil {
			return err
		}
	}
	vals[nkeys] = engine.Time(t)
	for i := nkeys + 1; i < len(vals); i++ {
		if vals[i], val, err = engine.ReadValue(val); err != nil {
			return err
		}
	}
	return nil
}

// parseKey reads a key parameter as a value of kind k.
func parseKey(s string, k engine.Kind) (engine.Value, error) {
	switch k {
	case engine.KindNumber:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return engine.Null, fmt.Errorf("%q is not a number", s)
		}
		return engine.Number(f), nil
	case engine.KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return engine.Null, fmt.Errorf("%q is not true or false", s)
		}
		return engine.Bool(b), nil
	case engine.KindTime:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return engine.Null, fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		return engine.Time(t.UnixMilli()), nil
	}
	return engine.String(s), nil
}

func colNames(fs []engine.Field) string {
	n := make([]string, len(fs))
	for i, f := range fs {
		n[i] = f.Name
	}
	return strings.Join(n, " ")
}
