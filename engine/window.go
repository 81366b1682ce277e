package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
)

// OutputMode says what a stateful aggregation emits.
type OutputMode uint8

// Output modes, as in Structured Streaming.
const (
	// OutputAppend emits a window (or session, or event-time group) once, when it
	// is final: its end is <= the watermark (minus the allowed lateness). It is
	// then evicted.
	OutputAppend OutputMode = iota
	// OutputUpdate emits, after every pass, the groups that pass changed, with
	// their new values. Groups are evicted silently once final.
	OutputUpdate
	// OutputComplete emits the whole result table in the last pass of every
	// epoch (Epoch.Final). It never drops late rows and never evicts.
	OutputComplete
)

// ParseOutputMode maps "append", "update" and "complete" to an OutputMode.
func ParseOutputMode(s string) (OutputMode, error) {
	switch strings.ToLower(s) {
	case "", "append":
		return OutputAppend, nil
	case "update":
		return OutputUpdate, nil
	case "complete":
		return OutputComplete, nil
	}
	return 0, fmt.Errorf("output mode %q: want append, update or complete", s)
}

// OutputTime is the event time (Record.Time) given to the rows a window
// aggregation emits, so that a downstream event-time stage can window them again.
type OutputTime uint8

const (
	// OutputTimeEndMinus1 sets Record.Time to window_end - 1 ms: the last instant
	// inside the window (the default; Spark's window_time()).
	OutputTimeEndMinus1 OutputTime = iota
	// OutputTimeStart sets Record.Time to window_start.
	OutputTimeStart
)

// WindowConfig configures WindowAggregate. Times are milliseconds.
//
// The window shape is chosen by the fields set: Count > 0 gives count windows;
// Gap > 0 or GapFunc gives session windows; otherwise Size > 0 gives tumbling
// (Slide 0 or Slide == Size) or sliding (Slide < Size, or hopping Slide > Size)
// event-time windows [start, start+Size) with start ≡ Offset (mod Slide).
type WindowConfig struct {
	// Keys are the grouping fields (zero or more), resolved in Open.
	Keys []string
	// Aggs are the aggregates; their As names follow the key and window fields
	// in the output.
	Aggs []AggSpec
	// Mode is the output mode (append by default).
	Mode OutputMode

	Size, Slide, Offset int64

	// Gap is the session gap: an event at ts opens [ts, ts+Gap); sessions of one
	// key that overlap or touch merge.
	Gap int64
	// GapFunc, when set, gives the gap per key (its values in Keys order); rows
	// whose gap is <= 0 are discarded.
	GapFunc func(key []Value) int64

	// Count is the size of a count window (records per key); CountSlide its
	// slide in records (0 = Count, tumbling).
	Count, CountSlide int64

	// AllowedLateness delays finality by this much beyond the watermark: a
	// window is final (emitted in append mode, evicted) when end <= Watermark -
	// AllowedLateness, and a row is late when its window end <= LateBound -
	// AllowedLateness.
	AllowedLateness int64
	// OutputTime sets the Record.Time of emitted rows.
	OutputTime OutputTime

	// WindowStartName and WindowEndName name the output window fields
	// ("window_start"/"window_end", or "session_start"/"session_end" for
	// sessions, by default).
	WindowStartName, WindowEndName string

	// point makes every distinct event time its own group (GroupByEventTime).
	point bool
}

// WindowAggregate returns the keyed event-time window aggregation described by
// cfg. Its output rows are: the key fields, window_start and window_end (time
// kind), then the aggregates named by their As. Record.Time of an input row is
// its event time.
//
// Lateness, emission and eviction follow the Epoch contract: a row's
// contribution to a window is late (dropped, counted in Stats.Late once per
// window) when the window end <= LateBound; in append mode a window is emitted
// and evicted when end <= Watermark; in update mode every changed window is
// emitted at the end of each pass; in complete mode the whole table is emitted
// when ep.Final, nothing is dropped and nothing is evicted.
//
// Sliding windows are wpane-sliced: each record updates a single wpane of width
// gcd(Size, Slide), and panes are combined when a window is emitted, through
// per-block suffix and prefix partials (see slider), so neither the cost per
// record nor the cost per emitted window grows with Size/Slide.
func WindowAggregate(cfg WindowConfig) Operator {
	switch {
	case cfg.Count > 0:
		return &countWinOp{cfg: cfg}
	case cfg.Gap > 0 || cfg.GapFunc != nil:
		return &sessionOp{cfg: cfg}
	}
	return &timeWinOp{cfg: cfg}
}

// GroupByEventTimeConfig configures GroupByEventTime.
type GroupByEventTimeConfig struct {
	Keys []string
	Aggs []AggSpec
	Mode OutputMode
	// TimeName names the output event-time field ("ts" by default).
	TimeName string
	// AllowedLateness as in WindowConfig.
	AllowedLateness int64
}

// GroupByEventTime groups by the raw event time (and Keys): every distinct
// Record.Time is its own group. Output rows: key fields, the event time (time
// kind, named TimeName), then the aggregates. A row is late when ts <=
// LateBound; in append mode a group is emitted and evicted when ts <=
// Watermark.
func GroupByEventTime(cfg GroupByEventTimeConfig) Operator {
	name := cfg.TimeName
	if name == "" {
		name = "ts"
	}
	return &timeWinOp{cfg: WindowConfig{Keys: cfg.Keys, Aggs: cfg.Aggs, Mode: cfg.Mode,
		AllowedLateness: cfg.AllowedLateness, WindowStartName: name, point: true, Size: 1}}
}

// wpane holds the partial aggregates of one time slice [start, start+width) for
// every key that has data in it.
type wpane struct {
	start   int64
	kstore          // the key slots: idx (key id -> slot+1, 0: absent), keys (key id per slot), st
	dirty   []int32 // state buckets (slot/paneBucket) changed since the last SaveState
	isDirty []bool  // per bucket
	newKeys []bool  // per bucket: slots added since the last SaveState
	changed []int32 // slots changed in the current pass (update mode)
	isChg   []bool
	stored  bool // some of its entries are in the state store
	// kenc holds, for a tumbling window (timeWinOp.keepEnc), the stored
	// form of each slot's key (its length as a varint, then the encoded
	// key), in slot order, and koff the offset in kenc of each bucket's
	// first slot: SaveState copies a keys entry from it in one piece instead
	// of reading the dictionary at random, key by key. (Sliding windows, with
	// many panes, read the dictionary rather than hold a copy per pane.)
	kenc []byte
	koff []int32
}

type timeWinOp struct {
	grouping
	cfg     WindowConfig
	in      *Schema
	size    int64
	slide   int64
	offset  int64
	width   int64 // wpane width
	point   bool
	keepEnc bool // panes keep their keys' stored form (wpane.kenc): tumbling windows
	panes   map[int64]*wpane
	free    []*wpane
	last    *wpane
	emitted int64 // windows with end <= emitted are final (emitted in append mode)
	// pend: in append mode, windows with end in (emitted, the watermark's
	// bound] are closed but wait for a later epoch (Epoch.left ran out).
	pend    bool
	metaDty bool
	deletes []paneBuckets // evicted panes whose entries must be deleted
	rows    int

	sl       slider
	chgPanes []*wpane
	starts   []int64
	paneList []int64
	scr      kstore  // scratch for combining panes
	rowLast  []int64 // StateRows' scratch: per key id, the last window counted
	rowPanes []int64 // StateRows' scratch: pane starts in order
	kbuf     []byte
	vbuf     []byte
	ids      []int32   // lookupAll's result: per record of the chunk, its key id or -1
	folds    []recFold // Process: the chunk's records to fold, in order
	runs     []paneRun // Process: the wpane of each run of folds
	keyStrs  []string  // emitWindows: the key strings of a wpane's slots
}

func (o *timeWinOp) Open(in []*Schema) (*Schema, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	c := &o.cfg
	o.in = in[0]
	o.point = c.point
	if o.point {
		o.size, o.slide, o.width = 0, 1, 1
	} else {
		if c.Size <= 0 {
			return nil, fmt.Errorf("window size %d: must be > 0", c.Size)
		}
		o.size, o.slide, o.offset = c.Size, c.Slide, c.Offset
		if o.slide <= 0 {
			o.slide = o.size
		}
		o.width = gcd(o.size, o.slide)
		o.offset = ((o.offset % o.slide) + o.slide) % o.slide
	}
	if c.AllowedLateness < 0 {
		return nil, fmt.Errorf("allowed lateness %d: must be >= 0", c.AllowedLateness)
	}
	start, end := c.boundFields("window_start", "window_end")
	bounds := []Field{start, end}
	if o.point {
		bounds = bounds[:1]
	}
	if err := o.openGrouping(in[0], c.Keys, c.Aggs, bounds...); err != nil {
		return nil, err
	}
	o.keepEnc = !o.point && o.size == o.slide
	o.panes = map[int64]*wpane{}
	o.emitted = NoWatermark
	o.scr.st.w = o.plan.ncol()
	return o.out, nil
}

// grouping is what Aggregate and the window operators share: the key fields,
// the aggregate plan, the key dictionary and the output schema.
type grouping struct {
	out    *Schema
	keyIdx []int
	plan   *aggPlan
	dict   *groupDict
}

// openGrouping resolves keys and aggs on in and builds the output schema: the
// key fields, then bounds (the window bound fields, if any), then the
// aggregates.
func (g *grouping) openGrouping(in *Schema, keys []string, aggs []AggSpec, bounds ...Field) error {
	var err error
	var fields []Field
	if g.keyIdx, fields, err = resolveKeys(keys, in); err != nil {
		return err
	}
	if g.plan, err = resolveAggs(aggs, in); err != nil {
		return err
	}
	ints := make([]bool, 0, len(fields)+len(bounds)+len(g.plan.names))
	for _, k := range g.keyIdx {
		ints = append(ints, in.Integer(k))
	}
	fields = append(fields, bounds...)
	ints = append(ints, make([]bool, len(bounds))...)
	for i, n := range g.plan.names {
		fields = append(fields, Field{n, g.plan.kinds[i]})
	}
	ints = append(ints, g.plan.ints...)
	if g.out, err = NewSchema(fields...); err != nil {
		return fmt.Errorf("output fields: %w", err)
	}
	g.out.withInts(ints)
	g.dict = newGroupDictFor(in, g.keyIdx)
	return nil
}

// boundFields returns the window start and end fields, named by
// WindowStartName and WindowEndName or else by the defaults given.
func (c *WindowConfig) boundFields(start, end string) (Field, Field) {
	if c.WindowStartName != "" {
		start = c.WindowStartName
	}
	if c.WindowEndName != "" {
		end = c.WindowEndName
	}
	return Field{start, KindTime}, Field{end, KindTime}
}

func resolveKeys(keys []string, in *Schema) ([]int, []Field, error) {
	idx := make([]int, len(keys))
	fields := make([]Field, 0, len(keys)+4)
	for i, k := range keys {
		j, err := in.Lookup(k)
		if err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", k, err)
		}
		idx[i] = j
		fields = append(fields, in.Field(j))
	}
	return idx, fields, nil
}

// bounds returns the lateness and finality bounds of the pass, shifted by the
// allowed lateness.
func lateBounds(ep *Epoch, lateness int64) (late, final int64) {
	late, final = ep.LateBound, ep.Watermark
	if late != NoWatermark {
		late -= lateness
	}
	if final != NoWatermark {
		final -= lateness
	}
	return late, final
}

func (o *timeWinOp) end(start int64) int64 { return start + o.size }

// lastWindowStart returns the start of the last window containing wpane ps.
func (o *timeWinOp) lastWindowStart(ps int64) int64 {
	if o.point {
		return ps
	}
	return floorDiv(ps-o.offset, o.slide)*o.slide + o.offset
}

func (o *timeWinOp) Process(ep *Epoch, in []*Batch, out *Batch) error {
	b := in[0]
	late, final := lateBounds(ep, o.cfg.AllowedLateness)
	complete := o.cfg.Mode == OutputComplete
	update := o.cfg.Mode == OutputUpdate
	// A tumbling window's wpane is its window. cur is the wpane of the
	// previous record, found and checked against late in this call: a
	// record inside it needs no division, no late test and no lookup.
	tumbling := !o.point && o.size == o.slide
	var cur *wpane
	var curEnd int64
	// Records are taken in chunks that stay in cache across the three loops
	// over them: key lookups; windows, slots and state tracking; folds.
	plan := o.plan
	checkNums := len(plan.nums) > 0
	for from := 0; from < len(b.Recs); from += procChunk {
		to := min(from+procChunk, len(b.Recs))
		ids := o.lookupAll(b, from, to)
		recs := b.Recs[from:to]
		ids = ids[:len(recs)]
		folds, runs := slices.Grow(o.folds[:0], len(recs)), o.runs[:0]
		var runP *wpane
		for j := range recs {
			r, i := &recs[j], from+j
			// A value the fast fold takes is a number: no other check.
			x, fast := plan.foldable(r)
			if !fast && checkNums {
				if err := plan.check(o.in, r); err != nil {
					ep.DeadLetter(r, o.in, err)
					continue
				}
			}
			ts := r.Time
			var p *wpane
			if tumbling {
				if cur == nil || ts < cur.start || ts >= curEnd {
					ps := floorDiv(ts-o.offset, o.size)*o.size + o.offset
					if !complete && ps+o.size <= late {
						ep.Stats.Late++
						continue
					}
					if cur = o.panes[ps]; cur == nil {
						cur = o.newPane(ps)
					}
					curEnd = ps + o.size
				}
				p = cur
			} else if p = o.paneOf(ep, ts, late, complete); p == nil {
				continue
			}
			id := ids[j]
			if id < 0 {
				id = o.dict.lookup(r, o.keyIdx)
			}
			var s int32
			if int(id) < len(p.idx) && p.idx[id] != 0 {
				s = p.idx[id] - 1
			} else {
				s = o.addKey(p, id, r)
			}
			if p != runP {
				runs = append(runs, paneRun{p, int32(len(folds))})
				runP = p
			}
			f := recFold{x: x, slot: s, rec: -1}
			if !fast {
				f.rec = int32(i)
			}
			folds = append(folds, f)
			if bk := int32(uint32(s) / paneBucket); !p.isDirty[bk] {
				p.isDirty[bk] = true
				p.dirty = append(p.dirty, bk)
			}
			if update && !p.isChg[s] {
				if len(p.changed) == 0 {
					o.chgPanes = append(o.chgPanes, p)
				}
				p.isChg[s] = true
				p.changed = append(p.changed, s)
			}
		}
		// The records are folded in a loop of their own, in input order, so
		// that the accumulators of many records are fetched at once.
		for j, run := range runs {
			end := len(folds)
			if j+1 < len(runs) {
				end = int(runs[j+1].from)
			}
			plan.foldFast(&run.p.st, folds[run.from:end], b.Recs)
		}
		o.folds, o.runs = folds, runs
	}
	n := 0
	switch o.cfg.Mode {
	case OutputUpdate:
		n = o.emitChanged(out, late)
	case OutputComplete:
		if ep.Final {
			n = o.emitAll(out)
		}
	}
	if !complete && final != NoWatermark {
		if final > o.emitted {
			k, pend := 0, o.pend
			if o.cfg.Mode == OutputAppend {
				k = o.emitFinal(out, final, ep.left)
				n += k
			} else {
				o.emitted = final
			}
			// emitted follows the watermark, so a restore derives it from the
			// committed one (restoreWatermark). It is stored only when windows
			// were emitted, so a watermark that passes no window end (an idle
			// source's, every interval) changes no state and costs no commit;
			// and while windows wait (pend), when it is stored with them.
			if k > 0 || pend != o.pend {
				o.metaDty = true
			}
		}
		o.evict(min(final, o.emitted))
	}
	ep.Stats.add(len(b.Recs), n)
	return nil
}

// addKey gives key id, which has no slot in wpane p, a new one for record r
// and returns it: the slot's state tracking, a reference to the key and, for
// a tumbling window, the stored form of the key (wpane.kenc).
func (o *timeWinOp) addKey(p *wpane, id int32, r *Record) int32 {
	s := p.add(o, id)
	p.isChg = append(p.isChg, false)
	if int(s/paneBucket) >= len(p.isDirty) {
		p.isDirty = append(p.isDirty, false)
		p.newKeys = append(p.newKeys, false)
	}
	p.newKeys[s/paneBucket] = true
	o.dict.ref(id)
	o.rows++
	if o.keepEnc {
		if s%paneBucket == 0 {
			p.koff = append(p.koff, int32(len(p.kenc)))
		}
		if o.dict.strOnly && r.Vals[o.keyIdx[0]].Kind == KindString {
			v := &r.Vals[o.keyIdx[0]]
			// AppendValue of a string, inline: kind, length, bytes.
			n := len(v.Str)
			p.kenc = AppendVarint(p.kenc, int64(1+uvarintLen(uint64(n))+n))
			p.kenc = append(p.kenc, byte(KindString))
			p.kenc = binary.AppendUvarint(p.kenc, uint64(n))
			p.kenc = append(p.kenc, v.Str...)
		} else {
			e := o.dict.encode(r, o.keyIdx)
			p.kenc = AppendVarint(p.kenc, int64(len(e)))
			p.kenc = append(p.kenc, e...)
		}
	}
	return s
}

// uvarintLen returns the number of bytes of binary.AppendUvarint(nil, x).
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// paneOf returns the wpane of a record at ts for an event-time group or a
// sliding or hopping window, creating it if needed, or nil when the record is
// in a gap between hopping windows or late (counted in ep.Stats.Late).
func (o *timeWinOp) paneOf(ep *Epoch, ts, late int64, complete bool) *wpane {
	var ps int64
	if o.point {
		ps = ts
		if !complete && ts <= late {
			ep.Stats.Late++
			return nil
		}
	} else {
		ps = floorDiv(ts-o.offset, o.width)*o.width + o.offset
		// windows containing ts: starts s ≡ offset (mod slide) with ts-size < s <= lastStart
		lastStart := o.lastWindowStart(ts)
		if lastStart+o.size <= ts {
			return nil // in a gap between hopping windows
		}
		if !complete && lastStart+o.size <= late {
			// every window of the row is late
			n := (lastStart-(ts-o.size)-1)/o.slide + 1
			ep.Stats.Late += uint64(n)
			return nil
		}
		if !complete && o.size != o.slide {
			firstStart := lastStart - ((lastStart-(ts-o.size)-1)/o.slide)*o.slide
			if firstStart+o.size <= late {
				ep.Stats.Late += uint64((late-o.size-firstStart)/o.slide + 1)
			}
		}
	}
	p := o.last
	if p == nil || p.start != ps {
		p = o.panes[ps]
		if p == nil {
			p = o.newPane(ps)
		}
		o.last = p
	}
	if ps < o.sl.hi && ps >= o.sl.lo {
		o.sl.valid = false // a wpane included in the slider changed
	}
	return p
}

// procChunk is the number of records Process takes at a time: the records
// (about 160 bytes each with two fields) and their key ids stay in the L1
// and L2 caches between its loops over them.
const procChunk = 256

// paneRun says that Process's folds from index from on (up to the next
// run's) go to wpane p.
type paneRun struct {
	p    *wpane
	from int32
}

// lookupAll returns (in o.ids) the key id of record i of b at i-from, for i in
// [from, to), ahead of the main loop: a tight loop of lookups alone keeps
// many hash probes in flight at once. It takes only the single-string-key
// fast path; a key it does not find (or a record of another shape) gets -1,
// and the main loop interns it. Records later found late, in a gap or dead
// letters are looked up all the same (no reference is taken).
func (o *timeWinOp) lookupAll(b *Batch, from, to int) []int32 {
	ids := o.ids[:0]
	if !o.dict.strOnly {
		for range to - from {
			ids = append(ids, -1)
		}
		o.ids = ids
		return ids
	}
	f, str, recs := o.keyIdx[0], o.dict.str, b.Recs[from:to]
	ids = slices.Grow(ids, len(recs))[:len(recs)]
	for i := range recs {
		id := int32(-1)
		if v := &recs[i].Vals[f]; v.Kind == KindString {
			if d, ok := str[v.Str]; ok {
				id = d
			}
		}
		ids[i] = id
	}
	o.ids = ids
	return ids
}

func (o *timeWinOp) newPane(ps int64) *wpane {
	var p *wpane
	if k := len(o.free); k > 0 {
		p = o.free[k-1]
		o.free = o.free[:k-1]
	} else {
		p = &wpane{}
		p.st.w = o.plan.ncol()
	}
	p.start = ps
	o.panes[ps] = p
	return p
}

// windowsOf appends the window starts containing wpane ps to dst.
func (o *timeWinOp) windowsOf(dst []int64, ps int64) []int64 {
	if o.point {
		return append(dst, ps)
	}
	return WindowStarts(dst, ps, o.size, o.slide, o.offset)
}

// combine merges the panes of window ws into the scratch store, per key.
func (o *timeWinOp) combine(ws int64) {
	o.resetScratch()
	w := o.width
	last := ws + o.size - w
	if o.point {
		last = ws
	}
	for ps := ws; ps <= last; ps += w {
		p := o.panes[ps]
		if p == nil {
			continue
		}
		o.scr.mergePane(o, p)
	}
}

func (o *timeWinOp) resetScratch() { o.scr.reset(o) }

// emitScratch appends one row per key in the scratch store, in key order.
func (o *timeWinOp) emitScratch(out *Batch, ws int64) int {
	keys := o.scr.keys
	if len(keys) > 1 {
		slices.SortFunc(keys, func(a, b int32) int { return strings.Compare(o.dict.enc[a], o.dict.enc[b]) })
	}
	for _, id := range keys {
		o.emitRow(out, ws, id, &o.scr.st, o.scr.idx[id]-1)
	}
	return len(keys)
}

func (o *timeWinOp) emitRow(out *Batch, ws int64, id int32, st *accStore, slot int32) {
	var key string
	if o.dict.strOnly {
		key = o.dict.strs[id]
	}
	o.emitKeyRow(out, ws, id, key, st, slot)
}

// emitKeyRow is emitRow given key, the key's string when the dictionary is
// strOnly (dict.strs[id]).
func (o *timeWinOp) emitKeyRow(out *Batch, ws int64, id int32, key string, st *accStore, slot int32) {
	d := out.Append()
	vals := d.Vals // all null: only the non-null parts are written
	j := 0
	if key != "" {
		vals[0].Kind, vals[0].Str = KindString, key
		j = 1
	} else {
		kv := o.dict.vals[id]
		for ; j < len(kv); j++ { // element-wise: cheaper than copy for 1-3 keys
			vals[j] = kv[j]
		}
	}
	vals[j].Kind, vals[j].Num = KindTime, float64(ws)
	j++
	we := o.end(ws)
	if !o.point {
		vals[j].Kind, vals[j].Num = KindTime, float64(we)
		j++
	}
	o.plan.fill(vals[j:], st, slot)
	switch {
	case o.point:
		d.Time = ws
	case o.cfg.OutputTime == OutputTimeStart:
		d.Time = ws
	default:
		d.Time = we - 1
	}
}

// sortedPanes returns the wpane starts in ascending order.
func (o *timeWinOp) sortedPanes() []int64 {
	o.paneList = o.paneList[:0]
	for ps := range o.panes {
		o.paneList = append(o.paneList, ps)
	}
	slices.Sort(o.paneList)
	return o.paneList
}

// candidateWindows returns the sorted distinct window starts that hold data.
func (o *timeWinOp) candidateWindows(from, to int64) []int64 {
	o.starts = o.starts[:0]
	for _, ps := range o.sortedPanes() {
		o.starts = o.windowsOf(o.starts, ps)
	}
	slices.Sort(o.starts)
	o.starts = slices.Compact(o.starts)
	n := 0
	for _, s := range o.starts {
		if e := o.end(s); e > from && e <= to {
			o.starts[n] = s
			n++
		}
	}
	o.starts = o.starts[:n]
	return o.starts
}

// emitFinal emits the windows that end in (emitted, final], oldest first,
// while the epoch's budget (left, nil: none) lasts, and moves emitted to the
// end of the last one emitted: to final when none is left waiting (pend).
func (o *timeWinOp) emitFinal(out *Batch, final int64, left *int) int {
	starts := o.candidateWindows(o.emitted, final)
	n, done := o.emitWindows(out, starts, left)
	switch {
	case done == len(starts):
		o.emitted, o.pend = final, false
	case done > 0:
		o.emitted, o.pend = o.end(starts[done-1]), true
	default:
		o.pend = true
	}
	return n
}

func (o *timeWinOp) emitAll(out *Batch) int {
	n, _ := o.emitWindows(out, o.candidateWindows(NoWatermark, 1<<62), nil)
	return n
}

// emitWindows emits the given windows (ascending): tumbling windows and
// event-time groups straight from their wpane (rows in slot order, which is
// first-arrival order and survives a restore), sliding windows through the
// slider. With a budget (left not nil) it emits whole windows while *left is
// positive, taking their rows off it. It returns the rows emitted and the
// number of windows of starts done.
func (o *timeWinOp) emitWindows(out *Batch, starts []int64, left *int) (n, done int) {
	for i, ws := range starts {
		if left != nil && *left <= 0 {
			return n, i
		}
		k := 0
		if o.point || o.size == o.slide {
			k = o.emitPane(out, ws)
		} else {
			o.sl.moveTo(o, ws)
			k = o.sl.emit(o, out, ws)
		}
		n += k
		if left != nil {
			*left -= k
		}
	}
	return n, len(starts)
}

// emitPane emits the rows of the tumbling window or event-time group that
// starts at ws, in slot order, and returns how many.
func (o *timeWinOp) emitPane(out *Batch, ws int64) int {
	p := o.panes[ws]
	if p == nil {
		return 0
	}
	if !o.dict.strOnly {
		for s, id := range p.keys {
			o.emitRow(out, ws, id, &p.st, int32(s))
		}
		return len(p.keys)
	}
	// The key strings first, in a loop of their own: the dictionary is read
	// in id order, at random, and many reads are in flight at once.
	o.keyStrs = o.keyStrs[:0]
	for _, id := range p.keys {
		o.keyStrs = append(o.keyStrs, o.dict.strs[id])
	}
	for s, id := range p.keys {
		o.emitKeyRow(out, ws, id, o.keyStrs[s], &p.st, int32(s))
	}
	return len(p.keys)
}

// deferred implements deferrer: closed windows wait while pend, and the
// outputs are complete through the last emitted window's end plus the
// allowed lateness.
func (o *timeWinOp) deferred() (bool, int64) {
	return o.pend, o.emitted + o.cfg.AllowedLateness
}

type winKey struct {
	start int64
	id    int32
}

// emitChanged emits, for update mode, every (window, key) whose panes changed
// in this pass and whose window is not late.
func (o *timeWinOp) emitChanged(out *Batch, late int64) int {
	if len(o.chgPanes) == 0 {
		return 0
	}
	var set []winKey
	var ws []int64
	for _, p := range o.chgPanes {
		ws = o.windowsOf(ws[:0], p.start)
		for _, s := range p.changed {
			id := p.keys[s]
			for _, w := range ws {
				if late == NoWatermark || o.end(w) > late {
					set = append(set, winKey{w, id})
				}
			}
			p.isChg[s] = false
		}
		p.changed = p.changed[:0]
	}
	o.chgPanes = o.chgPanes[:0]
	slices.SortFunc(set, func(a, b winKey) int {
		if a.start != b.start {
			return cmpInt64(a.start, b.start)
		}
		return strings.Compare(o.dict.enc[a.id], o.dict.enc[b.id])
	})
	set = slices.Compact(set)
	for _, k := range set {
		o.resetScratch()
		d := o.scr.st.newSlot(o.plan)
		last := k.start + o.size - o.width
		if o.point {
			last = k.start
		}
		for ps := k.start; ps <= last; ps += o.width {
			p := o.panes[ps]
			if p == nil || int(k.id) >= len(p.idx) || p.idx[k.id] == 0 {
				continue
			}
			o.plan.merge(&o.scr.st, d, &p.st, p.idx[k.id]-1)
		}
		o.emitRow(out, k.start, k.id, &o.scr.st, d)
	}
	o.scr.st.reset()
	return len(set)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// evict removes the panes all of whose windows are final.
func (o *timeWinOp) evict(final int64) {
	gone := o.paneList[:0]
	for ps := range o.panes {
		if o.end(o.lastWindowStart(ps)) <= final {
			gone = append(gone, ps)
		}
	}
	slices.Sort(gone)
	for _, ps := range gone {
		p := o.panes[ps]
		if p.stored {
			o.deletes = append(o.deletes, paneBuckets{ps, int32(len(p.isDirty))})
		}
		for _, id := range p.keys {
			p.idx[id] = 0
			o.dict.release(id)
		}
		o.rows -= len(p.keys)
		delete(o.panes, ps)
		if o.last == p {
			o.last = nil
		}
		if len(p.changed) > 0 {
			for _, s := range p.changed {
				p.isChg[s] = false
			}
			o.chgPanes = slices.DeleteFunc(o.chgPanes, func(q *wpane) bool { return q == p })
		}
		p.keys, p.dirty, p.isDirty, p.changed, p.isChg = p.keys[:0], p.dirty[:0], p.isDirty[:0], p.changed[:0], p.isChg[:0]
		p.newKeys, p.kenc, p.koff = p.newKeys[:0], p.kenc[:0], p.koff[:0]
		p.st.reset()
		p.stored = false
		o.free = append(o.free, p)
	}
	o.paneList = gone[:0]
	o.dict.sweep()
}

// paneBucket is the number of slots of a wpane stored in one state entry. A
// bucket is rewritten whole when any of its slots changed: with many keys
// changing per epoch this costs far fewer entries (and allocations) than one
// entry per key, for a bounded write amplification. Each bucket has two
// entries: its keys ('k', written only when slots were added, which slots
// never stop being: they are append-only until the wpane is evicted) and its
// partial aggregates ('v').
const paneBucket = 32

type paneBuckets struct {
	start int64
	n     int32
}

func (o *timeWinOp) stateKey(dst []byte, ps int64, bucket int32, kind byte) []byte {
	dst = append(dst, 'p')
	dst = appendWinTimeKey(dst, ps)
	dst = binary.BigEndian.AppendUint32(dst, uint32(bucket))
	return append(dst, kind)
}

// SaveState implements Stateful: per wpane, the buckets changed since the last
// call (keys only when new ones arrived), deletes for evicted panes, and the
// emission mark.
func (o *timeWinOp) SaveState(w *StateWriter) error {
	for _, d := range o.deletes {
		for bk := int32(0); bk < d.n; bk++ {
			o.kbuf = o.stateKey(o.kbuf[:0], d.start, bk, 'k')
			w.Delete(o.kbuf)
			o.kbuf = o.stateKey(o.kbuf[:0], d.start, bk, 'v')
			w.Delete(o.kbuf)
		}
	}
	o.deletes = o.deletes[:0]
	for _, p := range o.panes {
		if len(p.dirty) == 0 {
			continue
		}
		for _, bk := range p.dirty {
			lo := bk * paneBucket
			hi := min(lo+paneBucket, int32(len(p.keys)))
			if p.newKeys[bk] {
				o.kbuf = o.stateKey(o.kbuf[:0], p.start, bk, 'k')
				v := AppendVarint(o.vbuf[:0], int64(hi-lo))
				if o.keepEnc {
					end := len(p.kenc)
					if int(bk)+1 < len(p.koff) {
						end = int(p.koff[bk+1])
					}
					v = append(v, p.kenc[p.koff[bk]:end]...)
				} else {
					for s := lo; s < hi; s++ {
						enc := o.dict.enc[p.keys[s]]
						v = AppendVarint(v, int64(len(enc)))
						v = append(v, enc...)
					}
				}
				o.vbuf = v
				w.Put(o.kbuf, v)
				p.newKeys[bk] = false
			}
			o.kbuf = o.stateKey(o.kbuf[:0], p.start, bk, 'v')
			v := AppendVarint(o.vbuf[:0], int64(hi-lo))
			for s := lo; s < hi; s++ {
				v = o.plan.appendAccs(v, &p.st, s)
			}
			o.vbuf = v
			w.Put(o.kbuf, v)
			p.isDirty[bk] = false
		}
		p.dirty = p.dirty[:0]
		p.stored = true
	}
	if o.metaDty {
		o.vbuf = AppendVarint(o.vbuf[:0], o.emitted)
		if o.pend {
			o.vbuf = AppendVarint(o.vbuf, 1) // closed windows wait: emitted is exact
		}
		w.Put([]byte{'m'}, o.vbuf)
		o.metaDty = false
	}
	return nil
}

// restoreWatermark implements watermarkRestorer: the windows final at the
// committed watermark were emitted, unless some were left waiting (pend).
func (o *timeWinOp) restoreWatermark(wm int64) {
	if o.cfg.Mode == OutputComplete || wm == NoWatermark || o.pend {
		return
	}
	if f := wm - o.cfg.AllowedLateness; f > o.emitted {
		o.emitted = f
	}
}

// LoadState implements Stateful. Entries arrive in key order: per wpane, per
// bucket (ascending), the keys entry before the values entry.
func (o *timeWinOp) LoadState(key, val []byte) error {
	if len(key) == 1 && key[0] == 'm' {
		v, rest, err := ReadVarint(val)
		if err != nil {
			return err
		}
		o.emitted, o.pend = v, false
		if len(rest) > 0 {
			f, _, err := ReadVarint(rest)
			if err != nil {
				return err
			}
			o.pend = f == 1
		}
		return nil
	}
	if len(key) != 14 || key[0] != 'p' {
		return ErrCorruptState
	}
	ps, rest, err := readWinTimeKey(key[1:])
	if err != nil {
		return err
	}
	bk := int64(binary.BigEndian.Uint32(rest))
	kind := rest[4]
	p := o.panes[ps]
	if p == nil {
		p = o.newPane(ps)
	}
	p.stored = true
	n, b, err := ReadVarint(val)
	if err != nil || n < 0 || n > paneBucket {
		return ErrCorruptState
	}
	lo := bk * paneBucket
	switch kind {
	case 'k':
		if int64(len(p.keys)) != lo {
			return ErrCorruptState // buckets arrive in order, each full but the last
		}
		body := b
		for i := int64(0); i < n; i++ {
			var l int64
			if l, b, err = ReadVarint(b); err != nil || l < 0 || l > int64(len(b)) {
				return ErrCorruptState
			}
			id, err := o.dict.insertEncoded(b[:l], len(o.keyIdx))
			if err != nil {
				return err
			}
			b = b[l:]
			if int(id) >= len(p.idx) {
				p.idx = slices.Grow(p.idx, o.dict.size()-len(p.idx))[:o.dict.size()]
			}
			if p.idx[id] != 0 {
				return ErrCorruptState
			}
			s := p.st.newSlot(o.plan)
			p.idx[id] = s + 1
			p.keys = append(p.keys, id)
			p.isChg = append(p.isChg, false)
			if int(s/paneBucket) >= len(p.isDirty) {
				p.isDirty = append(p.isDirty, false)
				p.newKeys = append(p.newKeys, false)
			}
			o.dict.ref(id)
			o.rows++
		}
		if o.keepEnc {
			p.koff = append(p.koff, int32(len(p.kenc)))
			p.kenc = append(p.kenc, body[:len(body)-len(b)]...)
		}
	case 'v':
		if lo+n > int64(len(p.keys)) {
			return ErrCorruptState
		}
		for s := lo; s < lo+n; s++ {
			if b, err = o.plan.readAccs(b, &p.st, int32(s)); err != nil {
				return err
			}
		}
	default:
		return ErrCorruptState
	}
	return nil
}

// StateRows implements Stateful: the number of open (window, key) groups. For
// tumbling windows and event-time groups that is the number of live (wpane,
// key) partials; for sliding windows it is computed from the panes (a scan, for
// metrics and tests).
func (o *timeWinOp) StateRows() int {
	if o.point || o.size == o.slide {
		return o.rows
	}
	// A (window, key) row is open when a pane of the window holds the key.
	// The windows of a pane are a run of window starts, and the runs move
	// forward with the pane start; so, panes in start order, a key's new
	// windows are those of the run after the last window counted for it.
	// No set of rows is built (it was a map entry per row, per call).
	o.rowPanes = o.rowPanes[:0]
	for ps := range o.panes {
		o.rowPanes = append(o.rowPanes, ps)
	}
	slices.Sort(o.rowPanes)
	n := o.dict.size()
	if cap(o.rowLast) < n {
		o.rowLast = make([]int64, n)
	}
	last := o.rowLast[:n]
	for i := range last {
		last[i] = math.MinInt64
	}
	rows := 0
	var ws []int64
	for _, ps := range o.rowPanes {
		ws = o.windowsOf(ws[:0], ps)
		for len(ws) > 0 && o.cfg.Mode != OutputComplete && o.end(ws[0]) <= o.emitted {
			ws = ws[1:]
		}
		if len(ws) == 0 {
			continue
		}
		lo, hi := ws[0], ws[len(ws)-1]
		for _, id := range o.panes[ps].keys {
			from := lo
			if l := last[id]; l != math.MinInt64 && l+o.slide > from {
				from = l + o.slide
			}
			if hi >= from {
				rows += int((hi-from)/o.slide) + 1
				last[id] = hi
			}
		}
	}
	return rows
}

// QuerySchema implements Queryable: the output schema (open windows with their
// current partial values).
func (o *timeWinOp) QuerySchema() *Schema { return o.out }

// QueryState implements Queryable: one row per open (window, key), windows in
// ascending order.
func (o *timeWinOp) QueryState(fn func(r *Record) bool) {
	b := NewBatch(o.out)
	for _, ws := range slices.Clone(o.candidateWindows(NoWatermark, 1<<62)) {
		if o.cfg.Mode != OutputComplete && o.end(ws) <= o.emitted {
			continue
		}
		b.Reset(o.out)
		o.combine(ws)
		o.emitScratch(b, ws)
		for i := range b.Recs {
			if !fn(&b.Recs[i]) {
				return
			}
		}
	}
}

// ChunkSafe: in append mode a window is emitted once, when the watermark
// passes it, and the watermark does not move during an epoch's data pass;
// update and complete modes emit per epoch.
func (o *timeWinOp) ChunkSafe() bool { return o.cfg.Mode == OutputAppend }
