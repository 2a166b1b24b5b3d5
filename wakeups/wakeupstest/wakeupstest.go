// Package wakeupstest is the contract of the realtime hubs' wake-ups: one
// suite that they pass on one Redis server and on a Redis Cluster, the way
// eventstore/storetest is the event store's.
package wakeupstest

import (
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/wakeups"
)

// Backend is where the instances of one test meet.
type Backend struct {
	// Instance starts the wake-ups of another instance of the service (a
	// client of its own), closed when the test ends.
	Instance func() *wakeups.Wakeups
}

// Setup returns a fresh backend for t.
type Setup func(t *testing.T) Backend

// Redis is the backend on srv (one server or a cluster).
func Redis(t *testing.T, srv redistest.Server) Backend {
	return Backend{Instance: func() *wakeups.Wakeups {
		w := wakeups.New(srv.OpenUp(t, nil))
		t.Cleanup(w.Close)
		return w
	}}
}

// Run runs the suite against setup.
func Run(t *testing.T, setup Setup) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"SubscribingDeliversAResync", subscribingDeliversAResync},
		{"AnnouncementsReachTheOthersOnly", announcementsReachTheOthersOnly},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, setup(t)) })
	}
}

// receive returns the next wake-up of w, or fails t after d.
func receive(t *testing.T, w *wakeups.Wakeups, d time.Duration) eventstore.Position {
	t.Helper()
	select {
	case pos := <-w.Wakeups():
		return pos
	case <-time.After(d):
		t.Fatalf("no wake-up within %v", d)
		return eventstore.Position{}
	}
}

// Once subscribed, an instance is woken with the zero position:
// announcements may have been lost before, read the log from where you
// are.
func subscribingDeliversAResync(t *testing.T, b Backend) {
	w := b.Instance()
	if pos := receive(t, w, 10*time.Second); !pos.IsZero() {
		t.Fatalf("first wake-up %v, want the zero position (resync)", pos)
	}
}

// A position announced by one instance wakes every other instance with
// that position (the newest of several announced at once), never the
// announcer.
func announcementsReachTheOthersOnly(t *testing.T, be Backend) {
	a, b, c := be.Instance(), be.Instance(), be.Instance()
	for _, w := range []*wakeups.Wakeups{a, b, c} {
		receive(t, w, 10*time.Second) // subscribed
	}
	want := eventstore.Position{Commit: 42, Seq: 7}
	a.Announce(eventstore.Position{Commit: 40, Seq: 1})
	a.Announce(want)
	a.Announce(eventstore.Position{Commit: 41, Seq: 3}) // older: coalesced away or delivered before
	for name, w := range map[string]*wakeups.Wakeups{"b": b, "c": c} {
		var got []eventstore.Position
		for len(got) == 0 || got[len(got)-1] != want {
			pos := receive(t, w, 10*time.Second)
			if pos.IsZero() {
				continue // a resubscription
			}
			if pos != want && !pos.Less(want) {
				t.Fatalf("%s was woken with %v, never announced", name, pos)
			}
			got = append(got, pos)
		}
	}
	select {
	case pos := <-a.Wakeups():
		if !pos.IsZero() {
			t.Fatalf("the announcer was woken with its own position %v", pos)
		}
	case <-time.After(200 * time.Millisecond):
	}
}
