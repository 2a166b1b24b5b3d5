package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond every 5 ms until it holds, failing the test after
// 30 s (generous: the machine may be loaded) with "timed out waiting for
// what".
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, 30*time.Second, what, cond)
}

// WaitForWithin is WaitFor with the deadline d.
func WaitForWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitUntil(t, d, what, func() (bool, error) { return cond(), nil })
}

// WaitUntil polls cond every 5 ms until it reports true, failing the test
// at once when it returns an error, and after d with "timed out waiting
// for what".
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("wait for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%v)", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
