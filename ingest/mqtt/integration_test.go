//go:build integration

package mqtt

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgedio/edged/ingest/mqtt/mosquittotest"
)

// TestIntegrationOfflineQueueLimit documents the broker setting: 3,000 QoS 1
// messages published while the persistent subscriber is offline. With
// mosquitto's default max_queued_messages (1000) most are silently lost;
// with `max_queued_messages 0` none are.
func TestIntegrationOfflineQueueLimit(t *testing.T) {
	const n = 3000
	tests := []struct {
		name         string
		defaultLimit bool
	}{
		{"default max_queued_messages loses messages", true},
		{"max_queued_messages 0 loses none", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mq := mosquittotest.Start(t, mosquittotest.Options{DefaultQueueLimit: tc.defaultLimit})
			cfg := testConfig(mq.URL(), "it-queue", "sensors/#", 1)
			cfg.DrainTimeout = 0
			var h collector
			s, err := New(cfg, &h)
			if err != nil {
				t.Fatal(err)
			}
			stop := runSource(t, s) // creates the persistent session
			waitConnected(t, s)
			stop()

			publish(t, mq.URL(), "sensors/x", 1, 0, n)

			s2, err := New(cfg, &h)
			if err != nil {
				t.Fatal(err)
			}
			runSource(t, s2)
			waitConnected(t, s2)
			// A marker published now is queued behind everything the broker
			// kept, so once it arrives the backlog has been delivered.
			publish(t, mq.URL(), "sensors/marker", 1, -1, 1)
			eventually(t, 30*time.Second, func() error {
				for _, m := range h.snapshot() {
					if m.Topic == "sensors/marker" {
						return nil
					}
				}
				return errors.New("marker not received yet")
			})
			got := distinct(h.snapshot()) - 1 // minus the marker
			t.Logf("delivered %d of %d messages published while offline", got, n)
			if tc.defaultLimit {
				if got >= n {
					t.Errorf("got all %d messages with the default max_queued_messages; want loss (mosquitto caps the offline queue at 1000)", got)
				}
			} else if got != n {
				t.Errorf("got %d distinct messages with max_queued_messages 0; want %d", got, n)
			}
		})
	}
}

// TestIntegrationHandlerFailsFirstN: nothing is acknowledged while the
// handler fails, and every message is delivered once it succeeds.
func TestIntegrationHandlerFailsFirstN(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{})
	const n, failures = 1000, 5
	var s *Source
	var ackedWhileFailing atomic.Uint64
	h := collector{fail: func(call int) error {
		if call <= failures {
			ackedWhileFailing.Add(s.Status().Acked)
			return fmt.Errorf("log unavailable (call %d)", call)
		}
		return nil
	}}
	var err error
	s, err = New(testConfig(mq.URL(), "it-fail", "sensors/#", 1), &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	publish(t, mq.URL(), "sensors/x", 1, 0, n)
	eventually(t, 30*time.Second, func() error {
		if d := distinct(h.snapshot()); d != n {
			return fmt.Errorf("got %d distinct; want %d", d, n)
		}
		return nil
	})
	if a := ackedWhileFailing.Load(); a != 0 {
		t.Errorf("got %d acknowledgements while the handler was failing; want 0", a)
	}
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Acked < n {
			return fmt.Errorf("got acked=%d; want >= %d", st.Acked, n)
		}
		return nil
	})
}

// TestIntegrationBrokerRestartLosesNoQoS1: a broker restart (with
// persistence) while messages are queued and in flight loses none.
func TestIntegrationBrokerRestartLosesNoQoS1(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{})
	const n = 2000
	h := collector{block: make(chan struct{})}
	s, err := New(testConfig(mq.URL(), "it-restart", "sensors/#", 1), &h)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitConnected(t, s)
	publish(t, mq.URL(), "sensors/x", 1, 0, n) // all stored by the broker
	eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Received == 0 {
			return errors.New("nothing received yet")
		}
		return nil
	})
	mq.Restart()
	close(h.block)
	eventually(t, 60*time.Second, func() error {
		if d := distinct(h.snapshot()); d != n {
			return fmt.Errorf("got %d distinct; want %d (status %+v)", d, n, s.Status())
		}
		return nil
	})
	if st := s.Status(); st.Connects < 2 {
		t.Errorf("got %d connects; want at least 2 (the restart must have been noticed)", st.Connects)
	}
}

// TestIntegrationRedeliveriesAreFlaggedDuplicate: messages sent but not
// acknowledged come back with Duplicate set; dropping them is the log's job.
func TestIntegrationRedeliveriesAreFlaggedDuplicate(t *testing.T) {
	mq := mosquittotest.Start(t, mosquittotest.Options{})
	cfg := testConfig(mq.URL(), "it-dup", "sensors/#", 1)
	cfg.DrainTimeout = 0
	failing := collector{fail: func(int) error { return errors.New("refuse") }}
	s1, err := New(cfg, &failing)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runSource(t, s1)
	waitConnected(t, s1)
	const n = 100
	publish(t, mq.URL(), "sensors/x", 1, 0, n)
	eventually(t, 10*time.Second, func() error {
		if st := s1.Status(); st.Received == 0 {
			return errors.New("nothing received yet")
		}
		return nil
	})
	stop1()
	firstRun := s1.Status().Received

	_, dups := resumeSource(t, cfg, n, 30*time.Second)
	t.Logf("first run received %d (unacknowledged); second run saw %d flagged Duplicate", firstRun, dups)
	// Every message the first run received comes back flagged, and so may
	// those the broker had sent that were still in the socket when it
	// stopped: at most mosquitto's in-flight window (max_inflight_messages,
	// 20 by default). Nothing sent only to the second run is flagged.
	const window = 20
	if dups == 0 || uint64(dups) < firstRun || dups > window {
		t.Errorf("got %d Duplicate messages; want between %d (received by the first run) and %d (the broker's in-flight window)", dups, max(firstRun, 1), window)
	}
}
