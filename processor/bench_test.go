package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// BenchmarkRepetitions measures, on PostgreSQL with the real clock, how
// many repetitions per second the processor completes when every player
// runs 1-second repetitions, and their lateness (the commit time of the
// completion minus its due time); then, on the same PostgreSQL, River
// running the equivalent scheduled job (one job per player that, when it
// runs, schedules the next one a second after its own scheduled time),
// tuned for latency (riverLatencyConfig).
// Size: TASKQUEUE_BENCH_PLAYERS (default 1000) players, each
// TASKQUEUE_BENCH_REPETITIONS (default 20) repetitions. Run with
// -benchtime=1x.
func BenchmarkRepetitions(b *testing.B) {
	players := envInt("TASKQUEUE_BENCH_PLAYERS", 1000)
	reps := envInt("TASKQUEUE_BENCH_REPETITIONS", 20)
	for range b.N {
		b.Run("processor", func(b *testing.B) { benchProcessor(b, players, reps) })
		b.Run("river", func(b *testing.B) { benchRiver(b, players, reps) })
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// tickCatalog is the default catalog plus "tick": 1-second repetitions
// with 1 XP each (no level-up speeds it within a benchmark's length).
func tickCatalog(b testing.TB) *domain.Catalog {
	var f map[string]any
	if err := json.Unmarshal(domain.DefaultCatalogJSON(), &f); err != nil {
		b.Fatal(err)
	}
	f["tasks"] = append(f["tasks"].([]any), map[string]any{
		"id": "tick", "name": "Tick", "skill": "woodcutting", "levelRequired": 1, "baseDurationMs": 1000,
		"inputs": map[string]any{}, "outputs": map[string]any{"logs": 1}, "xp": 1,
	})
	data, _ := json.Marshal(f)
	c, err := domain.ParseCatalog(data)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func report(b *testing.B, kind string, done int, elapsed time.Duration, lateness []time.Duration) {
	slices.Sort(lateness)
	q := func(p float64) time.Duration {
		if len(lateness) == 0 {
			return 0
		}
		return lateness[min(len(lateness)-1, int(p*float64(len(lateness))))]
	}
	rate := float64(done) / elapsed.Seconds()
	b.ReportMetric(rate, "reps/s")
	b.ReportMetric(float64(q(0.5).Milliseconds()), "p50-late-ms")
	b.ReportMetric(float64(q(0.99).Milliseconds()), "p99-late-ms")
	b.Logf("%s: %d repetitions in %s = %.0f/s; lateness p50 %s p99 %s max %s",
		kind, done, elapsed.Round(time.Millisecond), rate, q(0.5), q(0.99), q(1))
}

func benchProcessor(b *testing.B, players, reps int) {
	be := testreadside.Postgres(b, "", 12)
	rules := domain.Rules{Catalog: tickCatalog(b)}
	h, err := command.NewHandlers(be.Store, command.Config{Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	r := start(b, be, Config{Commands: command.Config{Rules: rules}, Partitions: 16, BatchSize: 1000})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range players {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			enqueue(b, h, fmt.Sprintf("b%05d", i), "tick", reps)
		}()
	}
	wg.Wait()
	total := players * reps
	deadline := time.Now().Add(time.Duration(reps)*time.Second + 10*time.Minute)
	ctx := context.Background()
	var done int
	var late []time.Duration
	var first, last time.Time
	after := eventstore.Start
	filter := eventstore.Filter{EventTypes: []string{string(domain.TypeRepetitionCompleted)}}
	for done < total {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d repetitions after the deadline", done, total)
		}
		evs, err := be.Store.ReadAll(ctx, after, filter, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, e := range evs {
			if first.IsZero() || e.RecordedAt.Before(first) {
				first = e.RecordedAt
			}
			if e.RecordedAt.After(last) {
				last = e.RecordedAt
			}
			late = append(late, e.RecordedAt.Sub(e.Metadata.OccurredAt))
		}
		done += len(evs)
		after = evs[len(evs)-1].Position
	}
	r.stop()
	b.Logf("processor stats: %+v", r.p.Stats())
	report(b, "processor", done, last.Sub(first), late)
}

// tickArgs is River's job: player's repetition number of reps.
type tickArgs struct {
	Player string `json:"player"`
	Number int    `json:"number"`
	Reps   int    `json:"reps"`
}

func (tickArgs) Kind() string { return "tick" }

type tickWorker struct {
	river.WorkerDefaults[tickArgs]
	mu    sync.Mutex
	late  []time.Duration
	first time.Time
	last  time.Time
	done  atomic.Int64
}

func (w *tickWorker) Work(ctx context.Context, job *river.Job[tickArgs]) error {
	now := time.Now()
	if job.Args.Number < job.Args.Reps {
		next := job.Args
		next.Number++
		client := river.ClientFromContext[pgx.Tx](ctx)
		if _, err := client.Insert(ctx, next, &river.InsertOpts{ScheduledAt: job.ScheduledAt.Add(time.Second)}); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.late = append(w.late, now.Sub(job.ScheduledAt))
	if w.first.IsZero() || now.Before(w.first) {
		w.first = now
	}
	if now.After(w.last) {
		w.last = now
	}
	w.mu.Unlock()
	w.done.Add(1)
	return nil
}

func benchRiver(b *testing.B, players, reps int) {
	ctx := context.Background()
	_, driver := riverPool(b, 12)
	w := &tickWorker{}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(driver, riverLatencyConfig(workers))
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx) //nolint:errcheck // benchmark teardown
	start := time.Now().Add(2 * time.Second)
	for i := 0; i < players; i += 1000 {
		var params []river.InsertManyParams
		for j := i; j < min(players, i+1000); j++ {
			params = append(params, river.InsertManyParams{
				Args:       tickArgs{Player: fmt.Sprintf("b%05d", j), Number: 1, Reps: reps},
				InsertOpts: &river.InsertOpts{ScheduledAt: start.Add(time.Second)},
			})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	total := int64(players * reps)
	deadline := time.Now().Add(time.Duration(reps)*time.Second + 10*time.Minute)
	for w.done.Load() < total {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d jobs after the deadline", w.done.Load(), total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	report(b, "river", int(w.done.Load()), w.last.Sub(w.first), w.late)
}
