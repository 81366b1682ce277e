package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// startBroker runs an in-process mochi broker on a free loopback port and
// returns its tcp:// address.
func startBroker(tb testing.TB) string {
	tb.Helper()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumInflight = math.MaxUint16
	caps.MaximumClientWritesPending = 65536
	srv := mochi.New(&mochi.Options{Capabilities: caps, InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		tb.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return "tcp://" + tcp.Address()
}

func TestSimFlagErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--broker", ""}, []string{"--broker: must not be empty"}},
		{[]string{"--machines", "-1", "--machine-topic", "m/{sensor}"}, []string{"--machines: must not be negative"}},
		{[]string{"--machine-topic", "m/+/p"}, []string{"--machine-topic:", "wildcard"}},
		{[]string{"--broker", "nohost"}, []string{"--broker: want host:port"}},
		{[]string{"--broker", "http://h:1"}, []string{`--broker: unsupported scheme "http"`}},
		{[]string{"--broker", "h:1", "--qos", "2"}, []string{"--qos: must be 0 or 1, got 2"}},
		{[]string{"--broker", "h:1", "--rate", "-5"}, []string{"--rate:"}},
		{[]string{"--broker", "h:1", "--sensors", "0"}, []string{"--sensors: must be at least 1"}},
		{[]string{"--broker", "h:1", "--malformed", "1.5"}, []string{"--malformed:"}},
		{[]string{"--broker", "h:1", "--spikes", "-1"}, []string{"--spikes:"}},
		{[]string{"--broker", "h:1", "--count", "-1"}, []string{"--count:"}},
		{[]string{"--broker", "h:1", "--duration", "-1s"}, []string{"--duration:"}},
		{[]string{"--broker", "h:1", "--topic", "a/#"}, []string{"--topic:", "wildcard"}},
		{[]string{"--broker", "h:1", "--topic", "a/{site}"}, []string{"--topic:", "placeholder"}},
		{[]string{"--broker", "h:1", "--topic", ""}, []string{"--topic: must not be empty"}},
		{[]string{"--broker", "h:1", "--password", "p"}, []string{"--password: set without --username"}},
		{[]string{"--broker", "h:1", "--inflight", "0"}, []string{"--inflight:"}},
		{[]string{"--broker", "h:1", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--broker", "", "--qos", "3", "--sensors", "-1"}, []string{"--broker:", "--qos:", "--sensors:"}},
		{[]string{"--nosuchflag"}, []string{"flag provided but not defined: -nosuchflag", "usage: edgectl sim"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"sim"}, tt.args...), &out, &errb); code != 2 {
				t.Fatalf("got exit %d; want 2 (stderr %q)", code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("got stderr %q; want it to contain %q", errb.String(), w)
				}
			}
		})
	}
}

func TestSimBrokerAddressForms(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:1883":       "tcp://127.0.0.1:1883",
		"tcp://h:1883":         "tcp://h:1883",
		"ssl://h:8883":         "ssl://h:8883",
		"ws://h:8080/mqtt":     "ws://h:8080/mqtt",
		"[::1]:1883":           "tcp://[::1]:1883",
		"mqtts://broker:8883":  "mqtts://broker:8883",
		"tcp://localhost:1883": "tcp://localhost:1883",
	} {
		if got, err := brokerURL(in); err != nil || got != want {
			t.Errorf("brokerURL(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestSimUnreachableBrokerFailsWithExit1(t *testing.T) {
	var out, errb bytes.Buffer
	// Port 1 on loopback refuses connections.
	code := run([]string{"sim", "--broker", "127.0.0.1:1", "--count", "1"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "connect tcp://127.0.0.1:1") {
		t.Fatalf("got %d %q; want 1 and a connect error naming the broker", code, errb.String())
	}
}

// TestSimDeliversEverySequenceOnceAtQoS1 publishes 2000 readings at QoS 1
// through an in-process broker and checks a QoS 1 subscriber receives
// sequence numbers 0..1999 exactly once each, on the templated topics.
func TestSimDeliversEverySequenceOnceAtQoS1(t *testing.T) {
	const n = 2000
	addr := startBroker(t)

	var (
		mu      sync.Mutex
		seen    = make(map[uint64]int, n)
		badMsgs []string
		all     = make(chan struct{})
	)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(addr).SetClientID("sim-test-sub").SetCleanSession(true))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	handler := func(_ paho.Client, m paho.Message) {
		var r struct {
			Sensor string `json:"sensor"`
			Seq    uint64 `json:"seq"`
		}
		mu.Lock()
		defer mu.Unlock()
		if err := json.Unmarshal(m.Payload(), &r); err != nil || m.Topic() != "test/"+r.Sensor+"/r" {
			badMsgs = append(badMsgs, fmt.Sprintf("%s %q", m.Topic(), m.Payload()))
			return
		}
		seen[r.Seq]++
		if len(seen) == n {
			close(all)
		}
	}
	if tok := sub.Subscribe("test/+/r", 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	var out, errb bytes.Buffer
	code := run([]string{"sim", "--broker", addr, "--count", "2000", "--qos", "1", "--rate", "0",
		"--sensors", "37", "--topic", "test/{sensor}/r", "--client-id", "sim-test-pub"}, &out, &errb)
	if code != 0 {
		t.Fatalf("got exit %d; want 0 (stderr %q)", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "sent=2000 errors=0 elapsed=") || !strings.HasSuffix(out.String(), "/s\n") {
		t.Errorf("got summary %q; want sent=2000 errors=0 elapsed=S rate=R/s", out.String())
	}

	select {
	case <-all:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(badMsgs) > 0 {
		t.Errorf("got %d unexpected messages, first %s; want none", len(badMsgs), badMsgs[0])
	}
	for seq := range uint64(n) {
		if c := seen[seq]; c != 1 {
			t.Errorf("seq %d received %d times; want once", seq, c)
		}
	}
	if len(seen) != n {
		t.Errorf("got %d distinct sequence numbers; want %d", len(seen), n)
	}
}

// TestSimPacesToTheRate checks --rate with --duration sends about rate ×
// duration messages, not as many as possible.
func TestSimPacesToTheRate(t *testing.T) {
	addr := startBroker(t)
	var out, errb bytes.Buffer
	code := run([]string{"sim", "--broker", addr, "--rate", "2000", "--duration", "500ms", "--progress", "100ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("got exit %d; want 0 (stderr %q)", code, errb.String())
	}
	var sent, errs int64
	var elapsed, rate float64
	if _, err := fmt.Sscanf(out.String(), "sent=%d errors=%d elapsed=%fs rate=%f/s", &sent, &errs, &elapsed, &rate); err != nil {
		t.Fatalf("summary %q: %v", out.String(), err)
	}
	// 1000 messages are due before 0.5s; a slow machine may not catch up
	// with the last few before the deadline, but never sends more.
	if sent < 900 || sent > 1000 || errs != 0 {
		t.Errorf("got sent=%d errors=%d; want 900 to 1000 and 0", sent, errs)
	}
	if !strings.Contains(errb.String(), "sim: elapsed=") {
		t.Errorf("got stderr %q; want progress lines", errb.String())
	}
}

// TestSimStopsOnCancel checks an unbounded run ends, with a summary, when
// its context is canceled (Ctrl-C).
func TestSimStopsOnCancel(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- cmdSim(ctx, []string{"--broker", addr, "--rate", "100", "--progress", "0"}, &out, &errb)
	}()
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.HasPrefix(out.String(), "sent=") {
			t.Fatalf("got %d %q %q; want 0 and a summary", code, out.String(), errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sim did not stop within 20s of cancel")
	}
}

// BenchmarkSimPublish publishes b.N readings at QoS 0, as fast as possible,
// to an in-process broker with no subscriber, and reports messages/s.
func BenchmarkSimPublish(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			addr := startBroker(b)
			o, err := parseSim([]string{"--broker", addr, "--rate", "0", "--progress", "0",
				"--qos", fmt.Sprint(qos), "--sensors", "1000", "--count", fmt.Sprint(b.N)}, new(bytes.Buffer))
			if err != nil {
				b.Fatal(err)
			}
			s, err := newSimulator(o)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.connect(); err != nil {
				b.Fatal(err)
			}
			defer s.client.Disconnect(0)
			b.ReportAllocs()
			b.ResetTimer()
			res := s.run(context.Background(), new(bytes.Buffer))
			b.StopTimer()
			if res.sent != int64(b.N) || res.errors != 0 {
				b.Fatalf("got %v; want sent=%d errors=0", res, b.N)
			}
			b.ReportMetric(float64(res.sent)/res.elapsed.Seconds(), "msgs/s")
		})
	}
}
