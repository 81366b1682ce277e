package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// History tables are named, durable tables of rows a pipeline step writes
// (WriteHistory) and steps of the same or another pipeline read
// (JoinHistory, Anomaly's baseline). A row is the values of the table's key
// columns, a time (unix ms) and the values of its other columns; (key, time)
// identifies it, so writing a row again replaces it.
//
// # Exactly once
//
// The rows an epoch writes travel in its Commit (Commit.Tables) and are
// stored in the same transaction as its state and outputs: a replayed epoch
// writes the rows its first run would have, once. Reads go through a
// TableReader, which the executor finds on its StateStore; a step reads one
// consistent snapshot of committed rows per pass (never rows of the epoch
// being run), so a replayed epoch reads what its first run read as long as
// the rows it reads were written by the same pipeline or are older than
// what another writer may still add.
//
// # Retention
//
// A table keeps the rows whose time is within Keep of the newest row written
// to it (event time, so a replay or a batch run over old data keeps the same
// rows), and at most MaxRows rows: the store drops the oldest rows first.

// TableSpec describes a history table, as its writer declares it.
type TableSpec struct {
	Name string
	// Keys are the key columns, Cols the other columns, in stored order.
	Keys, Cols []Field
	// Keep is the retention in milliseconds; 0 keeps rows until MaxRows.
	Keep int64
	// MaxRows is the row budget; 0 means DefaultTableRows.
	MaxRows int64
	// Writer is "pipeline/step".
	Writer string
}

// DefaultTableRows is the row budget of a table that declares none.
const DefaultTableRows = 1_000_000

// TableRow is one row written: the encoded key (AppendTableKey), the time and
// the encoded column values (AppendValue of each of TableSpec.Cols).
type TableRow struct {
	Key  []byte
	Time int64
	Val  []byte
}

// TableWrite is the rows an epoch writes into one table.
type TableWrite struct {
	Spec *TableSpec
	Rows []TableRow
}

// TableView is a consistent read-only snapshot of the history tables.
type TableView interface {
	// Spec returns the table's spec as last written, or false if the table
	// does not exist (yet).
	Spec(table string) (*TableSpec, bool)
	// Rows calls fn for the rows of table with the encoded key and a time in
	// [from, to] (inclusive), in time order, until fn returns false. val is
	// valid only during fn.
	Rows(table string, key []byte, from, to int64, fn func(t int64, val []byte) bool) error
}

// TableReader gives access to history tables. A StateStore that implements
// it serves the history steps of the executors it backs.
type TableReader interface {
	// ViewTables calls fn with a snapshot of the committed rows. The view is
	// valid only during fn; fn must not wait for a commit.
	ViewTables(fn func(v TableView) error) error
}

// AppendTableKey appends the key encoding of a history table row: the values
// in AppendValue form (so the key decodes), with -0 stored as 0.
func AppendTableKey(dst []byte, vals ...Value) []byte {
	for _, v := range vals {
		if v.Kind == KindNumber && v.Num == 0 {
			v.Num = 0
		}
		dst = AppendValue(dst, v)
	}
	return dst
}

// TableUse is how a step uses a history table, for checks across pipelines
// (a reader needs a writer with the same key columns).
type TableUse struct {
	Step  string
	Table string
	// Write is set for the writer (WriteHistory); Spec is then its table.
	Write bool
	Spec  *TableSpec
	// Keys are the kinds of the key columns a reader looks up (by the
	// table's column names); Cols the columns it reads, with their kinds.
	Keys, Cols []Field
	// Lookback is how far back from a record's time a reader reads (ms).
	Lookback int64
}

// tableOp is implemented by the history operators.
type tableOp interface {
	tableUse() TableUse
}

// tableReaderOp is implemented by operators that read history tables.
type tableReaderOp interface {
	setTables(TableReader)
}

// tableWriterOp is implemented by operators that write history tables: the
// executor adds their epoch's rows to the commit.
type tableWriterOp interface {
	appendWrites(dst []TableWrite, seq uint64) []TableWrite
}

// Tables returns how the plan's steps use history tables.
func (p *Plan) Tables() []TableUse {
	var out []TableUse
	for _, n := range p.nodes {
		if t, ok := n.op.(tableOp); ok {
			if u := t.tableUse(); u.Table != "" {
				u.Step = n.name
				out = append(out, u)
			}
		}
	}
	return out
}

// HistoryWriteConfig configures WriteHistory.
type HistoryWriteConfig struct {
	// Table names the table.
	Table string
	// Keys are the key columns: fields of the input.
	Keys []string
	// Time is the time field of a row (of kind time); empty means the
	// record's event time.
	Time string
	// Keep is the retention; MaxRows the row budget (0: DefaultTableRows).
	Keep    time.Duration
	MaxRows int64
	// Writer names the writer in the table's metadata ("pipeline/step").
	Writer string
}

// WriteHistory writes every record into a history table (committed with the
// epoch) and passes it on unchanged. The table's columns are the input's
// fields other than the key fields and Time. A record whose time field is
// null goes to the dead-letter sink.
func WriteHistory(cfg HistoryWriteConfig) Operator { return &historyWriteOp{cfg: cfg} }

type historyWriteOp struct {
	cfg  HistoryWriteConfig
	spec TableSpec
	ki   []int
	ti   int // -1: event time
	ci   []int
	seq  uint64
	rows []TableRow
	buf  []byte
}

func (o *historyWriteOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	s := in[0]
	var errs []error
	o.spec = TableSpec{Name: o.cfg.Table, Keep: o.cfg.Keep.Milliseconds(), MaxRows: o.cfg.MaxRows, Writer: o.cfg.Writer}
	if o.spec.MaxRows <= 0 {
		o.spec.MaxRows = DefaultTableRows
	}
	used := make([]bool, s.Len())
	o.ki = o.ki[:0]
	for _, k := range o.cfg.Keys {
		i, err := s.Lookup(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys: %w", err))
			continue
		}
		used[i] = true
		o.ki = append(o.ki, i)
		o.spec.Keys = append(o.spec.Keys, s.Field(i))
	}
	o.ti = -1
	if o.cfg.Time != "" {
		i, err := s.Lookup(o.cfg.Time)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("time: %w", err))
		case s.Field(i).Kind != KindTime:
			errs = append(errs, fmt.Errorf("time: field %q is %s, want time: %w", o.cfg.Time, s.Field(i).Kind, ErrType))
		default:
			o.ti, used[i] = i, true
		}
	}
	for i, f := range s.Fields() {
		if !used[i] {
			o.ci = append(o.ci, i)
			o.spec.Cols = append(o.spec.Cols, f)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (o *historyWriteOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	if ep.Seq != o.seq {
		// A new epoch: the previous one's rows were committed (or dropped
		// with a failed epoch, whose executor is rebuilt).
		o.seq, o.rows, o.buf = ep.Seq, o.rows[:0], o.buf[:0]
	}
	b := in[0]
	for i := range b.Recs {
		r := &b.Recs[i]
		t := r.Time
		if o.ti >= 0 {
			v := r.Vals[o.ti]
			if v.Kind != KindTime {
				ep.DeadLetter(r, b.Schema, fmt.Errorf("time: field %q is null: %w", o.cfg.Time, ErrType))
				continue
			}
			t = int64(v.Num)
		}
		// One buffer holds the epoch's keys and values; rows index it once
		// it stops growing (appendWrites).
		start := len(o.buf)
		for _, k := range o.ki {
			o.buf = AppendTableKey(o.buf, r.Vals[k])
		}
		mid := len(o.buf)
		for _, c := range o.ci {
			o.buf = AppendValue(o.buf, r.Vals[c])
		}
		o.rows = append(o.rows, TableRow{Key: o.buf[start:mid:mid], Time: t, Val: o.buf[mid:len(o.buf):len(o.buf)]})
		out.AppendCopy(r)
	}
	ep.Stats.add(b.Len(), out.Len())
	return nil
}

func (o *historyWriteOp) appendWrites(dst []TableWrite, seq uint64) []TableWrite {
	if o.seq != seq || len(o.rows) == 0 {
		return dst
	}
	// The rows' slices were taken while buf grew: they point into the
	// arrays current at the time, which stay alive and unchanged.
	return append(dst, TableWrite{Spec: &o.spec, Rows: o.rows})
}

func (o *historyWriteOp) tableUse() TableUse {
	return TableUse{Table: o.cfg.Table, Write: true, Spec: &o.spec, Keys: o.spec.Keys, Cols: o.spec.Cols}
}

// ChunkSafe: each record is written alone.
func (o *historyWriteOp) ChunkSafe() bool { return true }

// HistoryLookup says which rows of a history table a record reads: the rows
// of the record's key (Keys, in the table's key column order) at the times
// T-Offset, T-2*Offset, ..., T-Periods*Offset, where T is the record's time
// (the Time field or the event time) floored to a multiple of Align when
// set. "The same minute yesterday" is Offset 24h; "the same hour on the
// last 7 days" Offset 24h, Periods 7; "the last 7 days of hourly rows"
// Offset 1h, Periods 168. Each is a point read of (key, time), so a
// record costs Periods reads whatever the table holds.
type HistoryLookup struct {
	Table   string
	Keys    []string
	Time    string
	Align   time.Duration
	Offset  time.Duration
	Periods int
}

// Validate reports every problem of the lookup, naming the parameter.
func (l *HistoryLookup) Validate() error {
	var errs []error
	if l.Table == "" {
		errs = append(errs, errors.New("table: required"))
	}
	if len(l.Keys) == 0 {
		errs = append(errs, errors.New("keys: at least one key column is required"))
	}
	errs = append(errs, checkKeys(l.Keys)...)
	switch {
	case l.Offset < 0 || l.Align < 0 || l.Periods < 0:
		errs = append(errs, errors.New("offset, align and periods must not be negative"))
	case l.Offset == 0:
		errs = append(errs, errors.New("offset: required"))
	case l.Periods > MaxPeriods:
		errs = append(errs, fmt.Errorf("periods: at most %d, have %d", MaxPeriods, l.Periods))
	}
	return errors.Join(errs...)
}

// MaxPeriods bounds HistoryLookup.Periods: a record costs one read per
// period.
const MaxPeriods = 1000

func (l *HistoryLookup) periods() int { return max(l.Periods, 1) }

// single reports whether the lookup reads at most one row per record.
func (l *HistoryLookup) single() bool { return l.periods() == 1 }

// lookback is how far back from T the lookup reads, in ms.
func (l *HistoryLookup) lookback() int64 {
	return int64(l.periods()) * l.Offset.Milliseconds()
}

// historyReader is the lookup machinery the history join and the anomaly
// baseline share: resolved key and time fields, the table reader, and the
// positions of the wanted columns in the stored rows.
type historyReader struct {
	l       HistoryLookup
	want    []Field // columns read
	ki      []int
	ti      int
	tables  TableReader
	key     []byte
	pos     []int // want[i] is stored column pos[i] (-1: absent)
	spec    *TableSpec
	sums    []float64
	counts  []int
	single  []Value
	scratch []Value
	// The rows of the lookup under way (add, through addFn: one method
	// value, not a closure per record).
	rows  int
	derr  error
	addFn func(int64, []byte) bool
}

func (h *historyReader) open(s *Schema) error {
	var errs []error
	if err := h.l.Validate(); err != nil {
		errs = append(errs, err)
	}
	h.ki = h.ki[:0]
	for _, k := range h.l.Keys {
		i, err := s.Lookup(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys: %w", err))
			continue
		}
		h.ki = append(h.ki, i)
	}
	h.ti = -1
	if h.l.Time != "" {
		i, err := s.Lookup(h.l.Time)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("time: %w", err))
		case s.Field(i).Kind != KindTime:
			errs = append(errs, fmt.Errorf("time: field %q is %s, want time: %w", h.l.Time, s.Field(i).Kind, ErrType))
		default:
			h.ti = i
		}
	}
	if !h.l.single() {
		for _, f := range h.want {
			if f.Kind != KindNumber {
				errs = append(errs, fmt.Errorf("fields: %q is %s; reading several rows averages numbers only", f.Name, f.Kind))
			}
		}
	}
	n := len(h.want)
	h.sums, h.counts, h.single, h.pos = make([]float64, n), make([]int, n), make([]Value, n), make([]int, n)
	return errors.Join(errs...)
}

func (h *historyReader) use(s *Schema) TableUse {
	u := TableUse{Table: h.l.Table, Cols: h.want, Lookback: h.l.lookback()}
	for j, i := range h.ki {
		u.Keys = append(u.Keys, Field{Name: h.l.Keys[j], Kind: s.Field(i).Kind})
	}
	return u
}

func (h *historyReader) setTables(t TableReader) { h.tables = t }

// view runs fn with a snapshot of the tables, after mapping the wanted
// columns onto the table's stored columns.
func (h *historyReader) view(fn func(v TableView) error) error {
	if h.tables == nil {
		return fmt.Errorf("history table %q: this store keeps no history tables", h.l.Table)
	}
	return h.tables.ViewTables(func(v TableView) error {
		spec, ok := v.Spec(h.l.Table)
		if !ok {
			spec = nil
		}
		if spec != h.spec {
			h.spec = spec
			for i, f := range h.want {
				h.pos[i] = -1
				if spec == nil {
					continue
				}
				for j, c := range spec.Cols {
					if c.Name == f.Name {
						h.pos[i] = j
					}
				}
			}
			if spec != nil {
				h.scratch = make([]Value, len(spec.Cols))
			}
		}
		return fn(v)
	})
}

// lookup reads r's rows: it returns how many rows matched and leaves the
// values of the wanted columns in h.single (one row) or their means (several
// rows; null where no row had a number).
func (h *historyReader) lookup(v TableView, r *Record) (int, error) {
	clear(h.single)
	if h.spec == nil {
		return 0, nil
	}
	t := r.Time
	if h.ti >= 0 {
		tv := r.Vals[h.ti]
		if tv.Kind != KindTime {
			return 0, nil
		}
		t = int64(tv.Num)
	}
	if a := h.l.Align.Milliseconds(); a > 0 {
		t = floorMs(t, a)
	}
	h.key = h.key[:0]
	for _, i := range h.ki {
		h.key = AppendTableKey(h.key, r.Vals[i])
	}
	clear(h.sums)
	clear(h.counts)
	h.rows, h.derr = 0, nil
	if h.addFn == nil {
		h.addFn = h.add
	}
	var err error
	off := h.l.Offset.Milliseconds()
	for k := 1; k <= h.l.periods() && err == nil && h.derr == nil; k++ {
		at := t - int64(k)*off
		err = v.Rows(h.l.Table, h.key, at, at, h.addFn)
	}
	if err == nil {
		err = h.derr
	}
	if err != nil {
		return 0, fmt.Errorf("history table %q: %w", h.l.Table, err)
	}
	rows := h.rows
	if !h.l.single() {
		for i := range h.single {
			if h.counts[i] > 0 {
				h.single[i] = Number(h.sums[i] / float64(h.counts[i]))
			}
		}
	}
	return rows, nil
}

// add takes one row read by lookup.
func (h *historyReader) add(_ int64, val []byte) bool {
	if h.derr = h.decode(val); h.derr != nil {
		return false
	}
	h.rows++
	for i, p := range h.pos {
		if p < 0 {
			continue
		}
		x := h.scratch[p]
		if h.l.single() {
			if x.Kind == h.want[i].Kind {
				h.single[i] = x
			}
		} else if x.Kind == KindNumber && !math.IsNaN(x.Num) {
			h.sums[i] += x.Num
			h.counts[i]++
		}
	}
	return true
}

// decode reads a stored row's column values into h.scratch, up to the last
// wanted column.
func (h *historyReader) decode(val []byte) error {
	last := -1
	for _, p := range h.pos {
		last = max(last, p)
	}
	for j := 0; j <= last; j++ {
		var err error
		if len(val) == 0 {
			return ErrCorruptState
		}
		if val[0] == byte(KindString) || val[0] == byte(KindList) {
			h.scratch[j], val, err = ReadValue(val)
		} else {
			// Numbers, times, bools and nulls decode without allocating.
			h.scratch[j], val, err = readFixed(val)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readFixed(b []byte) (Value, []byte, error) {
	k := Kind(b[0])
	if k == KindNull {
		return Value{}, b[1:], nil
	}
	if len(b) < 9 {
		return Value{}, nil, ErrCorruptState
	}
	return Value{Kind: k, Num: math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))}, b[9:], nil
}

func floorMs(t, a int64) int64 {
	q := t / a
	if t%a != 0 && t < 0 {
		q--
	}
	return q * a
}

// HistoryJoinConfig configures JoinHistory.
type HistoryJoinConfig struct {
	Lookup HistoryLookup
	// Fields are the table columns read, with their kinds.
	Fields []Field
	// Prefix names the output columns: Prefix+field, and Prefix+"rows"
	// (the number of rows read). Empty means "hist_".
	Prefix string
	// Left keeps records that matched no row, with the columns null.
	Left bool
}

// JoinHistory joins each record with rows of a history table (see
// HistoryLookup): the output is the input's fields, then Prefix+field for
// each of Fields (the row's value when the lookup reads one row; the mean
// over the rows read otherwise, numbers only) and Prefix+"rows". A record
// that matched no row is dropped (counted as Unmatched) unless Left is set.
// It reads one snapshot of committed rows per pass.
func JoinHistory(cfg HistoryJoinConfig) Operator {
	return &historyJoinOp{cfg: cfg, h: historyReader{l: cfg.Lookup, want: cfg.Fields}}
}

type historyJoinOp struct {
	cfg   HistoryJoinConfig
	h     historyReader
	in    *Schema
	width int
}

func (o *historyJoinOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	s := in[0]
	o.in = s
	var errs []error
	if err := o.h.open(s); err != nil {
		errs = append(errs, err)
	}
	if len(o.cfg.Fields) == 0 {
		errs = append(errs, errors.New("fields: at least one table column is required"))
	}
	prefix := o.cfg.Prefix
	if prefix == "" {
		prefix = "hist_"
	}
	fields := s.Fields()
	o.width = len(fields)
	for _, f := range o.cfg.Fields {
		fields = append(fields, Field{Name: prefix + f.Name, Kind: f.Kind})
	}
	fields = append(fields, Field{Name: prefix + "rows", Kind: KindNumber})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out, err := NewSchema(fields...)
	if err != nil {
		return nil, fmt.Errorf("prefix: output fields: %w", err)
	}
	return out, nil
}

func (o *historyJoinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	if b.Len() == 0 {
		return nil
	}
	err := o.h.view(func(v TableView) error {
		for i := range b.Recs {
			r := &b.Recs[i]
			n, err := o.h.lookup(v, r)
			if err != nil {
				return err
			}
			if n == 0 && !o.cfg.Left {
				ep.Stats.Unmatched++
				continue
			}
			d := out.Append()
			copy(d.Vals, r.Vals)
			copy(d.Vals[o.width:], o.h.single)
			d.Vals[len(d.Vals)-1] = Number(float64(n))
			d.Time, d.Key, d.Origin = r.Time, r.Key, r.Origin
		}
		return nil
	})
	ep.Stats.add(b.Len(), out.Len())
	return err
}

func (o *historyJoinOp) tableUse() TableUse      { return o.h.use(o.in) }
func (o *historyJoinOp) setTables(t TableReader) { o.h.setTables(t) }

// ChunkSafe: each record is joined against the committed rows alone.
func (o *historyJoinOp) ChunkSafe() bool { return true }
