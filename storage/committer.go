package storage

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// request is one write waiting for the committer. Log appends (source != "")
// are merged per source into one frame per transaction; the others carry an
// apply function run inside the shared transaction and an after function run
// once it committed.
type request struct {
	// log append
	source string
	recs   [][]byte
	dedup  bool   // AppendLogDedup
	once   []bool // Append.Once
	first  uint64
	last   uint64
	drop   int

	// kind says what the request writes, for Stats.BytesWrittenBy.
	kind  WriteKind
	apply func(tx *bolt.Tx) error
	// with runs in the transaction of a log append, once its records are
	// added (Append): what must commit with them.
	with  func(tx *bolt.Tx) error
	after func()
	// exclusive requests (Compact) run alone, outside any transaction.
	exclusive func() error
	// lazy requests need not be durable at once (SpoolAckDeferred): they
	// start no transaction of their own but wait up to
	// Options.DeferMaxDelay to share the next one (see run).
	lazy bool
	// noop is set by apply when it changed nothing: a transaction of noop
	// requests only is rolled back instead of committed (no meta page, no
	// fsync).
	noop bool

	err  error
	done chan error
}

// submit hands r to the committer and waits for its outcome. ctx bounds only
// the wait for queue space: once queued, r's slices are in use by the
// committer until it has committed, so submit waits for that regardless of ctx
// (a group commit takes at most GroupMaxDelay plus one fsync).
func (x *DB) submit(r *request) error {
	r.done = make(chan error, 1)
	select {
	case x.reqs <- r:
	case <-x.closing:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-x.stopped:
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// run is the committer goroutine: it takes the first queued request, gathers
// more until GroupMaxRecords log records are queued, GroupMaxDelay has passed
// or (with no delay) the queue is empty, and commits them in one transaction.
// A lazy first request waits up to DeferMaxDelay for a request that is not
// lazy, gathering the lazy ones meanwhile, so that acknowledgements ride in
// the transactions of log appends and epoch commits instead of costing a
// transaction (a meta page, the pages above what they change, two fsyncs)
// of their own.
func (x *DB) run() {
	defer close(x.stopped)
	var group []*request
	var timer, lazyTimer *time.Timer
	arm := func(t **time.Timer, d time.Duration) *time.Timer {
		if *t == nil {
			*t = time.NewTimer(d)
		} else {
			(*t).Reset(d)
		}
		return *t
	}
	for {
		group = group[:0]
		select {
		case r := <-x.reqs:
			group = append(group, r)
		case <-x.closing:
			x.drainClosed()
			return
		}
		if group[0].exclusive != nil {
			x.finish(group, group[0].exclusive())
			continue
		}
		var excl *request
		n := len(group[0].recs)
		if group[0].lazy && x.opt.DeferMaxDelay > 0 {
			t := arm(&lazyTimer, x.opt.DeferMaxDelay)
			excl = x.collect(&group, &n, t.C, func(last *request) bool { return last != nil && !last.lazy })
			t.Stop()
		}
		full := func(*request) bool { return n >= x.opt.GroupMaxRecords }
		if excl == nil && x.opt.GroupMaxDelay > 0 && !(x.opt.AppendsSkipDelay && n > 0) {
			t := arm(&timer, x.opt.GroupMaxDelay)
			excl = x.collect(&group, &n, t.C, func(last *request) bool {
				// With AppendsSkipDelay a log append ends the wait.
				return full(last) || (x.opt.AppendsSkipDelay && n > 0)
			})
			t.Stop()
		}
		if excl == nil {
			excl = x.collect(&group, &n, nil, full) // what else is queued, without waiting
		}
		x.commitGroup(group)
		if excl != nil {
			x.finish([]*request{excl}, excl.exclusive())
		}
		x.unmapResident(time.Now())
	}
}

// collect adds queued requests to *group, counting their log records in *n,
// until stop (asked before each, with the last one added) says the group is
// complete, wait fires or the DB is closing; with wait nil it takes only
// what is queued now. An exclusive request met on the way is returned: it
// runs alone, after the group.
func (x *DB) collect(group *[]*request, n *int, wait <-chan time.Time, stop func(last *request) bool) *request {
	var last *request
	for !stop(last) {
		var r *request
		if wait == nil {
			select {
			case r = <-x.reqs:
			default:
				return nil
			}
		} else {
			select {
			case r = <-x.reqs:
			case <-wait:
				return nil
			case <-x.closing:
				return nil
			}
		}
		if r.exclusive != nil {
			return r
		}
		*group = append(*group, r)
		*n += len(r.recs)
		last = r
	}
	return nil
}

func (x *DB) drainClosed() {
	for {
		select {
		case r := <-x.reqs:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

func (x *DB) finish(group []*request, err error) {
	for _, r := range group {
		if r.err != nil {
			r.done <- r.err
		} else {
			r.done <- err
		}
	}
}

// commitGroup commits group in one transaction. If that fails, every request
// is retried in a transaction of its own so that one bad request fails alone.
func (x *DB) commitGroup(group []*request) {
	err := x.commitTx(group)
	if err != nil && len(group) > 1 {
		for _, r := range group {
			r.err = nil
			x.finish([]*request{r}, x.commitTx([]*request{r}))
		}
		return
	}
	x.finish(group, err)
}

func (x *DB) commitTx(group []*request) error {
	x.arena = x.arena[:0]
	x.resetSpoolTx()
	alloc0 := x.pageAlloc()
	settling := false
	defer func() {
		if settling {
			x.settle.building.Store(0)
			x.settle.mu.Unlock()
		}
	}()
	committed, err := x.update(func(tx *bolt.Tx) (bool, error) {
		over := false
		if x.opt.QuotaBytes > 0 {
			over = x.usedBytes(tx)+x.external.Load() >= x.opt.QuotaBytes
			x.quotaHit.Store(over)
		}
		changed := false
		for _, r := range group {
			r.err = nil
			r.noop = false
			if r.apply != nil {
				if err := r.apply(tx); err != nil {
					return false, err
				}
				changed = changed || !r.noop
				continue
			}
			if over {
				r.err = ErrQuotaExceeded
				continue
			}
			changed = true
			if err := x.addLog(tx, r); err != nil {
				return false, err
			}
			if r.with != nil {
				if err := r.with(tx); err != nil {
					return false, err
				}
			}
		}
		if !changed {
			return false, nil
		}
		if !settling {
			// LogSettled waits for this commit from its append time on.
			x.settle.mu.Lock()
			settling = true
		}
		x.settle.building.Store(1) // in flight, time not yet known: LogSettled waits
		x.txTime = time.Now().UnixMilli()
		x.settle.building.Store(x.txTime)
		if err := x.writeSpoolFrames(tx); err != nil {
			return false, err
		}
		return true, x.writeFrames(tx)
	})
	if err != nil {
		x.abortLogs()
		return err
	}
	if !committed {
		// Nothing changed: rolled back, nothing written.
		x.abortLogs()
		for _, r := range group {
			if r.after != nil && r.err == nil {
				r.after()
			}
		}
		return nil
	}
	x.commits.Add(1)
	// Attribute the pages this transaction wrote (and its meta page) to the
	// kind of its largest writer: an epoch commit if there is one (it carries
	// state and outputs), else a log append, else the first request that is
	// not lazy (lazy ones ride along), else the first.
	kind := group[0].kind
	rank := func(r *request) int {
		switch {
		case r.kind == KindEpoch:
			return 3
		case r.kind == KindLog:
			return 2
		case !r.lazy:
			return 1
		}
		return 0
	}
	for best, i := rank(group[0]), 1; i < len(group); i++ {
		if k := rank(group[i]); k > best {
			best, kind = k, group[i].kind
		}
	}
	x.written[kind].Add(x.pageAlloc() - alloc0 + int64(x.pageSize))
	x.commitLogs()
	for _, r := range group {
		if r.drop > 0 {
			x.dedupDropped.Add(uint64(r.drop))
		}
		if r.after != nil && r.err == nil {
			r.after()
		}
	}
	return nil
}

// update runs fn in a write transaction and commits it, unless every
// request fn applied was a noop and no log record was added: then it rolls
// back and reports committed false (bbolt would write a meta page and fsync
// twice for a transaction that changed nothing).
func (x *DB) update(fn func(tx *bolt.Tx) (changed bool, err error)) (committed bool, err error) {
	tx, err := x.bdb.Begin(true)
	if err != nil {
		return false, err
	}
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	changed, err := fn(tx)
	if err != nil || !changed {
		return false, err
	}
	committed = true // Commit rolls back itself when it fails
	return true, tx.Commit()
}

// usedBytes is the file's high-water mark minus its free pages.
func (x *DB) usedBytes(tx *bolt.Tx) int64 {
	return tx.Size() - int64(x.bdb.Stats().FreeAlloc)
}

// pageAlloc is the bytes of pages bbolt allocated since the handle opened.
func (x *DB) pageAlloc() int64 {
	st := x.bdb.Stats()
	return st.TxStats.GetPageAlloc()
}
