package processor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// queueDone reports whether the player's queue has no tasks left.
func queueDone(t testing.TB, b backend, player string, rules domain.Rules) func() (bool, error) {
	return func() (bool, error) {
		q, _ := readQueue(t, b, player, rules)
		return q.Len() == 0, nil
	}
}

// The README's chain, with the clock moving in small steps: every
// repetition completes once, at its due time, with the rules' rewards.
func TestChainCompletesOnTime(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules)})
		h := commands(t, b, clock, rules)
		tasks := [][2]any{{"chop-wood", 10}, {"saw-planks", 5}, {"mine-copper", 3}, {"mine-tin", 3}, {"smelt-bronze", 3}}
		for _, tk := range tasks {
			enqueue(t, h, "alice", tk[0].(string), tk[1].(int))
		}
		end := t0
		for step := 0; ; step++ {
			q, _ := readQueue(t, b, "alice", rules)
			if q.Len() == 0 {
				break
			}
			if step > 500 {
				t.Fatalf("queue not done after %d steps: %+v", step, q.View())
			}
			// Wait until the processor has caught up with the clock, then move it.
			testenv.WaitUntil(t, waitDeadline, "the repetitions due by now", func() (bool, error) {
				q, _ := readQueue(t, b, "alice", rules)
				rep, ok := q.Repetition()
				return !ok || rep.DueAt.After(clock.Now()), nil
			})
			clock.Advance(700 * time.Millisecond)
			end = clock.Now()
		}
		got, recs := readQueue(t, b, "alice", rules)
		if n := checkCompletionsOnTime(t, "alice", recs); n != 24 {
			t.Errorf("%d repetitions completed, want 24", n)
		}
		if err := sameProgress(got, reference(t, "alice", rules, t0, end, tasks)); err != nil {
			t.Error(err)
		}
		if got.Inventory()["bronze-bar"] != 3 || got.Inventory()["planks"] != 5 {
			t.Errorf("inventory %v, want 3 bronze bars and 5 planks", got.Inventory())
		}
	})
}

// Offline progress: the clock jumps an hour ahead; every repetition that
// fell due completes, in order, at its due time.
func TestOfflineProgressAfterAJump(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		tasks := [][2]any{{"chop-wood", 300}, {"saw-planks", 100}}
		enqueue(t, h, "bob", "chop-wood", 300)
		enqueue(t, h, "bob", "saw-planks", 100)
		clock.Advance(time.Hour)
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules)})
		testenv.WaitUntil(t, waitDeadline, "bob's queue to finish", queueDone(t, b, "bob", rules))
		got, recs := readQueue(t, b, "bob", rules)
		if n := checkCompletionsOnTime(t, "bob", recs); n != 400 {
			t.Errorf("%d repetitions completed, want 400", n)
		}
		if err := sameProgress(got, reference(t, "bob", rules, t0, clock.Now(), tasks)); err != nil {
			t.Error(err)
		}
	})
}

// Beyond the offline cap, the queue gets OfflineCap of progress after the
// due time it stopped at, and stops there with a reason the player sees.
func TestOfflineCapStopsTheQueue(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		enqueue(t, h, "carol", "chop-wood", 1000)
		clock.Advance(3 * time.Hour)
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules), OfflineCap: 10 * time.Minute})
		testenv.WaitUntil(t, waitDeadline, "carol's queue to stop", func() (bool, error) {
			q, _ := readQueue(t, b, "carol", rules)
			return !q.Running(), nil
		})
		got, recs := readQueue(t, b, "carol", rules)
		view := got.View()
		if !strings.Contains(view.StoppedReason, "offline progress is capped") {
			t.Errorf("stopped reason %q", view.StoppedReason)
		}
		checkCompletionsOnTime(t, "carol", recs)
		// The rules: the first repetition was due at t0+3s; progress runs
		// until 10 minutes after that, then the queue stops.
		until := t0.Add(3*time.Second + 10*time.Minute)
		want := reference(t, "carol", rules, t0, until, [][2]any{{"chop-wood", 1000}})
		if err := sameProgress(got, want); err != nil {
			t.Error(err)
		}
		if got.Inventory()["logs"] < 190 || got.Inventory()["logs"] > 220 {
			t.Errorf("%d logs after 10 minutes of 3-second repetitions", got.Inventory()["logs"])
		}
		last := recs[len(recs)-1]
		if last.Type != string(domain.TypeQueueStopped) || !last.Metadata.OccurredAt.Equal(until) {
			t.Errorf("last event %s at %s, want QueueStopped at %s", last.Type, last.Metadata.OccurredAt, until)
		}
	})
}

// A queue that offline progress drains before the cap is left idle, not
// stopped: it has nothing to hold back, and a stopped empty queue would
// not run the next task the player adds.
func TestOfflineCapLeavesADrainedQueueIdle(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		enqueue(t, h, "dora", "chop-wood", 5)
		clock.Advance(3 * time.Hour)
		p, err := New(Config{Store: b.Store, DB: b.DB, Clock: clock, Commands: commandConfig(rules), OfflineCap: 10 * time.Minute, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		stop := &StopOfflineQueue{PlayerID: "dora", TaskID: "t", Number: 1, Until: t0.Add(3*time.Second + 10*time.Minute), Reason: "capped", CorrelationID: "c"}
		if err := p.handleStop(context.Background(), stop); err != nil {
			t.Fatal(err)
		}
		got, _ := readQueue(t, b, "dora", rules)
		if got.Len() != 0 || !got.Running() || got.View().StoppedReason != "" {
			t.Errorf("after the cap: %d tasks, running %v, stopped reason %q; want the 5 repetitions done and the queue idle", got.Len(), got.Running(), got.View().StoppedReason)
		}
		if got.Inventory()["logs"] != 5 {
			t.Errorf("%d logs, want 5", got.Inventory()["logs"])
		}
	})
}

// A real restart: one processor runs, stops, the clock moves on while
// nothing runs, a new processor on the same store catches up.
func TestRestartCatchesUp(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		tasks := [][2]any{{"mine-copper", 50}, {"mine-tin", 50}, {"smelt-bronze", 50}}
		for _, tk := range tasks {
			enqueue(t, h, "dave", tk[0].(string), tk[1].(int))
		}
		first := start(t, b, Config{Clock: clock, Commands: commandConfig(rules)})
		clock.Advance(30 * time.Second)
		testenv.WaitUntil(t, waitDeadline, "the first repetitions", func() (bool, error) {
			q, _ := readQueue(t, b, "dave", rules)
			return q.Inventory()["copper-ore"] >= 9, nil
		})
		first.stop()
		clock.Advance(2 * time.Hour)
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules)})
		testenv.WaitUntil(t, waitDeadline, "dave's queue to finish", queueDone(t, b, "dave", rules))
		got, recs := readQueue(t, b, "dave", rules)
		if n := checkCompletionsOnTime(t, "dave", recs); n != 150 {
			t.Errorf("%d repetitions completed, want 150", n)
		}
		if err := sameProgress(got, reference(t, "dave", rules, t0, clock.Now(), tasks)); err != nil {
			t.Error(err)
		}
		if got.Inventory()["bronze-bar"] != 50 {
			t.Errorf("inventory %v, want 50 bronze bars", got.Inventory())
		}
	})
}

// A task type removed from the catalog while queued fails with a reason
// when its turn comes, and the queue moves on.
func TestRemovedTaskTypeFailsAndTheQueueMovesOn(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		h := commands(t, b, clock, domain.Rules{})
		enqueue(t, h, "erin", "chop-wood", 2)
		enqueue(t, h, "erin", "cook-shrimp", 1)
		enqueue(t, h, "erin", "mine-copper", 2)
		// The new catalog has no cooking (nothing else needs it).
		reduced := catalogWithout(t, "cook-shrimp")
		rules := domain.Rules{Catalog: reduced}
		clock.Advance(time.Minute)
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules)})
		testenv.WaitUntil(t, waitDeadline, "erin's queue to finish", queueDone(t, b, "erin", rules))
		got, recs := readQueue(t, b, "erin", rules)
		var reason string
		for _, r := range recs {
			if r.Type == string(domain.TypeTaskFailed) {
				e, _ := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
				reason = e.(domain.TaskFailed).Reason
			}
		}
		if !strings.Contains(reason, "no longer in the catalog") {
			t.Errorf("failure reason %q", reason)
		}
		if inv := got.Inventory(); inv["logs"] != 2 || inv["copper-ore"] != 2 {
			t.Errorf("inventory %v, want 2 logs and 2 copper ore", inv)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Store is required") || !strings.Contains(err.Error(), "DB is required") {
		t.Fatalf("New(Config{}) = %v, want both missing dependencies", err)
	}
	b := testreadside.SQLite(t)
	_, err := New(Config{Store: b.Store, DB: b.DB, OfflineCap: time.Second, BatchSize: 20000})
	if err == nil || !strings.Contains(err.Error(), "OfflineCap") || !strings.Contains(err.Error(), "BatchSize") {
		t.Fatalf("err = %v, want OfflineCap and BatchSize reported together", err)
	}
}

// Graceful shutdown releases the instance's claims.
func TestShutdownReleasesClaims(t *testing.T) {
	b := testreadside.SQLite(t)
	clock := NewManualClock(t0)
	ctx := context.Background()
	if err := b.DB.InTx(ctx, func(tx projectionsTx) error {
		_, err := tx.Exec(ctx, `INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at) VALUES ('queue-x', 't', 1, 'me', $1)`, t0.Add(time.Hour))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := start(t, b, Config{Clock: clock, Owner: "me", Commands: commandConfig(domain.Rules{})})
	r.stop()
	var n int
	if err := b.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processor_claims WHERE owner = 'me'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d claims left after shutdown", n)
	}
}
