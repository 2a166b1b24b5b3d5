package processor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults/faultstest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// Redis, which carries the commands, goes away for a few seconds while
// repetitions fall due and comes back empty (a restart without persistence:
// the streams and their consumer groups are gone). The processor backs off
// while it cannot send and, once Redis answers, completes every repetition
// that fell due meanwhile, each once, at its due time. The log shows one
// line when Redis went and one when it was back — not the hundreds of
// ERROR lines that watermill-redisstream's subscribers log for their
// failed reads and claim rounds (two a second each) — and the Observer
// counts every failure meanwhile.
func TestRedisOutageCommandsResume(t *testing.T) {
	const players = 10
	tasks := [][2]any{{"chop-wood", 20}}
	o := startRedisOutage(t, "q", players)
	srv, b, clock, rules, r, rec := o.srv, o.b, o.clock, o.rules, o.r, o.rec
	logs := &o.logs
	caughtUp := func(what string) {
		t.Helper()
		testenv.WaitUntil(t, waitDeadline, what, func() (bool, error) {
			var n int
			if err := b.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&n); err != nil || n == 0 {
				return n == 0 && err == nil && clock.Now().Sub(t0) >= 60*time.Second, err
			}
			due, err := dueCount(b, clock.Now())
			return due == 0, err
		})
	}
	clock.Advance(10 * time.Second)
	caughtUp("the first 10 s")

	srv.Stop()
	clock.Advance(30 * time.Second)
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	const component = "processor redis"
	testenv.WaitUntil(t, waitDeadline, "the outage of Redis to be noticed", func() (bool, error) {
		return logs.count(outageStarted(component)) > 0, nil
	})
	// The queues keep advancing: the due loop runs its commands in this
	// process while Redis is away.
	caughtUp("the 30 s due while Redis is away")
	if err := r.p.Advancing(context.Background()); err != nil {
		t.Errorf("Advancing during the Redis outage = %v; want nil: the queues advance", err)
	}
	time.Sleep(5 * time.Second) // watermill-redisstream logged ~50 ERROR lines a second with 2 partitions
	srv.Start()
	clock.Advance(30 * time.Second) // the rest of the 60 s of work
	caughtUp("the rest")
	testenv.WaitUntil(t, waitDeadline, "the end of the outage", func() (bool, error) { return logs.count(outageEnded(component)) > 0, nil })
	if err := r.p.Advancing(context.Background()); err != nil {
		t.Errorf("Advancing after the Redis outage = %v; want nil", err)
	}
	time.Sleep(time.Second) // a late line would show

	if n, m := logs.count(outageStarted(component)), logs.count(outageEnded(component)); n != 1 || m != 1 {
		t.Errorf("%d lines for the start and %d for the end of one Redis outage, want 1 and 1", n, m)
	}
	if n := logs.count("level=ERROR"); n != 0 {
		t.Errorf("%d ERROR lines during a Redis outage, want none", n)
	}
	if got := rec.Transitions(component); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("the Observer heard degraded %v, want true then false", got)
	}
	if rec.Errors(component) < 10 {
		t.Errorf("the Observer counted %d failures during 5 s without Redis, want every failed read", rec.Errors(component))
	}
	t.Logf("%d log lines in all; %d failures counted during the outage", logs.count("\n"), rec.Errors(component))

	for i := range players {
		player := fmt.Sprintf("q%02d", i)
		got, recs := readQueue(t, b, player, rules)
		if c := checkCompletionsOnTime(t, player, recs); c != 20 {
			t.Errorf("%s: %d repetitions completed, want 20", player, c)
		}
		if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
			t.Errorf("%s: %v", player, err)
		}
	}
}

// Redis is down when the processor starts (its command router cannot
// create the streams' consumer groups): it keeps trying to start its
// command bus, with the Redis outage's backoff, and once Redis answers
// completes what is due, without a restart. (It used to return an error
// from Run, and the app carried on without a processor.)
func TestProcessorStartsWithoutRedis(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	b := testreadside.Postgres(t, "", 4)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b, clock, rules)
	enqueue(t, h, "s00", "chop-wood", 5)
	srv.Stop()
	var logs logBuffer
	r := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), Redis: client, TopicPrefix: "tq", Partitions: 2,
		ErrorBackoffMax: time.Second, Logger: logs.logger()})
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	testenv.WaitUntil(t, waitDeadline, "the processor to find Redis away", func() (bool, error) {
		return logs.count(outageStarted(redisComponent)) > 0, nil
	})
	time.Sleep(5 * time.Second) // the command router tries to subscribe meanwhile
	srv.Start()
	clock.Advance(20 * time.Second)
	testenv.WaitUntil(t, waitDeadline, "the queue to finish", queueDone(t, b, "s00", rules))
	_, recs := readQueue(t, b, "s00", rules)
	if c := checkCompletionsOnTime(t, "s00", recs); c != 5 {
		t.Errorf("%d repetitions completed, want 5", c)
	}
	// The handler counts a completion after its append: the queue can be
	// seen done a moment before.
	testenv.WaitUntil(t, waitDeadline, "this processor to count its completions", func() (bool, error) {
		return r.p.Stats().Completed > 0, nil
	})
}

// While Redis is away, the batches the due loop runs in this process
// (sendOrRun) do not end the Redis outage: it stays degraded, with no
// "recovered" line, until Redis answers again.
func TestBatchesRunHereDoNotEndTheRedisOutage(t *testing.T) {
	const players = 5
	o := startRedisOutage(t, "r", players)
	srv, b, clock, rec := o.srv, o.b, o.clock, o.rec
	logs := &o.logs
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	caughtUp := func(what string) {
		t.Helper()
		testenv.WaitUntil(t, waitDeadline, what, func() (bool, error) {
			for i := range players {
				if !upToDate(b, fmt.Sprintf("r%02d", i), clock.Now()) {
					return false, nil
				}
			}
			return true, nil
		})
	}
	clock.Advance(10 * time.Second)
	caughtUp("the first 10 s, through Redis")
	srv.Stop()
	const component = "processor redis"
	testenv.WaitUntil(t, waitDeadline, "the outage of Redis to be noticed", func() (bool, error) {
		return logs.count(outageStarted(component)) > 0, nil
	})
	clock.Advance(20 * time.Second)
	caughtUp("the 20 s due while Redis is away, run in this process")
	time.Sleep(500 * time.Millisecond) // a late line would show
	if n := logs.count(outageEnded(component)); n != 0 {
		t.Errorf("%d lines for the end of the Redis outage while Redis is away, want none", n)
	}
	if got := rec.Transitions(component); len(got) != 1 || !got[0] {
		t.Errorf("the Observer heard degraded %v while Redis is away, want [true]", got)
	}
}

// redisOutage is a processor on a redis-server of the test's own, with
// players (prefix00, prefix01, ...) each running a 20-repetition task.
type redisOutage struct {
	srv   *testenv.RedisServer
	b     testreadside.Backend
	clock *ManualClock
	rules domain.Rules
	r     *running
	rec   *faultstest.Recorder
	logs  logBuffer
}

func startRedisOutage(t *testing.T, prefix string, players int) *redisOutage {
	t.Helper()
	o := &redisOutage{srv: testenv.StartRedisServer(t), b: testreadside.Postgres(t, "", 6), clock: NewManualClock(t0), rec: faultstest.NewRecorder()}
	opts, err := redis.ParseURL(o.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	h := commands(t, o.b, o.clock, o.rules)
	for i := range players {
		enqueue(t, h, fmt.Sprintf("%s%02d", prefix, i), "chop-wood", 20)
	}
	o.r = start(t, o.b, Config{
		Clock: o.clock, Commands: commandConfig(o.rules), Redis: client, TopicPrefix: "tq", Partitions: 2,
		ErrorBackoffMax: time.Second, Logger: slog.New(slog.NewTextHandler(&o.logs, nil)), Observer: o.rec,
	})
	return o
}
