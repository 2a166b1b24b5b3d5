package command_test

import (
	"context"
	"testing"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// TestCachedQueueOfDeletedStream: a queue cached by a process that was not
// told of the deletion (another instance) loads the stream again at its
// next command, which then starts a fresh queue instead of failing on the
// cached version forever; with and without Optimistic.
func TestCachedQueueOfDeletedStream(t *testing.T) {
	for _, optimistic := range []bool{false, true} {
		teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
			ctx := context.Background()
			h, err := command.NewHandlers(store, command.Config{
				Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: newClock().now, Optimistic: optimistic,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"k1", "k2"} {
				if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req(key), Type: "chop-wood", Count: 3}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.DeleteStream(ctx, "queue-alice"); err != nil {
				t.Fatal(err)
			}
			res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k3"), Type: "chop-wood", Count: 1})
			if err != nil {
				t.Fatalf("optimistic %v: enqueue after the deletion: %v", optimistic, err)
			}
			if res.Version != 2 || len(res.View.Tasks) != 1 || res.View.Tasks[0].Count != 1 {
				t.Fatalf("optimistic %v: after the deletion: version %d, tasks %+v; want a fresh queue of one task", optimistic, res.Version, res.View.Tasks)
			}
		})
	}
}

// TestForgetDropsTheCachedQueue: Queues.Forget drops the cached queue, so
// the next command reads the (deleted) stream from the start.
func TestForgetDropsTheCachedQueue(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		h := handlers(t, store, newClock(), 10)
		if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.DeleteStream(ctx, "queue-alice"); err != nil {
			t.Fatal(err)
		}
		h.Queues.Forget("alice")
		snap, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil || snap.Version != 0 || len(snap.View.Tasks) != 0 {
			t.Fatalf("queue after forget: %+v, %v; want empty at version 0", snap, err)
		}
	})
}
