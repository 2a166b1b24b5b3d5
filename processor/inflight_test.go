package processor

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// gatedStore holds every AppendMany that writes to stream until gate
// closes (or the call's context ends).
type gatedStore struct {
	eventstore.Store
	stream string
	gate   chan struct{}
}

func (s gatedStore) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	for _, a := range appends {
		if a.Stream != s.stream {
			continue
		}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		break
	}
	return s.Store.AppendMany(ctx, appends)
}

// A repetition that falls due while a batch is still being sent goes out
// at once, not after that batch: the due loop claims again when the
// schedule commits, with a batch in flight (a cold start's catch-up
// commits its due rows batch by batch while the first ones are sent).
// Each repetition still completes once.
func TestDueLoopClaimsWhileABatchIsInFlight(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		if partitionOf("alice", 8) == partitionOf("bob", 8) {
			t.Fatal("alice and bob share a partition: bob's command would wait behind alice's")
		}
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		alice, err := domain.ParsePlayerID("alice")
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		gated := b
		gated.Store = gatedStore{Store: b.Store, stream: alice.Stream(), gate: gate}
		r := start(t, gated, Config{Clock: clock, Commands: commandConfig(rules)})
		enqueue(t, commands(t, b, clock, rules), "alice", "chop-wood", 1)
		clock.Advance(time.Hour) // alice's repetition is due: its batch waits at the gate
		testenv.WaitUntil(t, waitDeadline, "alice's completion sent", func() (bool, error) {
			return r.p.Stats().Sent == 1, nil
		})
		// Bob's repetition started an hour ago: due as soon as the
		// schedule holds it.
		enqueue(t, commands(t, b, NewManualClock(t0), rules), "bob", "chop-wood", 1)
		testenv.WaitUntil(t, 30*time.Second, "bob's completion sent while alice's batch is in flight", func() (bool, error) {
			return r.p.Stats().Sent == 2, nil
		})
		testenv.WaitUntil(t, waitDeadline, "bob's repetition completed", func() (bool, error) {
			return upToDate(b, "bob", clock.Now()), nil
		})
		close(gate)
		testenv.WaitUntil(t, waitDeadline, "alice's repetition completed", func() (bool, error) {
			return upToDate(b, "alice", clock.Now()), nil
		})
		for _, player := range []string{"alice", "bob"} {
			_, recs := readQueue(t, b, player, rules)
			if n := checkCompletionsOnTime(t, player, recs); n != 1 {
				t.Errorf("%s: %d repetitions completed, want 1", player, n)
			}
		}
	})
}
