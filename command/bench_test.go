package command_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
)

// seedStream appends n events of a real queue history (a stopped queue
// that gets tasks enqueued and removed) to player's stream.
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
	for i := 1; int(q.Version()) < n; i++ {
		now = now.Add(time.Millisecond)
		id := domain.TaskID(fmt.Sprint("t", i))
		add(q.Enqueue(id, "chop-wood", 1, nil, now))
		if int(q.Version()) < n {
			add(q.Remove(id, now))
		}
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
		if err != nil || snap.Version < 100_000 {
			b.Fatalf("%d %v", snap.Version, err)
		}
	}
}
