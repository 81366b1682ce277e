// Command outs is the MQTT benchmark's outside subscriber: it receives the
// window outputs edged publishes through an mqtt sink, as a user's
// application would, and stops the clock on the output that completes the
// count. Each output is a JSON object with its "_id" and the window's count
// "n"; outs adds up n over distinct ids until the sum reaches --expect (the
// readings published, times the windows each falls into), then reads the CPU
// clock ticks (utime+stime, /proc/PID/stat) and peak RSS (VmHWM) of --pid,
// the process under test, at that moment.
//
// The publisher's finals (a reading per sensor an hour after the data, so
// that every window of the data closes) are in windows of their own, which
// edged's idle rule (spec.idleTimeout, default 10 s) closes too, from about
// 13 s after the input stopped: a window output with n = 1 per sensor and
// window. They are no readings of the data: with --finals TS (the finals'
// event time, `pub --finals-ts`) an output whose window_end is after TS is
// left out of the sum and counted apart. Without that, a run whose last
// outputs take longer than those 13 s (a 60 s window sliding by 1 s over a
// million readings) counted them during --linger and failed as if readings
// had been counted twice.
//
// It prints "sum outputs dup_outputs end ticks hwm_kb finals_outputs" and
// exits 1 when the sum falls short (nothing new for --idle: readings lost) or
// goes past --expect (readings counted twice). An output delivered twice
// under the same id is reported but allowed: sinks deliver at least once with
// deterministic ids for consumers to drop copies.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgedio/edged/scripts/bench/internal/proc"
)

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "outs: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	topic := flag.String("topic", "out/#", "topic filter of the outputs")
	expect := flag.Int64("expect", 1000000, "sum of n over all outputs that completes the run")
	pid := flag.Int("pid", 0, "process under test (its CPU and peak RSS are read at the end)")
	pidFile := flag.String("pid-file", "", "file holding the process under test's pid, read at the end (for a process started after outs)")
	idle := flag.Duration("idle", 60*time.Second, "give up after this long without a new output, once outputs began")
	first := flag.Duration("first", 15*time.Minute, "give up after this long without any output")
	linger := flag.Duration("linger", 500*time.Millisecond, "keep counting this long after the end (late duplicates)")
	finals := flag.Int64("finals", 0, "event time of the publisher's finals (unix ms, pub --finals-ts): outputs of windows ending after it are counted apart; 0: none")
	flag.Parse()

	var (
		mu         sync.Mutex
		t          = newTally(*finals)
		end        time.Time
		ticks, hwm int64
		last       = time.Now()
	)
	done := make(chan struct{})
	handler := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		if !t.add(m.Payload()) || t.sum < *expect || !end.IsZero() {
			return
		}
		end = time.Now()
		var err error
		if *pidFile != "" {
			b, rerr := os.ReadFile(*pidFile)
			if rerr != nil {
				fail("%v", rerr)
			}
			if _, err := fmt.Sscan(string(b), pid); err != nil {
				fail("%s: %v", *pidFile, err)
			}
		}
		if *pid > 0 {
			if ticks, err = proc.CPUTicks(*pid); err == nil {
				hwm, err = proc.HWMKB(*pid)
			}
			if err != nil {
				fail("process under test: %v", err)
			}
		}
		close(done)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("bench-outs-%d", os.Getpid())).
		SetCleanSession(true).SetOrderMatters(true).SetDefaultPublishHandler(handler))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fail("connect to %s: %v", *broker, tok.Error())
	}
	if tok := c.Subscribe(*topic, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fail("subscribe: %v", tok.Error())
	}
	fmt.Fprintln(os.Stderr, "ready")
	ok := true
	tick := time.NewTicker(time.Second)
wait:
	for {
		select {
		case <-done:
			time.Sleep(*linger)
			break wait
		case <-tick.C:
			mu.Lock()
			quiet := time.Since(last)
			none := t.outputs == 0 && t.dupOutputs == 0 && t.bad == 0 && t.finalOutputs == 0
			mu.Unlock()
			limit := *idle
			if none {
				// No output yet: the first window closes only once the
				// watermark passed it, which at a slow publisher (QoS 1,
				// many clients) may take minutes.
				limit = *first
			}
			if quiet > limit {
				ok = false
				break wait
			}
		}
	}
	c.Disconnect(250)
	mu.Lock()
	defer mu.Unlock()
	if t.bad > 0 {
		fmt.Fprintf(os.Stderr, "outs: %d outputs without an _id or not JSON\n", t.bad)
	}
	fmt.Printf("%d %d %d %.6f %d %d %d\n", t.sum, t.outputs, t.dupOutputs, float64(end.UnixNano())/1e9, ticks, hwm, t.finalOutputs)
	if !ok || t.sum != *expect {
		os.Exit(1)
	}
}

// tally adds up the window counts of distinct outputs.
type tally struct {
	finals       int64 // the finals' event time (unix ms); 0: no finals
	ids          map[string]struct{}
	sum          int64 // n over distinct outputs of the data's windows
	outputs      int64 // distinct outputs of the data's windows
	dupOutputs   int64 // outputs delivered again under an id already seen
	finalOutputs int64 // distinct outputs of windows holding the finals
	bad          int64 // payloads that are not JSON or have no _id
}

func newTally(finals int64) *tally {
	return &tally{finals: finals, ids: map[string]struct{}{}}
}

// add counts one output payload and reports whether it added to sum: a new
// output of a window of the data. An output whose window_end is after the
// finals' event time is a window holding a final (closed by the idle rule
// once the input stopped): counted in finalOutputs, not in sum.
func (t *tally) add(payload []byte) bool {
	var o struct {
		ID        string  `json:"_id"`
		N         float64 `json:"n"`
		WindowEnd int64   `json:"window_end"`
	}
	if err := json.Unmarshal(payload, &o); err != nil || o.ID == "" {
		t.bad++
		return false
	}
	if _, ok := t.ids[o.ID]; ok {
		t.dupOutputs++
		return false
	}
	t.ids[o.ID] = struct{}{}
	if t.finals > 0 && o.WindowEnd > t.finals {
		t.finalOutputs++
		return false
	}
	t.outputs++
	t.sum += int64(o.N)
	return true
}
