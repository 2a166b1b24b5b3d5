package command_test

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// seedStream appends n events (n-1 when n is even) of a real queue
// history to player's stream: a stopped queue that gets tasks enqueued and
// removed, and ends empty, as a new player's queue starts, so that a
// command on it decides and writes what it would on a new queue.
func seedStream(b *testing.B, store eventstore.Store, player domain.PlayerID, n int) {
	b.Helper()
	ctx := context.Background()
	q := domain.NewQueue(player, domain.Rules{})
	now := t0
	var batch []eventstore.EventData
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := store.Append(ctx, player.Stream(), eventstore.Any, batch...); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	add := func(events []domain.Event, err error) {
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			typ, v, data, err := domain.EncodeEvent(e)
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, eventstore.EventData{ID: uuid.New(), Type: string(typ), SchemaVersion: v, Data: data,
				Metadata: eventstore.Metadata{OccurredAt: e.OccurredAt(), CausationID: uuid.NewString()}})
			if len(batch) == eventstore.MaxEventsPerAppend {
				flush()
			}
		}
	}
	add(q.Stop("", now))
	for i := 1; int(q.Version())+2 <= n; i++ {
		now = now.Add(time.Millisecond)
		id := domain.TaskID(fmt.Sprint("t", i))
		add(q.Enqueue(id, "chop-wood", 1, nil, now))
		add(q.Remove(id, now))
	}
	flush()
}

func openBenchStore(b *testing.B) eventstore.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "events.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkCommandOnLongStream: one command (stop or start, alternating)
// on a cached queue costs the same with 100,000 events behind it as with
// none (SQLite, embedded default).
func BenchmarkCommandOnLongStream(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			store := openBenchStore(b)
			player := domain.PlayerID(fmt.Sprint("p", n))
			if n > 0 {
				seedStream(b, store, player, n)
			}
			h, err := command.NewHandlers(store, command.Config{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: string(player)}); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				r := command.Request{PlayerID: string(player), IdempotencyKey: fmt.Sprint("k", i)}
				if i%2 == 0 {
					_, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: r})
				} else {
					_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
				}
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkColdLoad100k: the first command on a queue with 100,000 events
// reads and applies them all once.
func BenchmarkColdLoad100k(b *testing.B) {
	store := openBenchStore(b)
	seedStream(b, store, "long", 100_000)
	ctx := context.Background()
	for b.Loop() {
		h, err := command.NewHandlers(store, command.Config{})
		if err != nil {
			b.Fatal(err)
		}
		snap, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "long"})
		if err != nil || snap.Version < 99_999 {
			b.Fatalf("%d %v", snap.Version, err)
		}
	}
}

// longEvents is the length of the old player's stream in
// BenchmarkOldPlayerVsNew (the docs' figures: -long.events=1000000).
var longEvents = flag.Int("long.events", 100_000, "events in the old player's stream of BenchmarkOldPlayerVsNew")

// BenchmarkOldPlayerVsNew: a command on a player with -long.events events
// against the same command on a new player, in the same loop, on each SQL
// backend (PostgreSQL with TASKQUEUE_TEST_DATABASE_URL). cold: the first
// command after a restart (new handlers: nothing cached); warm: the queue
// is cached. It reports both costs and their ratio (old ÷ new, the goal
// ≤ 1.2). The old player's history is written through the store directly,
// so one load first takes the snapshot the command side would have taken
// as it grew.
func BenchmarkOldPlayerVsNew(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) eventstore.Store
	}{{"sqlite", openBenchStore}, {"postgres", openBenchPostgres}} {
		b.Run(backend.name, func(b *testing.B) {
			store := backend.open(b)
			seedStream(b, store, "old", *longEvents)
			ctx := context.Background()
			h, err := command.NewHandlers(store, command.Config{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "old"}); err != nil {
				b.Fatal(err)
			}
			command.WaitSnapshots(h)
			run := uuid.NewString() // keys of this run's commands
			// toggle stops a running queue and starts a stopped one: one
			// command and one event either way. It sends the command the
			// queue's last known state calls for (a new queue runs, the old
			// player's was seeded stopped), so that both players run one
			// command per toggle; a command that finds the queue already in
			// its state (no event) is followed by the other.
			stopped := map[string]bool{"old": true}
			seq := 0 // the commands' keys, distinct across the sub-benchmarks
			toggle := func(h *command.Handlers, player string, _ int) time.Duration {
				seq++
				start := time.Now()
				r := command.Request{PlayerID: player, IdempotencyKey: fmt.Sprint(run, "-", seq)}
				send := func(stop bool) (command.Result, error) {
					if stop {
						return h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
					}
					return h.StartQueue.Handle(ctx, command.StartQueue{Request: r})
				}
				res, err := send(!stopped[player])
				if err == nil && len(res.Events) == 0 {
					r.IdempotencyKey += "s"
					res, err = send(stopped[player])
					stopped[player] = !stopped[player]
				}
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Events) != 1 { // the same work on both players
					b.Fatalf("%s: %d events, want 1", player, len(res.Events))
				}
				stopped[player] = !stopped[player]
				return time.Since(start)
			}
			b.Run("cold", func(b *testing.B) {
				var old, young time.Duration
				i := 0
				for b.Loop() {
					i++
					h1, _ := command.NewHandlers(store, command.Config{})
					old += toggle(h1, "old", i)
					// The old player's snapshot, when its command took one,
					// is saved before the new player's command is timed.
					command.WaitSnapshots(h1)
					h2, _ := command.NewHandlers(store, command.Config{})
					young += toggle(h2, fmt.Sprintf("new-%s-%d", backend.name, i), i)
					command.WaitSnapshots(h2)
				}
				report(b, old, young, i)
			})
			b.Run("warm", func(b *testing.B) {
				h, _ := command.NewHandlers(store, command.Config{})
				toggle(h, "old", 0)
				toggle(h, "new-warm-"+backend.name, 0)
				var old, young time.Duration
				i := 0
				for b.Loop() {
					i++
					old += toggle(h, "old", i)
					young += toggle(h, "new-warm-"+backend.name, i)
				}
				command.WaitSnapshots(h)
				report(b, old, young, i)
			})
		})
	}
}

func report(b *testing.B, old, young time.Duration, n int) {
	b.ReportMetric(float64(old.Microseconds())/float64(n), "old-µs/cmd")
	b.ReportMetric(float64(young.Microseconds())/float64(n), "new-µs/cmd")
	b.ReportMetric(float64(old)/float64(young), "old÷new")
}

func openBenchPostgres(b *testing.B) eventstore.Store {
	url := testenv.Postgres(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		b.Fatal(err)
	}
	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(6))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}
