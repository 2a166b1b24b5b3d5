package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// BenchmarkDueAtOnce measures, on PostgreSQL with the real clock, N players
// whose one repetition falls due at the same instant: the processor
// completing them, and in the same round River v0.51.2 tuned for latency
// (riverLatencyConfig) running one job per player scheduled at that
// instant, each job INSERTing one event-shaped row (autocommit, the
// server's default durability, like the processor's appends). Warm: the
// processor (River's client) runs before the instant; cold: it starts
// after it (the processor builds its schedule from the log first).
// Throughput = N / (last commit − due instant); lateness = commit − due.
// Players: TASKQUEUE_BENCH_DUE_PLAYERS (default "1000,10000"). The
// processor's Partitions and BatchSize: TASKQUEUE_BENCH_DUE_PARTITIONS
// (default 8) and TASKQUEUE_BENCH_DUE_BATCH (default 1000).
// TASKQUEUE_BENCH_DUE_CPUPROFILE=file profiles the processor's runs from
// the due instant to the last completion (each run overwrites it). Run
// with -benchtime=1x; -count 3 gives three rounds.
func BenchmarkDueAtOnce(b *testing.B) {
	sizes := []int{1000, 10000}
	if s := os.Getenv("TASKQUEUE_BENCH_DUE_PLAYERS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("TASKQUEUE_BENCH_DUE_PLAYERS: %q", s)
			}
			sizes = append(sizes, n)
		}
	}
	for range b.N {
		for _, n := range sizes {
			for _, cold := range []bool{false, true} {
				mode := map[bool]string{false: "warm", true: "cold"}[cold]
				var proc, riv dueResult
				b.Run(fmt.Sprintf("players=%d/%s/processor", n, mode), func(b *testing.B) { proc = dueProcessor(b, n, cold) })
				b.Run(fmt.Sprintf("players=%d/%s/river", n, mode), func(b *testing.B) { riv = dueRiver(b, n, cold) })
				if riv.rate > 0 {
					b.Logf("players=%d %s: processor/River throughput %.2f (%.0f/s vs %.0f/s); p99 %s vs %s",
						n, mode, proc.rate/riv.rate, proc.rate, riv.rate, proc.p99, riv.p99)
				}
			}
		}
	}
}

// dueResult is one side's figures.
type dueResult struct {
	rate     float64
	p50, p99 time.Duration
}

// dueSetupBudget is how long the setup of n players may take: their
// repetitions fall due this long after it starts. 4 s + 1 ms per player,
// or per TASKQUEUE_BENCH_DUE_SETUP_PER_PLAYER (a duration: more on a
// loaded machine, where enqueueing 10,000 players takes longer).
func dueSetupBudget(n int) time.Duration {
	per := time.Millisecond
	if s := os.Getenv("TASKQUEUE_BENCH_DUE_SETUP_PER_PLAYER"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			per = d
		}
	}
	return 4*time.Second + time.Duration(n)*per
}

// dueBenchInt is the positive integer in the environment variable name, or
// def when it is not set.
func dueBenchInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s: %q", name, s)
	}
	return n
}

// dueCatalog is the default catalog plus "due": one repetition of d.
func dueCatalog(b testing.TB, d time.Duration) *domain.Catalog {
	var f map[string]any
	if err := json.Unmarshal(domain.DefaultCatalogJSON(), &f); err != nil {
		b.Fatal(err)
	}
	f["tasks"] = append(f["tasks"].([]any), map[string]any{
		"id": "due", "name": "Due", "skill": "woodcutting", "levelRequired": 1, "baseDurationMs": d.Milliseconds(),
		"inputs": map[string]any{}, "outputs": map[string]any{"logs": 1}, "xp": 1,
	})
	data, _ := json.Marshal(f)
	c, err := domain.ParseCatalog(data)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func dueProcessor(b *testing.B, n int, cold bool) dueResult {
	be := testreadside.Postgres(b, "", 12)
	budget := dueSetupBudget(n)
	t0 := time.Now().Truncate(time.Millisecond)
	due := t0.Add(budget)
	rules := domain.Rules{Catalog: dueCatalog(b, budget)}
	cfg := Config{Commands: command.Config{Rules: rules},
		Partitions: dueBenchInt(b, "TASKQUEUE_BENCH_DUE_PARTITIONS", 8), BatchSize: dueBenchInt(b, "TASKQUEUE_BENCH_DUE_BATCH", 1000)}
	var r *running
	if !cold {
		r = start(b, be, cfg)
	}
	// Every queue's repetition starts at t0 (the enqueue's clock), so all
	// fall due at t0+budget.
	h, err := command.NewHandlers(be.Store, command.Config{Rules: rules, Clock: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			enqueue(b, h, fmt.Sprintf("d%05d", i), "due", 1)
		}()
	}
	wg.Wait()
	if left := time.Until(due); left < 500*time.Millisecond {
		b.Fatalf("setup of %d players took longer than its budget %s (%s left)", n, budget, left)
	}
	time.Sleep(time.Until(due))
	// A CPU profile from the instant to the last completion, not the setup.
	stopProfile := testenv.CPUProfile(b, os.Getenv("TASKQUEUE_BENCH_DUE_CPUPROFILE"))
	if cold {
		r = start(b, be, cfg)
	}
	ctx := context.Background()
	deadline := due.Add(10 * time.Minute)
	var late []time.Duration
	var last time.Time
	after := eventstore.Start
	filter := eventstore.Filter{EventTypes: []string{string(domain.TypeRepetitionCompleted)}}
	for len(late) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d repetitions after the deadline", len(late), n)
		}
		evs, err := be.Store.ReadAll(ctx, after, filter, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for _, e := range evs {
			if e.RecordedAt.After(last) {
				last = e.RecordedAt
			}
			late = append(late, e.RecordedAt.Sub(due))
		}
		after = evs[len(evs)-1].Position
	}
	stopProfile()
	r.stop()
	b.Logf("processor stats: %+v", r.p.Stats())
	return dueReport(b, "processor", n, last.Sub(due), late)
}

func dueReport(b *testing.B, kind string, n int, span time.Duration, late []time.Duration) dueResult {
	report(b, kind, n, span, late)
	q := func(p float64) time.Duration { return late[min(len(late)-1, int(p*float64(len(late))))] }
	return dueResult{rate: float64(n) / span.Seconds(), p50: q(0.5), p99: q(0.99)}
}

// dueArgs is River's job: one player's repetition.
type dueArgs struct {
	Player string `json:"player"`
}

func (dueArgs) Kind() string { return "due" }

// dueWorker INSERTs one event-shaped row per job (the columns of the
// event log: an event ID, a stream, a version, a type, JSON data, times)
// and records when it committed.
type dueWorker struct {
	river.WorkerDefaults[dueArgs]
	pool *pgxpool.Pool
	mu   sync.Mutex
	late []time.Duration
	last time.Time
	done atomic.Int64
}

func (w *dueWorker) Work(ctx context.Context, job *river.Job[dueArgs]) error {
	data := fmt.Sprintf(`{"taskId":"t-%s","number":1,"completedAt":%q}`, job.Args.Player, job.ScheduledAt.Format(time.RFC3339Nano))
	if _, err := w.pool.Exec(ctx, `INSERT INTO bench_events (event_id, stream_id, version, event_type, data, occurred_at)
		VALUES ($1, $2, 2, 'RepetitionCompleted', $3, $4)`, uuid.New(), "queue-"+job.Args.Player, data, job.ScheduledAt); err != nil {
		return err
	}
	now := time.Now()
	w.mu.Lock()
	w.late = append(w.late, now.Sub(job.ScheduledAt))
	if now.After(w.last) {
		w.last = now
	}
	w.mu.Unlock()
	w.done.Add(1)
	return nil
}

// riverLatencyConfig is River tuned for latency: 100 workers on the
// default queue, a fetch poll every 50 ms and at most one fetch per 20 ms.
// (River promotes scheduled jobs with its job scheduler, every 5 s; the
// interval is not in its public Config.)
func riverLatencyConfig(workers *river.Workers) *river.Config {
	return &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     20 * time.Millisecond,
		Workers:           workers,
		Logger:            quietLogger(),
	}
}

// riverPool opens a pool of conns on a fresh schema with River's tables
// (rivermigrate). The schema's name is short: River names its NOTIFY
// channels after it, and PostgreSQL refuses channel names over 63 bytes.
func riverPool(b *testing.B, conns int32) (*pgxpool.Pool, *riverpgxv5.Driver) {
	ctx := context.Background()
	testenv.Postgres(b) // skips without the test database
	base := os.Getenv("TASKQUEUE_TEST_DATABASE_URL")
	schema := "river_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			_ = c.Close(context.Background())
		}
	})
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	return pool, driver
}

func dueRiver(b *testing.B, n int, cold bool) dueResult {
	ctx := context.Background()
	// River's 100 workers each INSERT; its pool leaves them a connection
	// each beyond what the fetcher and completer take.
	pool, driver := riverPool(b, 40)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_events (
		position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL UNIQUE,
		stream_id text NOT NULL, version bigint NOT NULL, event_type text NOT NULL, data json NOT NULL,
		occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
		UNIQUE (stream_id, version))`); err != nil {
		b.Fatal(err)
	}
	w := &dueWorker{pool: pool}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(driver, riverLatencyConfig(workers))
	if err != nil {
		b.Fatal(err)
	}
	due := time.Now().Add(dueSetupBudget(n))
	if !cold {
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i += 1000 {
		var params []river.InsertManyParams
		for j := i; j < min(n, i+1000); j++ {
			params = append(params, river.InsertManyParams{Args: dueArgs{Player: fmt.Sprintf("d%05d", j)}, InsertOpts: &river.InsertOpts{ScheduledAt: due}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	if cold {
		time.Sleep(time.Until(due))
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	defer client.Stop(ctx) //nolint:errcheck // benchmark teardown
	deadline := due.Add(10 * time.Minute)
	for w.done.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d jobs after the deadline", w.done.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return dueReport(b, "river", n, w.last.Sub(due), w.late)
}
