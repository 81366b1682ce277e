package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/edgedio/edged/engine"
	"github.com/edgedio/edged/engine/decode"
)

// BatchOptions configure RunBatch.
type BatchOptions struct {
	// Input holds the recorded messages of Source.
	Input io.Reader
	// Format is the input's format: json (JSON Lines: one object or array
	// per line; "jsonl" is the same), csv (rows after a header row, or in
	// the order the source's csv.columns declares), senml (one SenML pack
	// per line) or raw (one payload per line). Empty means the source's
	// format. Each message decodes exactly as the daemon decodes a message
	// of that format (decode.New).
	Format string
	// Received is the receipt time of every input message, unix ms: SenML
	// relative times count from it. Zero: a relative SenML time is a dead
	// letter (the file does not say when its messages were received).
	Received int64
	// Source names the source the input feeds; empty means the first source.
	Source string
	// Output receives every output record as one JSON object per line. When the
	// plan has several sinks, each object starts with "_sink".
	Output io.Writer
	// DeadLetter receives input lines that do not decode and records an operator
	// rejected. Nil ignores them (they are still counted).
	DeadLetter func(dl DeadLetter)
	// EpochRecords caps the records per epoch in event-time order when the
	// source has no event time. Zero means 4096.
	EpochRecords int
	// Order is the order records are fed in: OrderArrival (the default)
	// or OrderEventTime.
	Order string
	// EpochLines is how many input lines an epoch takes in arrival order,
	// like epochs.maxRecords of `edged run --input`. Zero means 65536 (its
	// default).
	EpochLines int
}

// Orders of RunBatch.
const (
	// OrderArrival feeds the records in the order of the file (the order
	// they arrived in, for a recording) in epochs of EpochLines lines at
	// processing times interval, 2*interval, ...: the epochs `edged run
	// --input FILE` cuts, so the outputs are the live run's, byte for byte,
	// as long as no record is late for one of its partitions' watermarks
	// and not for the other (see docs/ARCHITECTURE.md, "Backfill").
	OrderArrival = "arrival"
	// OrderEventTime sorts the records by event time (stable) and feeds
	// one interval of event time per epoch: a recording in another order
	// gives the windows a stream in event-time order would (averages can
	// differ in the last bits from the live run's: the sums add up in
	// another order).
	OrderEventTime = "event-time"
)

// DeadLetter is an input message or a record that could not be processed.
type DeadLetter struct {
	Step   string // "" for a decode failure, else the step that rejected it
	Line   int    // input line the message starts on, for decode failures
	Raw    []byte // the input message (a line, a CSV row), or the record as JSON
	Reason error
}

// BatchStats summarize a batch run.
type BatchStats struct {
	Records     int // records decoded
	Invalid     int // input messages that did not decode
	Epochs      int
	Outputs     int
	DeadLetters int // records rejected by steps
}

// RunBatch runs the compiled plan over a recorded file, the way the daemon runs
// it over a stream: in arrival order (the file's) in epochs of EpochLines
// lines, or, with OrderEventTime, sorted by event time (stable, so arrival
// order breaks ties) in epochs of one interval of event time each, with the
// epoch's processing time at the end of its interval. At the end the input is
// drained: every open event-time window is finalized and emitted (a daemon
// keeps them open).
func RunBatch(ctx context.Context, c *Compiled, opt BatchOptions) (BatchStats, error) {
	var st BatchStats
	src := opt.Source
	if src == "" {
		src = c.Plan.Sources()[0]
	}
	cfg, ok := c.Decoders[src]
	if !ok {
		return st, fmt.Errorf("pipeline %q has no source %q", c.Plan.Name(), src)
	}
	switch opt.Order {
	case "", OrderArrival, OrderEventTime:
	default:
		return st, fmt.Errorf("unknown order %q (want arrival or event-time)", opt.Order)
	}
	arrival := opt.Order != OrderEventTime
	all := engine.NewBatch(cfg.Schema)
	var lines []int // per record, its input line (arrival order)
	onErr := func(line int, raw []byte, err error) {
		st.Invalid++
		if opt.DeadLetter != nil {
			opt.DeadLetter(DeadLetter{Line: line, Raw: append([]byte(nil), raw...), Reason: err})
		}
	}
	if err := decodeFile(cfg, opt, all, onErr, func(line int) {
		for len(lines) < all.Len() {
			lines = append(lines, line)
		}
	}); err != nil {
		return st, err
	}
	st.Records = all.Len()
	hasTime := cfg.TimeField != "" && !arrival
	if hasTime {
		sort.SliceStable(all.Recs, func(i, j int) bool { return all.Recs[i].Time < all.Recs[j].Time })
	}

	var jbuf []byte
	x, err := engine.NewExecutor(c.Plan, engine.Options{
		Interval: c.Interval,
		DeadLetter: func(step string, rec *engine.Record, s *engine.Schema, reason error) {
			st.DeadLetters++
			if opt.DeadLetter != nil {
				jbuf = decode.AppendJSON(jbuf[:0], s, rec)
				opt.DeadLetter(DeadLetter{Step: step, Raw: append([]byte(nil), jbuf...), Reason: reason})
			}
		},
	})
	if err != nil {
		return st, err
	}
	w := bufio.NewWriter(opt.Output)
	sinks := c.Plan.Sinks()
	write := func(res *engine.Result) error {
		for i, b := range res.Outputs {
			for j := range b.Recs {
				jbuf = jbuf[:0]
				if len(sinks) > 1 {
					jbuf = append(jbuf, `{"_sink":`...)
					jbuf = appendQuoted(jbuf, sinks[i])
					obj := decode.AppendJSON(nil, b.Schema, &b.Recs[j])
					if len(obj) > 2 {
						jbuf = append(jbuf, ',')
					}
					jbuf = append(jbuf, obj[1:]...)
				} else {
					jbuf = decode.AppendJSON(jbuf, b.Schema, &b.Recs[j])
				}
				jbuf = append(jbuf, '\n')
				if _, err := w.Write(jbuf); err != nil {
					return err
				}
				st.Outputs++
			}
		}
		return nil
	}
	in := x.Input(src)
	interval := c.Interval.Milliseconds()
	maxRecs := opt.EpochRecords
	if maxRecs <= 0 {
		maxRecs = 4096
	}
	var epochTime int64
	run := func(i, j int, t int64) error {
		for k := i; k < j; k++ {
			in.AppendCopy(&all.Recs[k])
		}
		x.SetPosition(src, uint64(j))
		res, err := x.RunEpochAt(ctx, t)
		if err != nil {
			return err
		}
		st.Epochs++
		return write(res)
	}
	perEpoch := opt.EpochLines
	if perEpoch <= 0 {
		perEpoch = 65536
	}
	var bucket int64
	for i := 0; i < len(all.Recs); {
		j := i
		if arrival {
			// The epoch of lines (k-1)*perEpoch+1 .. k*perEpoch, at k*interval.
			k := (lines[i] - 1) / perEpoch
			for j < len(all.Recs) && (lines[j]-1)/perEpoch == k {
				j++
			}
			epochTime = int64(k+1) * interval
			if err := run(i, j, epochTime); err != nil {
				return st, err
			}
			i = j
			continue
		}
		if hasTime {
			next := floorDiv(all.Recs[i].Time, interval)
			// Quiet intervals between records still run (empty) epochs, as a
			// stream would, so processing-time windows slide over them; a gap
			// longer than maxQuietEpochs is skipped.
			if i > 0 && next-bucket > 1 && next-bucket <= maxQuietEpochs {
				for b := bucket + 1; b < next; b++ {
					if err := run(i, i, (b+1)*interval); err != nil {
						return st, err
					}
				}
			}
			bucket = next
			for j < len(all.Recs) && floorDiv(all.Recs[j].Time, interval) == bucket {
				j++
			}
			epochTime = (bucket + 1) * interval
		} else {
			j = min(i+maxRecs, len(all.Recs))
			epochTime += interval
		}
		if err := run(i, j, epochTime); err != nil {
			return st, err
		}
		i = j
	}
	res, err := x.Drain(ctx, epochTime+interval)
	if err != nil {
		return st, err
	}
	st.Epochs++
	if err := write(res); err != nil {
		return st, err
	}
	return st, w.Flush()
}

// decodeFile decodes the whole input with the decoder the daemon uses for
// the format: the file is split into messages (decode.SplitFile) and each
// one decodes as one MQTT payload would. A CSV file in header mode has its
// header once, at the top: its rows then decode in the header's column order.
func decodeFile(cfg decode.Config, opt BatchOptions, all *engine.Batch, onErr func(int, []byte, error), decoded func(line int)) error {
	format := opt.Format
	switch format {
	case "":
		format = cfg.Format
	case "jsonl":
		format = decode.FormatJSON
	}
	if format == "" {
		format = decode.FormatJSON
	}
	if format != cfg.Format {
		if format != decode.FormatJSON && format != decode.FormatCSV && format != decode.FormatSenML && format != decode.FormatRaw {
			return fmt.Errorf("unknown input format %q (want json, csv, senml or raw)", opt.Format)
		}
		cfg.Format, cfg.CSVColumns = format, nil
	}
	// cfg.Topics stay: a file's messages have no topic, so they capture
	// nothing, and a field that only a topic gives is missing, as it is for a
	// message on a topic no template matches.
	data, err := io.ReadAll(opt.Input)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	var d decode.Decoder
	header := format == decode.FormatCSV && len(cfg.CSVColumns) == 0
	if !header {
		if d, err = decode.New(cfg); err != nil {
			return err
		}
	}
	return decode.SplitFile(data, format, func(line int, msg []byte) error {
		if header {
			header = false
			hc, err := cfg.WithCSVHeader(msg)
			if err == nil {
				d, err = decode.New(hc)
			}
			var de *decode.DecodeError
			if errors.As(err, &de) {
				de.Line = line
			}
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
			return nil
		}
		err := d.Decode(all, decode.Input{Payload: msg, Received: opt.Received})
		decoded(line)
		if err != nil {
			var de *decode.DecodeError
			if errors.As(err, &de) {
				de.Line = line
			}
			onErr(line, msg, err)
		}
		return nil
	})
}

// maxQuietEpochs bounds the empty epochs batch mode runs for a gap in the input.
const maxQuietEpochs = 10000

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
