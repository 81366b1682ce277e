// Package testkit holds helpers shared by the tests of several packages.
package testkit

import (
	"testing"
	"time"
)

// Eventually polls fn until it returns nil, failing the test with fn's last
// error when timeout passes first. It is how tests wait for an outcome: never
// with a fixed sleep.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}
