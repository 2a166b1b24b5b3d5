package processor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// logBuffer collects a logger's output for the test to read.
type logBuffer struct{ testenv.SyncBuffer }

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

// scheduleDue counts the schedule's rows due at or before at.
func scheduleDue(b backend, at time.Time) (int, error) {
	var n int
	err := b.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule WHERE due_at <= $1`, at).Scan(&n)
	return n, err
}

// PostgreSQL goes away twice while the processor runs (a TCP proxy between
// the processor and the shared server is closed, then reopened): once
// between batches (the due loop fails to claim and backs off), once inside
// a command (its append fails and the command is retried). The processor
// resumes on its own; in the end every repetition was completed exactly
// once, at its due time, and every player has exactly the rewards the
// rules give.
func TestDatabaseOutageBackOffAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for reconnections")
	}
	url := testenv.Postgres(t)
	proxied, proxy := testenv.ProxyPostgres(t, url)
	b := openPostgresAt(t, proxied, 6)  // the processor's own pool, through the proxy
	direct := openPostgresAt(t, url, 4) // the API's and the test's, never cut
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, direct, clock, rules)
	const players = 20
	tasks := [][2]any{{"chop-wood", 20}, {"saw-planks", 10}}
	for i := range players {
		for _, tk := range tasks {
			enqueue(t, h, fmt.Sprintf("o%02d", i), tk[0].(string), tk[1].(int))
		}
	}
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cutter := &cuttingStore{Store: b.store}
	b.store = cutter
	r := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), ErrorBackoffMax: time.Second, Logger: log})
	caughtUp := func(what string) {
		t.Helper()
		waitUntil(t, what, func() (bool, error) {
			var n int
			if err := direct.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&n); err != nil || n == 0 {
				return false, err
			}
			due, err := scheduleDue(direct, clock.Now())
			return due == 0, err
		})
	}
	backingOff := func(before int, what string) {
		t.Helper()
		waitUntil(t, what, func() (bool, error) { return logs.count("due loop: backing off") >= before+2, nil })
	}

	// Running normally.
	clock.Advance(10 * time.Second)
	caughtUp("the first 10 s")
	if r.p.Stats().Completed == 0 {
		t.Fatal("nothing completed before the outage")
	}

	// Should the test fail during an outage, PostgreSQL comes back before
	// the processor's stop (cleanups run last-in, first-out), which would
	// otherwise wait on it.
	var down atomic.Bool
	t.Cleanup(func() {
		if down.Load() {
			proxy.Start(t)
		}
	})
	// Outage between batches: 30 s fall due while PostgreSQL is away.
	down.Store(true)
	proxy.Stop()
	n := logs.count("due loop: backing off")
	clock.Advance(30 * time.Second)
	backingOff(n, "the due loop to fail and back off")
	proxy.Start(t)
	down.Store(false)
	caughtUp("the 30 s due during the first outage")

	// Outage in the middle of a command: the next append cuts PostgreSQL
	// before it runs, so that command fails and is retried while the
	// database is away.
	cutter.arm(func() { down.Store(true); proxy.Stop() })
	clock.Advance(10 * time.Minute)
	waitUntil(t, "the cut command to be retried", func() (bool, error) { return cutter.failed.Load() >= 2, nil })
	proxy.Start(t)
	down.Store(false)
	for i := range players {
		waitUntil(t, "every queue to finish", queueDone(t, direct, fmt.Sprintf("o%02d", i), rules))
	}

	completed := 0
	for i := range players {
		player := fmt.Sprintf("o%02d", i)
		got, recs := readQueue(t, direct, player, rules)
		c := checkCompletionsOnTime(t, player, recs)
		if c != 30 {
			t.Errorf("%s: %d repetitions completed, want 30", player, c)
		}
		completed += c
		if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
			t.Errorf("%s: %v", player, err)
		}
		if got.Inventory()["planks"] != 10 {
			t.Errorf("%s: inventory %v, want 10 planks", player, got.Inventory())
		}
	}
	if cutter.failed.Load() == 0 {
		t.Fatal("no load or append failed: the second outage did not hit a command")
	}
	var dead int
	if err := direct.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_dead_letters`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d repetitions completed once each across two outages; %d back-offs logged; %d loads or appends failed; %d dead letters; stats %+v",
		completed, logs.count("due loop: backing off"), cutter.failed.Load(), dead, r.p.Stats())
}

// cuttingStore is the processor's event store; once armed, the next
// Append first runs cut (the outage starts inside a command) and every
// failed load or append after that is counted (a retried command fails
// at its load while the database is away).
type cuttingStore struct {
	eventstore.Store
	mu     sync.Mutex
	cut    func()
	armed  bool
	failed atomic.Int64
}

func (c *cuttingStore) arm(cut func()) {
	c.mu.Lock()
	c.cut, c.armed = cut, true
	c.mu.Unlock()
}

func (c *cuttingStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	c.mu.Lock()
	cut, armed := c.cut, c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		cut()
	}
	res, err := c.Store.Append(ctx, stream, expected, events...)
	c.count(err, cut)
	return res, err
}

// ReadStream is how a command (and its retry) loads its queue: while the
// database is away a retry fails here, before reaching Append.
func (c *cuttingStore) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	recs, err := c.Store.ReadStream(ctx, stream, from, limit)
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	c.count(err, cut)
	return recs, err
}

// count counts err once an outage was armed.
func (c *cuttingStore) count(err error, cut func()) {
	if err != nil && cut != nil {
		c.failed.Add(1)
	}
}
