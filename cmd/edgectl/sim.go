package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/internal/sim"
)

const simUsage = `usage: edgectl sim [--broker ADDR] [flags]

Publishes synthetic sensor readings (JSON: sensor, seq, ts, temp, hum,
battery; values drift per sensor, with occasional spikes) to an MQTT broker,
and power readings of machines (JSON: machine, ts, watts; runs of 30s, then
75s idle) every --machine-interval. With no flags it feeds every example
pipeline of a default edged (its embedded broker on 127.0.0.1:1883): sensors
s-0000 to s-0005 are the example device table's, machines lathe-1 and press-1
the sessions pipeline's. For load tests raise --sensors and --rate.
Stops after --count sensor messages or --duration, whichever comes first, or
on interrupt. Progress goes to stderr every --progress; the last line on
stdout is "sent=N errors=E elapsed=S rate=R/s" (sensor messages; machine
messages are summed up on stderr). Exit status is 1 if any publish failed.

flags:
`

// simOptions are the parsed flags of edgectl sim.
type simOptions struct {
	broker    string        // paho URL, e.g. tcp://127.0.0.1:1883
	gen       sim.Config    // sensors, seed, malformed, spikes, sequence
	rate      float64       // messages per second over all sensors; 0: as fast as possible
	duration  time.Duration // 0: no limit
	count     int64         // 0: no limit
	qos       byte          // 0 or 1
	topic     string        // template with {sensor}
	username  string
	password  string
	clientID  string
	inflight  int           // buffers (and so publishes) in flight at once
	workers   int           // goroutines waiting on publish tokens
	progress  time.Duration // 0: no progress lines
	drainWait time.Duration // how long to wait for in-flight publishes at the end

	power        sim.PowerConfig // machines; Machines 0: none
	machineTopic string          // template with {machine}
	machineEvery time.Duration
}

// parseSim parses and validates args, reporting every problem at once, each
// naming its flag.
func parseSim(args []string, stderr io.Writer) (simOptions, error) {
	var o simOptions
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, simUsage)
		printSimFlags(stderr, fs)
	}
	var (
		qos      int
		sequence bool
	)
	fs.StringVar(&o.broker, "broker", "127.0.0.1:1883", "broker `address`: host:port or tcp://host:port (ssl://, ws:// also accepted)")
	fs.IntVar(&o.gen.Sensors, "sensors", sim.DefaultSensors, "number of simulated `sensors`, ids s-0000, s-0001, ... (published round-robin)")
	fs.Float64Var(&o.rate, "rate", 10, "total sensor `messages per second`; 0 publishes as fast as possible")
	fs.IntVar(&o.power.Machines, "machines", sim.DefaultMachines, "number of simulated `machines` (lathe-1, press-1, mill-1, ...) publishing power readings; 0: none")
	fs.StringVar(&o.machineTopic, "machine-topic", sim.DefaultMachineTopic, "machine topic `template`; {machine} is replaced by the machine name")
	fs.DurationVar(&o.machineEvery, "machine-interval", time.Second, "each machine publishes a reading every `interval`")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this `duration` (0: no limit)")
	fs.Int64Var(&o.count, "count", 0, "stop after this many `messages` (0: no limit)")
	fs.IntVar(&qos, "qos", 0, "MQTT `QoS`, 0 or 1")
	fs.StringVar(&o.topic, "topic", sim.DefaultTopic, "topic `template`; {sensor} is replaced by the sensor id")
	fs.Uint64Var(&o.gen.Seed, "seed", 1, "random `seed`: the same seed publishes the same values")
	fs.Float64Var(&o.gen.Malformed, "malformed", 0, "`fraction` of payloads that are malformed (bad JSON, wrong type, missing ts, invalid UTF-8)")
	fs.Float64Var(&o.gen.Spikes, "spikes", 0.001, "`fraction` of readings with a 15-30 °C temperature spike")
	fs.BoolVar(&sequence, "sequence", true, "include a \"seq\" field (0, 1, 2, ... over all sensors) to detect loss and duplication")
	fs.StringVar(&o.username, "username", "", "MQTT `username`")
	fs.StringVar(&o.password, "password", "", "MQTT `password` (needs --username)")
	fs.StringVar(&o.clientID, "client-id", "", "MQTT client `id` (default edgectl-sim-PID)")
	fs.IntVar(&o.inflight, "inflight", 1024, "publishes in flight at once (awaiting PUBACK at QoS 1, the socket at QoS 0)")
	fs.IntVar(&o.workers, "workers", 4, "goroutines waiting for publish completions")
	fs.DurationVar(&o.progress, "progress", time.Second, "progress line `interval` on stderr (0: none)")
	fs.DurationVar(&o.drainWait, "drain", 10*time.Second, "how long to wait for in-flight publishes when stopping")
	if err := fs.Parse(args); err != nil {
		return o, printedError{err} // flag printed it with the usage
	}
	o.gen.NoSequence = !sequence

	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if o.broker == "" {
		bad("broker", "must not be empty (e.g. --broker 127.0.0.1:1883)")
	} else if u, err := brokerURL(o.broker); err != nil {
		bad("broker", "%v", err)
	} else {
		o.broker = u
	}
	if err := o.gen.Validate(); err != nil {
		// sim.Config names its fields as the flags are named.
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New("--"+line))
		}
	}
	if !(o.rate >= 0) || o.rate > 1e9 {
		bad("rate", "must be 0 (as fast as possible) or a positive number of messages per second, got %v", o.rate)
	}
	if o.duration < 0 {
		bad("duration", "must not be negative, got %v", o.duration)
	}
	if o.count < 0 {
		bad("count", "must not be negative, got %d", o.count)
	}
	if qos != 0 && qos != 1 {
		bad("qos", "must be 0 or 1, got %d", qos)
	}
	o.qos = byte(qos)
	if err := checkTopicTemplate(o.topic); err != nil {
		bad("topic", "%v", err)
	}
	if o.power.Machines < 0 {
		bad("machines", "must not be negative, got %d", o.power.Machines)
	}
	if o.power.Machines > 0 {
		if err := checkTemplate(o.machineTopic, "{machine}"); err != nil {
			bad("machine-topic", "%v", err)
		}
		if o.machineEvery <= 0 {
			bad("machine-interval", "must be positive, got %v", o.machineEvery)
		}
	}
	o.power.Seed = o.gen.Seed
	if o.password != "" && o.username == "" {
		bad("password", "set without --username")
	}
	if o.inflight < 1 || o.inflight > 65535 {
		bad("inflight", "must be 1 to 65535, got %d", o.inflight)
	}
	if o.workers < 1 {
		bad("workers", "must be at least 1, got %d", o.workers)
	}
	if o.progress < 0 {
		bad("progress", "must not be negative, got %v", o.progress)
	}
	if o.drainWait < 0 {
		bad("drain", "must not be negative, got %v", o.drainWait)
	}
	if o.clientID == "" {
		o.clientID = fmt.Sprintf("edgectl-sim-%d", os.Getpid())
	}
	return o, errors.Join(errs...)
}

// printSimFlags lists the flags as --name (the form the README uses).
func printSimFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// brokerURL turns host:port or scheme://host:port into a paho broker URL.
func brokerURL(addr string) (string, error) {
	scheme, hostport, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, hostport = "tcp", addr
	}
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return "", fmt.Errorf("unsupported scheme %q in %q (want tcp, mqtt, ssl, tls, mqtts, ws or wss)", scheme, addr)
	}
	host := hostport
	if scheme == "ws" || scheme == "wss" {
		host, _, _ = strings.Cut(hostport, "/")
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return "", fmt.Errorf("want host:port, got %q: %v", addr, err)
	}
	return scheme + "://" + hostport, nil
}

// checkTopicTemplate accepts a non-empty topic without wildcards whose only
// placeholder is {sensor}.
func checkTopicTemplate(t string) error { return checkTemplate(t, "{sensor}") }

// checkTemplate accepts a non-empty topic without wildcards whose only
// placeholder is ph.
func checkTemplate(t, ph string) error {
	if t == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(t, "+#") {
		return fmt.Errorf("%q contains a wildcard (+ or #); publish topics cannot", t)
	}
	rest := strings.ReplaceAll(t, ph, "")
	if i := strings.IndexAny(rest, "{}"); i >= 0 {
		return fmt.Errorf("%q has an unknown placeholder or stray brace; only %s is supported", t, ph)
	}
	return nil
}

func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseSim(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.As(err, new(printedError)) {
			fmt.Fprintf(stderr, "edgectl sim: %v\n", strings.ReplaceAll(err.Error(), "\n", "\nedgectl sim: "))
		}
		return 2
	}
	s, err := newSimulator(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgectl sim: %v\n", err)
		return 2
	}
	if err := s.connect(); err != nil {
		fmt.Fprintf(stderr, "edgectl sim: %v\n", err)
		return 1
	}
	defer s.client.Disconnect(250)
	res := s.run(ctx, stderr)
	fmt.Fprintln(stdout, res)
	if s.power != nil {
		fmt.Fprintf(stderr, "sim: machines sent=%d errors=%d\n", s.machinesSent.Load(), s.machinesFailed.Load())
	}
	if res.errors > 0 || s.machinesFailed.Load() > 0 {
		return 1
	}
	return 0
}

// printedError is an error the flag package has already printed.
type printedError struct{ err error }

func (e printedError) Error() string { return e.err.Error() }
func (e printedError) Unwrap() error { return e.err }

// simulator publishes one run of generated readings.
type simulator struct {
	o      simOptions
	gen    *sim.Generator
	topics []string // per sensor
	client paho.Client

	power                        *sim.PowerGenerator // nil: no machines
	machineTopics                []string
	machinesSent, machinesFailed atomic.Int64
}

func newSimulator(o simOptions) (*simulator, error) {
	g, err := sim.New(o.gen)
	if err != nil {
		return nil, err
	}
	s := &simulator{o: o, gen: g, topics: make([]string, g.Sensors())}
	for i := range s.topics {
		s.topics[i] = strings.ReplaceAll(o.topic, "{sensor}", g.SensorID(i))
	}
	if o.power.Machines > 0 {
		if s.power, err = sim.NewPower(o.power); err != nil {
			return nil, err
		}
		for i := range s.power.Machines() {
			s.machineTopics = append(s.machineTopics, strings.ReplaceAll(o.machineTopic, "{machine}", s.power.MachineID(i)))
		}
	}
	return s, nil
}

func (s *simulator) connect() error {
	opts := paho.NewClientOptions().
		AddBroker(s.o.broker).
		SetClientID(s.o.clientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(30 * time.Second).
		SetOrderMatters(false).
		SetMaxResumePubInFlight(s.o.inflight)
	if s.o.username != "" {
		opts.SetUsername(s.o.username).SetPassword(s.o.password)
	}
	s.client = paho.NewClient(opts)
	tok := s.client.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("connect %s: timed out", s.o.broker)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect %s: %w", s.o.broker, err)
	}
	return nil
}

// simResult is the summary of a run.
type simResult struct {
	sent, errors int64
	elapsed      time.Duration
}

func (r simResult) String() string {
	rate := 0.0
	if r.elapsed > 0 {
		rate = float64(r.sent) / r.elapsed.Seconds()
	}
	return fmt.Sprintf("sent=%d errors=%d elapsed=%.3fs rate=%.0f/s", r.sent, r.errors, r.elapsed.Seconds(), rate)
}

type inflight struct {
	tok paho.Token
	buf []byte
}

// run publishes until the count or duration is reached or ctx ends, then
// waits up to drainWait for publishes in flight. sent counts publishes that
// completed (written at QoS 0, acknowledged at QoS 1); errors counts the rest.
func (s *simulator) run(ctx context.Context, stderr io.Writer) simResult {
	o := s.o
	var sent, failed atomic.Int64

	// free holds the payload buffers: a buffer is reused only once paho is
	// done with it, and taking one bounds the publishes in flight.
	free := make(chan []byte, o.inflight)
	for range o.inflight {
		free <- make([]byte, 0, 256)
	}
	pending := make(chan inflight, o.inflight)
	drainCtx, stopDrain := context.WithCancel(context.Background())
	defer stopDrain()
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for p := range pending {
				select {
				case <-p.tok.Done():
				case <-drainCtx.Done():
				}
				if err := p.tok.Error(); err != nil || !isDone(p.tok) {
					failed.Add(1)
					// paho may still hold the payload (a QoS 1 resend).
					free <- make([]byte, 0, 256)
					continue
				}
				sent.Add(1)
				free <- p.buf[:0]
			}
		})
	}

	start := time.Now()
	stopProgress := s.startProgress(start, &sent, &failed, stderr)
	stopMachines := s.startMachines()

	var end time.Time
	if o.duration > 0 {
		end = start.Add(o.duration)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var n int64
	done := ctx.Done()
publish:
	for o.count == 0 || n < o.count {
		now := time.Now()
		if !end.IsZero() && !now.Before(end) {
			break
		}
		if o.rate > 0 {
			// Pace against the clock: message n is due at start + n/rate,
			// so a late wake-up is caught up on, not lost.
			due := start.Add(time.Duration(float64(n) / o.rate * float64(time.Second)))
			if !end.IsZero() && due.After(end) {
				break
			}
			if now.Before(due) {
				timer.Reset(due.Sub(now))
				select {
				case <-timer.C:
				case <-done:
					timer.Stop()
					break publish
				}
				continue
			}
		}
		var buf []byte
		select {
		case buf = <-free:
		case <-done:
			break publish
		}
		payload, idx, _ := s.gen.Next(buf, now.UnixMilli())
		n++
		if o.qos == 0 && !s.client.IsConnectionOpen() {
			// paho would report a QoS 0 publish while reconnecting as done.
			failed.Add(1)
			free <- payload[:0]
			continue
		}
		tok := s.client.Publish(s.topics[idx], o.qos, false, payload)
		pending <- inflight{tok: tok, buf: payload}
	}
	stopMachines()
	close(pending)
	drainTimer := time.AfterFunc(o.drainWait, stopDrain)
	wg.Wait()
	drainTimer.Stop()
	elapsed := time.Since(start)
	stopProgress()
	return simResult{sent: sent.Load(), errors: failed.Load(), elapsed: elapsed}
}

// startMachines publishes every machine's reading every machineEvery (the
// first at once) until the returned function is called, which waits for the
// last publishes (up to drainWait).
func (s *simulator) startMachines() (stop func()) {
	if s.power == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.o.machineEvery)
		defer t.Stop()
		var buf []byte
		for {
			now := time.Now()
			var toks []paho.Token
			for i, topic := range s.machineTopics {
				buf = s.power.Next(buf[:0], i, now.UnixMilli())
				toks = append(toks, s.client.Publish(topic, s.o.qos, false, bytes.Clone(buf)))
			}
			for _, tok := range toks {
				if tok.WaitTimeout(s.o.drainWait) && tok.Error() == nil {
					s.machinesSent.Add(1)
				} else {
					s.machinesFailed.Add(1)
				}
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

func isDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// startProgress prints a progress line every o.progress until the returned
// function is called.
func (s *simulator) startProgress(start time.Time, sent, failed *atomic.Int64, w io.Writer) (stop func()) {
	if s.o.progress <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.o.progress)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				n := sent.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				fmt.Fprintf(w, "sim: elapsed=%.0fs sent=%d errors=%d rate=%.0f/s\n", now.Sub(start).Seconds(), n, failed.Load(), rate)
				last, lastAt = n, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
