// Package ratelimittest is the contract of a rate limiter: one suite that
// every implementation runs unchanged (in-process, Redis, Redis Cluster),
// the way eventstore/storetest is the event store's.
package ratelimittest

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/ratelimit"
)

// Open returns a new limiter of cfg on the implementation under test, with
// no budget spent yet: the keys it counts are its own.
type Open func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter

// Run runs the suite against open.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Open)
	}{
		{"EachPlayerAndAddressHasItsBudget", eachPlayerAndAddressHasItsBudget},
		{"RefillsAtTheRate", refillsAtTheRate},
		{"NegativeRateDisables", negativeRateDisables},
		{"DefaultsApply", defaultsApply},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

// Each player and each address has its own budget; over it, the limiter
// refuses and says how long to wait (web answers 429 with Retry-After).
func eachPlayerAndAddressHasItsBudget(t *testing.T, open Open) {
	l := open(t, ratelimit.Config{
		Player: ratelimit.Rate{Per: 3, Period: time.Minute, Burst: 3},
		IP:     ratelimit.Rate{Per: 5, Period: time.Minute, Burst: 5},
	})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if ok, _ := l.AllowPlayer(ctx, "alice"); !ok {
			t.Fatalf("alice's command %d refused", i)
		}
	}
	if ok, retry := l.AllowPlayer(ctx, "alice"); ok || retry <= 0 || retry > 20*time.Second {
		t.Fatalf("alice's 4th command: allowed %v, retry after %v (want refused, about 20 s)", ok, retry)
	}
	if ok, _ := l.AllowPlayer(ctx, "bob"); !ok {
		t.Fatal("bob was refused for alice's commands")
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.AllowIP(ctx, "10.0.0.1"); !ok {
			t.Fatalf("command %d from 10.0.0.1 refused", i)
		}
	}
	if ok, retry := l.AllowIP(ctx, "10.0.0.1"); ok || retry <= 0 || retry > 12*time.Second {
		t.Fatalf("6th command from one address: allowed %v, retry after %v (want refused, about 12 s)", ok, retry)
	}
	if ok, _ := l.AllowIP(ctx, "10.0.0.2"); !ok {
		t.Fatal("another address was refused")
	}
	// A player and an address of the same name are counted apart.
	if ok, _ := l.AllowIP(ctx, "alice"); !ok {
		t.Fatal("the address \"alice\" was refused for the player alice's commands")
	}
}

// A refused key is allowed again once the retry it was told has passed,
// one command per interval: the budget refills at the rate, not at once.
func refillsAtTheRate(t *testing.T, open Open) {
	l := open(t, ratelimit.Config{Player: ratelimit.Rate{Per: 1, Period: time.Second, Burst: 2}})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if ok, _ := l.AllowPlayer(ctx, "alice"); !ok {
			t.Fatalf("command %d of the burst refused", i)
		}
	}
	ok, retry := l.AllowPlayer(ctx, "alice")
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("past the burst: allowed %v, retry after %v (want refused, at most 1 s)", ok, retry)
	}
	time.Sleep(retry + 50*time.Millisecond)
	if ok, retry := l.AllowPlayer(ctx, "alice"); !ok {
		t.Fatalf("refused again (retry after %v) once the retry passed", retry)
	}
	if ok, retry := l.AllowPlayer(ctx, "alice"); ok || retry <= 0 {
		t.Fatalf("the refill gave more than one command: allowed %v, retry %v", ok, retry)
	}
}

// A negative Per lifts that limit only.
func negativeRateDisables(t *testing.T, open Open) {
	l := open(t, ratelimit.Config{
		Player: ratelimit.Rate{Per: -1},
		IP:     ratelimit.Rate{Per: 2, Period: time.Hour, Burst: 2},
	})
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		if ok, retry := l.AllowPlayer(ctx, "alice"); !ok {
			t.Fatalf("command %d refused (retry %v) with the player limit disabled", i, retry)
		}
	}
	allowed := 0
	for i := 0; i < 5; i++ {
		if ok, _ := l.AllowIP(ctx, "10.0.0.1"); ok {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("the address limit allowed %d of 5, want 2", allowed)
	}
}

// A zero Config is 120 a minute in bursts of 20 per player and 600 in
// bursts of 60 per address: a run of commands gets the burst, plus what
// refilled while it ran (one per interval), and no more.
func defaultsApply(t *testing.T, open Open) {
	l := open(t, ratelimit.Config{})
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		allow    func(context.Context, string) (bool, time.Duration)
		burst    int
		interval time.Duration
	}{{"player", l.AllowPlayer, 20, 500 * time.Millisecond}, {"address", l.AllowIP, 60, 100 * time.Millisecond}} {
		start := time.Now()
		allowed := 0
		for i := 0; i < c.burst+20; i++ {
			ok, retry := c.allow(ctx, "someone")
			switch {
			case ok:
				allowed++
			case retry <= 0 || retry > c.interval:
				t.Fatalf("%s: refused with retry %v, want at most one interval (%v)", c.name, retry, c.interval)
			}
			if i < c.burst && !ok {
				t.Fatalf("%s: command %d of a default burst of %d refused", c.name, i, c.burst)
			}
		}
		most := c.burst + int(time.Since(start)/c.interval) + 1
		if allowed > most {
			t.Fatalf("%s: %d of %d commands allowed, want the burst of %d and at most %d with the refill", c.name, allowed, c.burst+20, c.burst, most)
		}
	}
}
