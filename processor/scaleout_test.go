package processor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// dueCount counts the schedule rows due at or before at.
func dueCount(b backend, at time.Time) (int, error) {
	var n int
	err := b.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule WHERE due_at <= $1`, at).Scan(&n)
	return n, err
}

// Several processors, each with its own pool (as separate processes), on
// one PostgreSQL schema, over thousands of repetitions: every player ends
// with exactly what the rules give, every repetition completed once at its
// due time.
func TestScaleOutNeverCompletesTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	url := testenv.Postgres(t)
	const instances, players = 3, 300
	var bs []backend
	for range instances {
		bs = append(bs, testreadside.Postgres(t, url, 4))
	}
	runScaleOut(t, bs, players)
}

// The same code path on SQLite, one process (two processors over one
// store, as two goroutines of one process would).
func TestScaleOutSQLite(t *testing.T) {
	b := testreadside.SQLite(t)
	runScaleOut(t, []backend{b, b}, 60)
}

func runScaleOut(t *testing.T, bs []backend, players int) {
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, bs[0], clock, rules)
	tasks := [][2]any{{"chop-wood", 9}, {"saw-planks", 3}, {"catch-shrimp", 4}, {"cook-shrimp", 3}}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range players {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, tk := range tasks {
				enqueue(t, h, fmt.Sprintf("p%04d", i), tk[0].(string), tk[1].(int))
			}
		}()
	}
	wg.Wait()
	var procs []*running
	for i, b := range bs {
		procs = append(procs, start(t, b, Config{Clock: clock, Commands: commandConfig(rules), Owner: fmt.Sprintf("instance-%d", i), BatchSize: 50}))
	}
	testenv.WaitUntil(t, waitDeadline, "the schedule to hold every player", func() (bool, error) {
		var n int
		err := bs[0].DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&n)
		return n == players, err
	})
	for step := 0; ; step++ {
		testenv.WaitUntil(t, waitDeadline, "every repetition due by now", func() (bool, error) {
			n, err := dueCount(bs[0], clock.Now())
			return n == 0, err
		})
		var left int
		if err := bs[0].DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if step > 200 {
			t.Fatalf("%d queues still running after %d steps", left, step)
		}
		clock.Advance(time.Second)
	}
	for i, p := range procs {
		t.Logf("instance %d: %+v", i, p.p.Stats())
	}
	total := 0
	for i := range players {
		player := fmt.Sprintf("p%04d", i)
		got, recs := readQueue(t, bs[0], player, rules)
		total += checkCompletionsOnTime(t, player, recs)
		if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
			t.Errorf("%s: %v", player, err)
		}
		if got.Len() != 0 {
			t.Errorf("%s: %d tasks left", player, got.Len())
		}
	}
	if want := players * 19; total != want {
		t.Errorf("%d repetitions completed, want %d", total, want)
	}
}

// A killed instance's claim holds until it expires, then another instance
// takes the repetition over. (An earlier version of this test planted the
// claim on a repetition the shared schedule did not show yet; claimDue
// rightly treats a claim on a repetition outside the schedule as stale —
// the schedule only moves forward and claims are taken from its rows — so
// the "live" claim was displaced at once.)
func TestExpiredClaimsAreTakenOver(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{
			Request: command.Request{PlayerID: "frank", Actor: "frank"}, Type: "chop-wood", Count: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		// An instance projects the schedule (frank's repetition, due at
		// t0+3s) and dies after claiming it until t0+8s.
		first := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), Owner: "first"})
		testenv.WaitUntil(t, waitDeadline, "frank's repetition in the schedule", func() (bool, error) {
			var n int
			err := b.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processor_schedule WHERE stream_id = 'queue-frank' AND number = 1`).Scan(&n)
			return n == 1, err
		})
		first.stop()
		clock.Advance(3 * time.Second)
		if err := b.DB.InTx(ctx, func(tx projectionsTx) error {
			_, err := tx.Exec(ctx, `INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at) VALUES ('queue-frank', $1, 1, 'killed', $2)`,
				string(res.Task.TaskID), clock.Now().Add(5*time.Second))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		second := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), Owner: "survivor"})
		// Within the claim nothing may complete, however long the survivor
		// polls.
		clock.Advance(time.Second)
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if q, _ := readQueue(t, b, "frank", rules); q.Len() != 1 {
				t.Fatalf("completed while another instance's claim held: %+v", q.View())
			}
		}
		var owner string
		if err := b.DB.QueryRow(ctx, `SELECT owner FROM processor_claims WHERE stream_id = 'queue-frank'`).Scan(&owner); err != nil || owner != "killed" {
			t.Fatalf("the live claim is %q (%v), want killed's", owner, err)
		}
		// Past its expiry the survivor takes it over and completes it at its
		// due time.
		clock.Advance(5 * time.Second)
		testenv.WaitUntil(t, waitDeadline, "the take-over", queueDone(t, b, "frank", rules))
		// The survivor counts its completion after the append the queue
		// already shows.
		testenv.WaitUntil(t, waitDeadline, "the survivor to count its completion", func() (bool, error) {
			return second.p.Stats().Completed == 1, nil
		})
		_, recs := readQueue(t, b, "frank", rules)
		checkCompletionsOnTime(t, "frank", recs)
	})
}
