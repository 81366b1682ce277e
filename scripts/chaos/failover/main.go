// Command failover is the mesh's failover harness (issue 13): a real
// mosquitto and three real edged processes sharing a keyed pipeline with
// 1s event-time tumbling windows, a steady load from `edgectl sim` over
// 1,000 sensors, and seeded SIGKILLs of an owner of several partitions
// (each victim restarted a few seconds later, so members flap). Every
// message the broker delivered is recorded by a subscriber of its own; the
// windows computed from those are compared with the union of the windows
// the three nodes emitted. The last line of its output is exactly
//
//	kills=K lost_windows=L duplicate_windows=D max_takeover_s=T
//
// and it exits 1 unless L and D are 0 and T <= 2. scripts/chaos/failover.sh
// builds the binaries and runs it; the integration test in this directory
// runs a short version.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Options are the harness's flags.
type Options struct {
	Seed     uint64
	Duration time.Duration // of the load
	Kills    int
	Sensors  int
	Rate     float64 // messages per second over all sensors
	Down     time.Duration
	Edged    string // binaries
	Edgectl  string
	Work     string // working directory (data dirs, logs)
	Out      io.Writer
}

// Result is what the last line reports.
type Result struct {
	Kills, Lost, Duplicates int
	MaxTakeover             time.Duration
	Windows                 int
	Detections              []time.Duration
	Takeovers               []time.Duration
}

// Line is the harness's last line.
func (r Result) Line() string {
	return fmt.Sprintf("kills=%d lost_windows=%d duplicate_windows=%d max_takeover_s=%.2f",
		r.Kills, r.Lost, r.Duplicates, r.MaxTakeover.Seconds())
}

// OK reports whether the run passes: nothing lost or doubled and every
// takeover within 2s.
func (r Result) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.MaxTakeover <= 2*time.Second && r.Kills > 0
}

func main() {
	var o Options
	var short bool
	flag.Uint64Var(&o.Seed, "seed", uint64(time.Now().UnixNano()%1_000_000_000), "seed of the kill times and of the readings")
	flag.DurationVar(&o.Duration, "duration", 40*time.Second, "how long the load runs (at least 30s for the full harness)")
	flag.IntVar(&o.Kills, "kills", 3, "how many times an owner of several partitions is SIGKILLed (each restarted after --down)")
	flag.IntVar(&o.Sensors, "sensors", 1000, "simulated sensors")
	flag.Float64Var(&o.Rate, "rate", 2000, "messages per second over all sensors")
	flag.DurationVar(&o.Down, "down", 4*time.Second, "how long a killed node stays down")
	flag.StringVar(&o.Edged, "edged", "edged", "edged binary")
	flag.StringVar(&o.Edgectl, "edgectl", "edgectl", "edgectl binary")
	flag.StringVar(&o.Work, "work", "", "working directory (default: a new temporary one, removed when the run passes)")
	flag.BoolVar(&short, "short", false, "CI version: 12s of load, one kill")
	flag.Parse()
	if short {
		o.Duration, o.Kills = 12*time.Second, 1
	}
	o.Out = os.Stdout
	keep := o.Work != ""
	if o.Work == "" {
		d, err := os.MkdirTemp("", "edged-failover-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		o.Work = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		fmt.Fprintln(os.Stderr, "kept", o.Work)
		os.Exit(2)
	}
	fmt.Println(res.Line())
	if !res.OK() {
		fmt.Fprintln(os.Stderr, "kept", o.Work)
		os.Exit(1)
	}
	if !keep {
		os.RemoveAll(o.Work)
	}
}

// pipelineYAML: each sensor's readings counted, and their seq summed, in
// 1s event-time tumbling windows; partitioned by sensor. The 2s watermark
// delay is above the publisher's jitter, so no reading is late.
const pipelineYAML = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: win}
spec:
  interval: 100ms
  sources:
    - name: readings
      key: [sensor]
      mqtt: {topics: ["sensors/+/reading"], qos: 1}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: ts, type: time}
      eventTime: ts
      watermark: 2s
  steps:
    - name: w
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - seqs: sum(seq)
  sinks:
    - {name: out, input: w, type: file, path: windows.jsonl}
`

const partitions = 16

type proc struct {
	name, dir, cfg, api, gossip string
	ns                          string // network namespace to run in (split-brain test); empty: this one
	token                       string // api.token (an API outside loopback needs one)
	cmd                         *exec.Cmd
	log                         *os.File
	done                        chan struct{}
}

func (p *proc) file() string { return filepath.Join(p.dir, "data", "out", "windows.jsonl") }

func (p *proc) start(bin string) error {
	lf, err := os.OpenFile(filepath.Join(p.dir, "edged.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.log = lf
	args := []string{bin, "run", "-c", p.cfg, "--data-dir", filepath.Join(p.dir, "data"),
		"--pipelines-dir", filepath.Join(p.dir, "pipelines"), "--api", p.api}
	if p.ns != "" {
		args = append([]string{"ip", "netns", "exec", p.ns}, args...)
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, d chan struct{}) { c.Wait(); close(d) }(p.cmd, p.done)
	return nil
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	if p.log != nil {
		p.log.Close()
	}
}

func (p *proc) get(path string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+p.api+path, nil)
	if err != nil {
		return err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type holding struct {
	Partition int      `json:"partition"`
	Owner     string   `json:"owner"`
	Standbys  []string `json:"standbys"`
	Term      uint64   `json:"term"`
}

func (p *proc) table() ([]holding, error) {
	var r struct {
		Partitions []holding `json:"partitions"`
	}
	err := p.get("/api/v1/partitions", &r)
	return r.Partitions, err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitFor(ctx context.Context, d time.Duration, what string, f func() error) error {
	end := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s within %v: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// window identifies one sensor's window.
type window struct {
	sensor string
	start  int64 // unix ms
}

type agg struct{ n, seqs float64 }

// recorder keeps what the broker delivered: every reading, by window.
type recorder struct {
	mu    sync.Mutex
	wins  map[window]agg
	seen  map[int64]bool // seq, to ignore redeliveries
	maxTs int64
}

func (r *recorder) add(payload []byte) {
	var m struct {
		Sensor string `json:"sensor"`
		Seq    int64  `json:"seq"`
		Ts     int64  `json:"ts"`
	}
	if json.Unmarshal(payload, &m) != nil || m.Sensor == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[m.Seq] {
		return
	}
	r.seen[m.Seq] = true
	w := window{m.Sensor, m.Ts - m.Ts%1000}
	a := r.wins[w]
	a.n++
	a.seqs += float64(m.Seq)
	r.wins[w] = a
	r.maxTs = max(r.maxTs, m.Ts)
}

// row is one emitted window, as the file sink writes it.
type row struct {
	ID     string  `json:"_id"`
	Sensor string  `json:"sensor"`
	Start  any     `json:"window_start"`
	N      float64 `json:"n"`
	Seqs   float64 `json:"seqs"`
}

func startMs(v any) (int64, bool) {
	switch x := v.(type) {
	case float64:
		return int64(x), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	}
	return 0, false
}

// partitionOf reads the partition out of an output id
// (pipeline/partition/term/epoch/seq).
func partitionOf(id string) int {
	f := strings.Split(id, "/")
	if len(f) < 5 {
		return -1
	}
	p, err := strconv.Atoi(f[len(f)-4])
	if err != nil {
		return -1
	}
	return p
}

// readRows reads the complete lines of a window file from offset off; it
// returns the rows and the offset after the last complete line.
func readRows(path string, off int64) ([]row, int64) {
	f, err := os.Open(path)
	if err != nil {
		return nil, off
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, off
	}
	b, _ := io.ReadAll(f)
	var out []row
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		var r row
		if json.Unmarshal(b[:i], &r) == nil {
			out = append(out, r)
		}
		off += int64(i + 1)
		b = b[i+1:]
	}
	return out, off
}

// Run runs the harness.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	rng := rand.New(rand.NewPCG(o.Seed, 0xfa170))
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, format+"\n", a...) }
	say("seed=%d duration=%v kills=%d sensors=%d rate=%v/s work=%s", o.Seed, o.Duration, o.Kills, o.Sensors, o.Rate, o.Work)

	// mosquitto
	baddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	_, bport, _ := net.SplitHostPort(baddr)
	mdir := filepath.Join(o.Work, "mosquitto")
	os.MkdirAll(mdir, 0o755)
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\nlog_dest file %s/mosquitto.log\n", bport, mdir)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	if err := os.WriteFile(filepath.Join(mdir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		return res, err
	}
	mosq := "/usr/sbin/mosquitto"
	if p, err := exec.LookPath("mosquitto"); err == nil {
		mosq = p
	}
	mc := exec.Command(mosq, "-c", filepath.Join(mdir, "mosquitto.conf"))
	if err := mc.Start(); err != nil {
		return res, fmt.Errorf("start mosquitto: %w", err)
	}
	defer func() { mc.Process.Kill(); mc.Wait() }()
	broker := "tcp://" + baddr
	if err := waitFor(ctx, 10*time.Second, "mosquitto listening", func() error {
		c, err := net.Dial("tcp", baddr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return res, err
	}

	// the recorder: what the broker delivered
	rec := &recorder{wins: map[window]agg{}, seen: map[int64]bool{}}
	copts := paho.NewClientOptions().AddBroker(broker).SetClientID("failover-recorder").SetCleanSession(true).SetOrderMatters(false)
	rc := paho.NewClient(copts)
	if t := rc.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return res, fmt.Errorf("recorder connect: %v", t.Error())
	}
	defer rc.Disconnect(100)
	if t := rc.Subscribe("sensors/+/reading", 1, func(_ paho.Client, m paho.Message) { rec.add(m.Payload()) }); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return res, fmt.Errorf("recorder subscribe: %v", t.Error())
	}

	// three edged
	key := base64.StdEncoding.EncodeToString([]byte("failover-harness-key-32-bytes!!!"))
	var nodes []*proc
	defer func() {
		for _, p := range nodes {
			p.kill()
		}
	}()
	for i := range 3 {
		p := &proc{name: fmt.Sprintf("n%d", i), dir: filepath.Join(o.Work, fmt.Sprintf("n%d", i))}
		if p.api, err = freeAddr(); err != nil {
			return res, err
		}
		if p.gossip, err = freeAddr(); err != nil {
			return res, err
		}
		nodes = append(nodes, p)
	}
	for i, p := range nodes {
		var join []string
		for j, q := range nodes {
			if j != i {
				join = append(join, strconv.Quote(q.gossip))
			}
		}
		cfg := fmt.Sprintf(`storage: {sync: always}
epochs: {partitions: %d}
mqtt:
  brokers: [%s]
  clientID: failover-%s
mesh:
  name: %s
  bind: %q
  key: %s
  joinRetry: 300ms
  join: [%s]
`, partitions, broker, p.name, p.name, p.gossip, key, strings.Join(join, ", "))
		os.MkdirAll(filepath.Join(p.dir, "pipelines"), 0o755)
		p.cfg = filepath.Join(p.dir, "edged.yaml")
		if err := os.WriteFile(p.cfg, []byte(cfg), 0o644); err != nil {
			return res, err
		}
		if err := os.WriteFile(filepath.Join(p.dir, "pipelines", "win.yaml"), []byte(pipelineYAML), 0o644); err != nil {
			return res, err
		}
		if err := p.start(o.Edged); err != nil {
			return res, err
		}
	}
	agree := func(live []*proc) ([]holding, error) {
		var first []holding
		for _, p := range live {
			t, err := p.table()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			if len(t) != partitions {
				return nil, fmt.Errorf("%s: %d partitions in its table", p.name, len(t))
			}
			if first == nil {
				first = t
				continue
			}
			for i := range t {
				if t[i].Owner != first[i].Owner || t[i].Term != first[i].Term {
					return nil, fmt.Errorf("%s and %s disagree on partition %d", live[0].name, p.name, i)
				}
			}
		}
		holders := map[string]bool{}
		for _, h := range first {
			holders[h.Owner] = true
		}
		if len(holders) != len(live) {
			return nil, fmt.Errorf("owners %v, want %d nodes", holders, len(live))
		}
		return first, nil
	}
	if err := waitFor(ctx, 30*time.Second, "three nodes agree on one holding table", func() error {
		_, err := agree(nodes)
		return err
	}); err != nil {
		return res, err
	}
	say("mesh of 3 formed; load starts")

	// the load
	simOut, _ := os.Create(filepath.Join(o.Work, "sim.log"))
	defer simOut.Close()
	sim := exec.Command(o.Edgectl, "sim", "--broker", baddr, "--sensors", strconv.Itoa(o.Sensors),
		"--rate", fmt.Sprint(o.Rate), "--duration", o.Duration.String(), "--qos", "1", "--machines", "0",
		"--spikes", "0", "--seed", strconv.FormatUint(o.Seed, 10), "--progress", "0", "--client-id", "failover-sim")
	sim.Stdout, sim.Stderr = simOut, simOut
	loadStart := time.Now()
	if err := sim.Start(); err != nil {
		return res, fmt.Errorf("start edgectl sim: %w", err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Wait() }()

	// the kills: evenly spread over the load with seeded jitter, each
	// victim an owner of several partitions, down for o.Down.
	slot := (o.Duration - 6*time.Second) / time.Duration(max(o.Kills, 1))
	for k := range o.Kills {
		at := loadStart.Add(3*time.Second + time.Duration(k)*slot + time.Duration(rng.Int64N(int64(max(slot-o.Down-2*time.Second, time.Second)))))
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		var table []holding
		if err := waitFor(ctx, 20*time.Second, "the nodes agree before a kill", func() (err error) {
			table, err = agree(nodes)
			return err
		}); err != nil {
			return res, err
		}
		owned := map[string][]int{}
		for _, h := range table {
			owned[h.Owner] = append(owned[h.Owner], h.Partition)
		}
		// The victim: a seeded pick among the nodes that own several
		// partitions (a quarter of them or more).
		var candidates []*proc
		for _, p := range nodes {
			if len(owned[p.name]) >= partitions/4 {
				candidates = append(candidates, p)
			}
		}
		victim := candidates[rng.IntN(len(candidates))]
		vparts := owned[victim.name]
		var survivors []*proc
		offs := map[*proc]int64{}
		for _, p := range nodes {
			if p != victim {
				survivors = append(survivors, p)
				st, _ := os.Stat(p.file())
				if st != nil {
					offs[p] = st.Size()
				}
			}
		}
		victim.cmd.Process.Signal(syscall.SIGKILL)
		killed := time.Now()
		<-victim.done
		victim.log.Close()
		res.Kills++
		// takeover: the first row of a victim's partition in a survivor's file
		var took time.Duration
		err := waitFor(ctx, 15*time.Second, "a survivor emits a dead owner's partition", func() error {
			for _, p := range survivors {
				rows, off := readRows(p.file(), offs[p])
				offs[p] = off
				for _, r := range rows {
					if slices.Contains(vparts, partitionOf(r.ID)) {
						took = time.Since(killed)
						return nil
					}
				}
			}
			return errors.New("not yet")
		})
		if err != nil {
			took = 15 * time.Second
			say("kill %d: %s (owner of partitions %v) SIGKILLed at +%.1fs; no survivor emitted its partitions within 15s", k+1, victim.name, vparts, killed.Sub(loadStart).Seconds())
		}
		det := detection(survivors, victim.name, killed)
		res.Takeovers = append(res.Takeovers, took)
		res.Detections = append(res.Detections, det)
		res.MaxTakeover = max(res.MaxTakeover, took)
		say("kill %d: %s (owner of partitions %v) SIGKILLed at +%.1fs; detected after %.2fs; first window of its partitions from a survivor after %.2fs",
			k+1, victim.name, vparts, killed.Sub(loadStart).Seconds(), det.Seconds(), took.Seconds())
		// down for a while, then back (the member flaps)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Until(killed.Add(o.Down))):
		}
		if err := victim.start(o.Edged); err != nil {
			return res, err
		}
		if err := waitFor(ctx, 30*time.Second, "the restarted node rejoins", func() error {
			_, err := agree(nodes)
			return err
		}); err != nil {
			return res, err
		}
		say("kill %d: %s back and rejoined at +%.1fs", k+1, victim.name, time.Since(loadStart).Seconds())
	}
	if err := <-simDone; err != nil {
		b, _ := os.ReadFile(filepath.Join(o.Work, "sim.log"))
		return res, fmt.Errorf("edgectl sim: %v\n%s", err, b)
	}
	say("load done at +%.1fs", time.Since(loadStart).Seconds())

	// Windows that must have closed: those ending 2s (the watermark delay)
	// plus a margin before the last reading.
	rec.mu.Lock()
	cut := rec.maxTs - 4000
	truth := map[window]agg{}
	for w, a := range rec.wins {
		if w.start+1000 <= cut {
			truth[w] = a
		}
	}
	rec.mu.Unlock()
	res.Windows = len(truth)
	compare := func() (lost, dup int, detail []string) {
		got := map[window][]row{}
		for _, p := range nodes {
			rows, _ := readRows(p.file(), 0)
			for _, r := range rows {
				ms, ok := startMs(r.Start)
				if !ok {
					continue
				}
				w := window{r.Sensor, ms}
				if _, ok := truth[w]; ok {
					got[w] = append(got[w], r)
				}
			}
		}
		for w, want := range truth {
			rows := got[w]
			right := 0
			for _, r := range rows {
				if r.N == want.n && r.Seqs == want.seqs {
					right++
				}
			}
			if right == 0 {
				lost++
				if len(detail) < 10 {
					detail = append(detail, fmt.Sprintf("lost %s@%d want n=%v got %+v", w.sensor, w.start, want.n, rows))
				}
			}
			if len(rows) > 1 {
				dup += len(rows) - 1
				if len(detail) < 20 {
					detail = append(detail, fmt.Sprintf("dup %s@%d: %+v", w.sensor, w.start, rows))
				}
			}
		}
		return
	}
	var detail []string
	waitFor(ctx, 30*time.Second, "every window emitted", func() error {
		res.Lost, res.Duplicates, detail = compare()
		if res.Lost > 0 {
			return fmt.Errorf("%d lost", res.Lost)
		}
		return nil
	})
	for _, d := range detail {
		say("%s", d)
	}
	say("windows=%d readings_recorded=%d detection_s=%s takeover_s=%s", res.Windows, len(rec.seen), secs(res.Detections), secs(res.Takeovers))
	return res, nil
}

func secs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// detection finds, in the survivors' logs, the first line declaring the
// victim dead after killed; zero when none does.
func detection(survivors []*proc, victim string, killed time.Time) time.Duration {
	var best time.Duration
	for _, p := range survivors {
		f, err := os.Open(filepath.Join(p.dir, "edged.log"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if !strings.Contains(l, "mesh member left or died") || !strings.Contains(l, "member="+victim) {
				continue
			}
			i := strings.Index(l, "time=")
			if i < 0 {
				continue
			}
			ts, _, _ := strings.Cut(l[i+5:], " ")
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || t.Before(killed) {
				continue
			}
			if d := t.Sub(killed); best == 0 || d < best {
				best = d
			}
		}
		f.Close()
	}
	return best
}
