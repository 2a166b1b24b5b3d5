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

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults/faultstest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// logBuffer collects a logger's output for the test to read.
type logBuffer struct{ testenv.SyncBuffer }

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// The log lines of an outage of component (faults.Outage's).
func outageStarted(component string) string { return component + ": a dependency is unavailable" }
func outageEnded(component string) string   { return component + ": recovered" }

// deadLetters counts the rows of processor_dead_letters.
func deadLetters(t testing.TB, b backend) int {
	t.Helper()
	var n int
	if err := b.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_dead_letters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// readyWatch polls the schedule runner's readiness until the test ends and
// remembers the first failure: a projection must never be failed by a
// transient fault (degraded, retrying by itself, is what it should be).
type readyWatch struct {
	mu     sync.Mutex
	failed error
}

func watchReady(t testing.TB, r *running) *readyWatch {
	w := &readyWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// Ready also names degraded projections (retrying by
			// themselves), which an outage rightly makes them.
			if err := r.p.Runner().Ready(ctx); err != nil && strings.Contains(err.Error(), "projections failed") {
				w.mu.Lock()
				if w.failed == nil {
					w.failed = err
				}
				w.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *readyWatch) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// caughtUp waits until the processor has completed everything due by the
// clock in the queues of players (read from their streams, not from the
// schedule, which may lag), failing at once, with the cause, should the
// schedule projection have failed.
func caughtUp(t testing.TB, b backend, clock *ManualClock, w *readyWatch, players []string, what string) {
	t.Helper()
	testenv.WaitUntil(t, waitDeadline, what, func() (bool, error) {
		if err := w.err(); err != nil {
			return false, fmt.Errorf("the schedule projection failed: %w", err)
		}
		for _, player := range players {
			if !upToDate(b, player, clock.Now()) {
				return false, nil
			}
		}
		return true, nil
	})
}

// upToDate reports whether player's queue has no repetition due at or
// before now still running (false while the database cannot be read).
func upToDate(b backend, player string, now time.Time) bool {
	recs, err := b.Store.ReadStream(context.Background(), domain.PlayerID(player).Stream(), 1, 0)
	if err != nil {
		return false
	}
	q := domain.NewQueue(domain.PlayerID(player), domain.Rules{})
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil || q.Apply(e) != nil {
			return false
		}
	}
	rep, ok := q.Repetition()
	return !ok || !q.Running() || rep.DueAt.After(now)
}

// names returns n player names with prefix.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// PostgreSQL goes away (a TCP proxy between the processor and the shared
// server refuses connections) between batches while repetitions fall due.
// The due loop logs one line when the outage starts and one when it ends
// (not one per failed attempt), tells the Observer (degraded, then not;
// every failed attempt counted), keeps trying with its backoff, and
// completes everything that fell due meanwhile once PostgreSQL is back,
// each repetition once, with the rules' rewards.
func TestDueLoopOutageIsLoggedOnce(t *testing.T) {
	url := teststore.PostgresURL(t)
	proxied, proxy := testenv.ProxyPostgres(t, url)
	b := testreadside.Postgres(t, proxied, 3)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b, clock, rules)
	tasks := [][2]any{{"chop-wood", 20}}
	ps := names("l", 5)
	for i := range 5 {
		enqueue(t, h, fmt.Sprintf("l%02d", i), "chop-wood", 20)
	}
	var logs logBuffer
	rec := faultstest.NewRecorder()
	r := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), ErrorBackoffMax: time.Second, Observer: rec, Logger: logs.logger()})
	w := watchReady(t, r)
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	clock.Advance(10 * time.Second)
	caughtUp(t, b, clock, w, ps, "the first 10 s")

	proxy.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			proxy.Start(t)
		}
	})
	clock.Advance(30 * time.Second)
	const loop = "processor due loop"
	testenv.WaitUntil(t, waitDeadline, "several failed attempts of the due loop", func() (bool, error) { return rec.Errors(loop) >= 4, nil })
	proxy.Start(t)
	restarted = true
	caughtUp(t, b, clock, w, ps, "the 30 s due during the outage")
	testenv.WaitUntil(t, waitDeadline, "the end of the outage", func() (bool, error) { return logs.count(outageEnded(loop)) > 0, nil })

	if n, m := logs.count(outageStarted(loop)), logs.count(outageEnded(loop)); n != 1 || m != 1 {
		t.Errorf("%d lines for the start and %d for the end of one outage of the due loop, want 1 and 1:\n%s", n, m, logs.String())
	}
	if got := rec.Transitions(loop); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("the Observer heard degraded %v, want true then false", got)
	}
	for i := range 5 {
		player := fmt.Sprintf("l%02d", i)
		got, recs := readQueue(t, b, player, rules)
		if c := checkCompletionsOnTime(t, player, recs); c != 13 {
			t.Errorf("%s: %d repetitions completed, want 13 (40 s of 3 s repetitions)", player, c)
		}
		if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
			t.Errorf("%s: %v", player, err)
		}
	}
	// The schedule's runner tells the same Observer.
	testenv.WaitUntil(t, waitDeadline, "the schedule projection's outage to reach the Observer and end", func() (bool, error) {
		got := rec.Transitions("projection " + ScheduleName)
		return len(got) >= 2 && got[0] && !got[len(got)-1], nil
	})
	t.Logf("%d failed attempts of the due loop during the outage; the Observer heard the schedule projection degraded %v",
		rec.Errors(loop), rec.Transitions("projection "+ScheduleName))
}

// A partitioned database (connections held open, nothing answered) does
// not hold the due loop: each of its calls runs out of QueryTimeout and
// counts as a transient failure, and the loop resumes once the partition
// heals.
func TestDueLoopPartitionRunsOutOfQueryTimeout(t *testing.T) {
	url := testenv.StartPostgresServer(t).URL() // a partition holds back the whole server's horizon
	proxied, proxy := testenv.ProxyPostgres(t, url)
	b := testreadside.Postgres(t, proxied, 3)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b, clock, rules)
	enqueue(t, h, "m00", "chop-wood", 10)
	ps := []string{"m00"}
	var logs logBuffer
	rec := faultstest.NewRecorder()
	r := start(t, b, Config{Clock: clock, Commands: commandConfig(rules), QueryTimeout: 300 * time.Millisecond,
		ErrorBackoffMax: 500 * time.Millisecond, Observer: rec, Logger: logs.logger()})
	w := watchReady(t, r)
	clock.Advance(4 * time.Second)
	caughtUp(t, b, clock, w, ps, "the first repetition")

	proxy.Partition()
	healed := false
	t.Cleanup(func() {
		if !healed {
			proxy.Heal()
		}
	})
	clock.Advance(10 * time.Second) // wakes the loop into the partition
	const loop = "processor due loop"
	partitioned := time.Now()
	testenv.WaitUntil(t, waitDeadline, "the due loop's calls to run out of time", func() (bool, error) { return rec.Errors(loop) >= 3, nil })
	t.Logf("3 calls of the due loop ran out of time within %s of the partition", time.Since(partitioned).Round(time.Millisecond))
	if logs.count(outageStarted(loop)) != 1 {
		t.Errorf("no outage logged by the due loop:\n%s", logs.String())
	}
	proxy.Heal()
	healed = true
	caughtUp(t, b, clock, w, ps, "the repetitions due during the partition")
	_, recs := readQueue(t, b, "m00", rules)
	if c := checkCompletionsOnTime(t, "m00", recs); c != 4 {
		t.Errorf("%d repetitions completed, want 4", c)
	}
}

// PostgreSQL goes away in the middle of a command (the next append cuts
// it) for longer than the Retry middleware's whole schedule. The command
// is retried until PostgreSQL is back instead of being dead-lettered: a
// transient failure is never recorded as the command's. In the end
// processor_dead_letters is empty and every repetition completed once, at
// its due time, with the rules' rewards.
func TestTransientCommandFailuresAreNotDeadLettered(t *testing.T) {
	backendsThroughProxy(t, func(t *testing.T, b backend, proxy *testenv.TCPProxy, client *redis.Client, prefix string) {
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		h := commands(t, b, clock, rules)
		const players = 6
		ps := names("o", players)
		tasks := [][2]any{{"chop-wood", 20}, {"saw-planks", 10}}
		for i := range players {
			for _, tk := range tasks {
				enqueue(t, h, fmt.Sprintf("o%02d", i), tk[0].(string), tk[1].(int))
			}
		}
		var logs logBuffer
		cutter := &cuttingStore{Store: b.Store}
		b.Store = cutter
		// The Retry middleware's schedule: 3 retries, 50 ms doubling, about
		// 350 ms in all; the outage lasts 3 s.
		cfg := Config{Clock: clock, Commands: commandConfig(rules), MaxRetries: 3, RetryInitial: 50 * time.Millisecond,
			RetryMax: 200 * time.Millisecond, ErrorBackoffMax: time.Second, Logger: logs.logger(), Partitions: 2}
		if client != nil {
			cfg.Redis, cfg.TopicPrefix = client, prefix
		}
		r := start(t, b, cfg)
		w := watchReady(t, r)
		clock.Advance(10 * time.Second)
		caughtUp(t, b, clock, w, ps, "the first 10 s")

		var down atomic.Bool
		t.Cleanup(func() {
			if down.Load() {
				proxy.Start(t)
			}
		})
		cutter.arm(func() { down.Store(true); proxy.Stop() })
		clock.Advance(10 * time.Minute)
		testenv.WaitUntil(t, waitDeadline, "the cut command to be retried", func() (bool, error) { return cutter.failed.Load() >= 2, nil })
		time.Sleep(3 * time.Second)
		proxy.Start(t)
		down.Store(false)
		testenv.WaitUntil(t, waitDeadline, "every queue to finish (or a dead letter)", func() (bool, error) {
			if deadLetters(t, b) > 0 {
				return true, nil
			}
			for _, p := range ps {
				if done, _ := queueDone(t, b, p, rules)(); !done {
					return false, nil
				}
			}
			return true, nil
		})
		if n := deadLetters(t, b); n != 0 {
			dl, _ := r.p.DeadLetters().List(context.Background(), 10, true)
			var why []string
			for _, d := range dl {
				why = append(why, d.Command+": "+d.Error)
			}
			t.Fatalf("%d dead letters after a transient outage, want none: %q", n, why)
		}
		for i := range players {
			player := fmt.Sprintf("o%02d", i)
			got, recs := readQueue(t, b, player, rules)
			if c := checkCompletionsOnTime(t, player, recs); c != 30 {
				t.Errorf("%s: %d repetitions completed, want 30", player, c)
			}
			if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
				t.Errorf("%s: %v", player, err)
			}
		}
		if err := w.err(); err != nil {
			t.Errorf("the schedule projection failed: %v", err)
		}
		t.Logf("%d loads or appends failed during the outage; %d outage lines of the commands", cutter.failed.Load(), logs.count(outageStarted("processor commands")))
	})
}

// backendsThroughProxy runs f on PostgreSQL through a proxy of its own,
// with the commands on the in-process GoChannel and on Redis streams
// (client and prefix nil and "" for the GoChannel).
func backendsThroughProxy(t *testing.T, f func(t *testing.T, b backend, proxy *testenv.TCPProxy, client *redis.Client, prefix string)) {
	for _, transport := range []string{"gochannel", "redis"} {
		t.Run(transport, func(t *testing.T) {
			var client *redis.Client
			var prefix string
			if transport == "redis" {
				_, prefix, client = teststore.Redis(t)
				prefix += "tq"
			}
			url := teststore.PostgresURL(t)
			proxied, proxy := testenv.ProxyPostgres(t, url)
			f(t, testreadside.Postgres(t, proxied, 3), proxy, client, prefix)
		})
	}
}

// databaseFault is one way the processor's database goes away: refused
// (the proxy stopped: connections cut, new ones refused) or partitioned
// (connections held open, nothing forwarded), for length, rounds times.
type databaseFault struct {
	name      string
	rounds    int
	length    time.Duration
	partition bool
}

var databaseFaults = []databaseFault{
	{"refused-1s-x10", 10, time.Second, false},
	{"refused-15s", 1, 15 * time.Second, false},
	{"refused-60s", 1, 60 * time.Second, false},
	{"partitioned-1s-x5", 5, time.Second, true},
	{"partitioned-15s", 1, 15 * time.Second, true},
}

// The processor's PostgreSQL is cut, in every way of databaseFaults, with
// its commands on the GoChannel and on Redis, and on the GoChannel with the
// queue cache shared with an API's handlers (Config.Queues, as in
// `taskqueue serve`), each case in parallel (the
// longest, 60 s refused, sets the wall time). Every round's fault starts
// in the middle of a command (its append cuts the database) while more
// repetitions fall due. After each round the processor completes all that
// is due without a restart; in the end every repetition completed exactly
// once at its due time with the rules' rewards, nothing was dead-lettered,
// and the schedule projection was never failed.
func TestDatabaseFaultsProcessorResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts the database for up to 60 s")
	}
	t.Parallel() // with the other long fault tests
	for _, f := range databaseFaults {
		for _, transport := range []string{"gochannel", "redis", "gochannel-shared"} {
			t.Run(f.name+"/"+transport, func(t *testing.T) {
				t.Parallel()
				runDatabaseFault(t, f, transport == "redis", transport == "gochannel-shared")
			})
		}
	}
}

func runDatabaseFault(t *testing.T, f databaseFault, withRedis, shared bool) {
	var client *redis.Client
	var prefix string
	if withRedis {
		_, prefix, client = teststore.Redis(t)
		prefix += "tq"
	}
	var url string
	if f.partition {
		// A partition may hold a transaction open, and with it the
		// horizon of every subscription on the server until it heals:
		// not the shared server's.
		url = testenv.StartPostgresServer(t).URL()
	} else {
		url = teststore.PostgresURL(t)
	}
	proxied, proxy := testenv.ProxyPostgres(t, url)
	b := testreadside.Postgres(t, proxied, 3)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b, clock, rules)
	const players = 4
	ps := names("d", players)
	// 10 s of repetitions fall due per round, plus a round after the last.
	chops := (f.rounds+1)*10/3 + 2
	tasks := [][2]any{{"chop-wood", chops}, {"saw-planks", 2}}
	for i := range players {
		for _, tk := range tasks {
			enqueue(t, h, fmt.Sprintf("d%02d", i), tk[0].(string), tk[1].(int))
		}
	}
	var logs logBuffer
	cutter := &cuttingStore{Store: b.Store}
	b.Store = cutter
	cfg := Config{Clock: clock, Commands: commandConfig(rules), Partitions: 2, Logger: logs.logger()}
	if client != nil {
		cfg.Redis, cfg.TopicPrefix = client, prefix
	}
	var api *command.Handlers
	if shared {
		var err error
		if api, err = command.NewHandlers(cutter, command.Config{Rules: rules, Clock: clock.Now, Optimistic: true}); err != nil {
			t.Fatal(err)
		}
		cfg.Queues = api.Queues
	}
	r := start(t, b, cfg)
	w := watchReady(t, r)
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	var down atomic.Bool
	t.Cleanup(func() { // the processor stops after the database is back
		if down.Load() {
			proxy.Heal()
			proxy.Start(t)
		}
	})
	cut := func() {
		down.Store(true)
		if f.partition {
			proxy.Partition()
		} else {
			proxy.Stop()
		}
	}
	restore := func() {
		if f.partition {
			proxy.Heal()
		} else {
			proxy.Start(t)
		}
		down.Store(false)
	}
	for round := range f.rounds {
		before := cutter.failed.Load()
		cutter.arm(cut)
		clock.Advance(10 * time.Second)
		testenv.WaitUntil(t, waitDeadline, "the fault to hit a command", func() (bool, error) { return down.Load(), nil })
		time.Sleep(f.length)
		restore()
		caughtUp(t, b, clock, w, ps, fmt.Sprintf("round %d: what fell due", round+1))
		if cutter.failed.Load() == before && !f.partition {
			t.Errorf("round %d: no load or append failed: the fault missed the commands", round+1)
		}
	}
	// The queues keep advancing after the fault.
	clock.Advance(10 * time.Second)
	caughtUp(t, b, clock, w, ps, "the 10 s after the last fault")
	for i := range players {
		player := fmt.Sprintf("d%02d", i)
		got, recs := readQueue(t, b, player, rules)
		checkCompletionsOnTime(t, player, recs)
		if err := sameProgress(got, reference(t, player, rules, t0, clock.Now(), tasks)); err != nil {
			t.Errorf("%s: %v", player, err)
		}
		if api != nil {
			// The API's side of the shared cache is the stream's too.
			q, err := api.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: player})
			if err != nil || q.Version != recs[len(recs)-1].Version {
				t.Errorf("%s: the API's queue after the faults: version %d, %v; the stream is at %d", player, q.Version, err, recs[len(recs)-1].Version)
			}
		}
	}
	if n := deadLetters(t, b); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if err := w.err(); err != nil {
		t.Errorf("the schedule projection failed: %v", err)
	}
	t.Logf("%d loads or appends failed; outages logged: due loop %d, commands %d; stats %+v", cutter.failed.Load(),
		logs.count(outageStarted("processor due loop")), logs.count(outageStarted("processor commands")), r.p.Stats())
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

// AppendMany is how a batch of completions appends: armed, it cuts the
// database first, like Append.
func (c *cuttingStore) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	c.mu.Lock()
	cut, armed := c.cut, c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		cut()
	}
	outs, err := c.Store.AppendMany(ctx, appends)
	c.count(err, cut)
	return outs, err
}

// ReadStreams is how a batch loads its queues.
func (c *cuttingStore) ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error) {
	recs, err := c.Store.ReadStreams(ctx, reads, limit)
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	c.count(err, cut)
	return recs, err
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
