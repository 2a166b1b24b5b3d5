package command_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

var t0 = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

func newClock() *clock               { c := &clock{}; c.set(t0); return c }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

func handlers(t *testing.T, store eventstore.Store, clk *clock, limit int) *command.Handlers {
	t.Helper()
	h, err := command.NewHandlers(store, command.Config{
		Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: limit},
		Clock: clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func req(key string) command.Request {
	return command.Request{PlayerID: "alice", IdempotencyKey: key, CorrelationID: "corr-" + key, Actor: "alice"}
}

func TestEnqueueAppendsWithKeyAsCausation(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		h := handlers(t, store, newClock(), 10)
		res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != 2 || res.Duplicate || res.Task.Type != "chop-wood" || res.Task.Count != 3 || res.Task.TaskID == "" {
			t.Fatalf("result %+v", res)
		}
		if res.View.Repetition == nil || res.View.Repetition.TaskID != res.Task.TaskID || !res.View.Repetition.StartedAt.Equal(t0) {
			t.Fatalf("view %+v", res.View)
		}
		stored, err := store.ReadStream(ctx, "queue-alice", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 2 || stored[0].Type != "TaskEnqueued" || stored[1].Type != "RepetitionStarted" {
			t.Fatalf("stored %+v", stored)
		}
		for _, e := range stored {
			if e.Metadata.CausationID != "k1" || e.Metadata.CorrelationID != "corr-k1" || e.Metadata.Actor != "alice" || !e.Metadata.OccurredAt.Equal(t0) {
				t.Fatalf("metadata %+v", e.Metadata)
			}
		}
		snap, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil || snap.Version != 2 || len(snap.View.Tasks) != 1 || snap.View.Version != 2 {
			t.Fatalf("get queue: %+v %v", snap, err)
		}
	})
}

func TestRetriedCommandReturnsFirstResultAndAppendsNothing(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		h := handlers(t, store, clk, 10)
		first, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k2"), Type: "mine-copper", Count: 1}); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Second)
		// Same process, and a fresh process (cold cache): both see the retry.
		for name, hh := range map[string]*command.Handlers{"warm": h, "cold": handlers(t, store, clk, 10)} {
			again, err := hh.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
			if err != nil {
				t.Fatalf("%s retry: %v", name, err)
			}
			if !again.Duplicate || again.Task != first.Task || again.Version != first.Version || len(again.Events) != 0 {
				t.Fatalf("%s retry: %+v, first %+v", name, again, first)
			}
			if v, _ := storeVersion(ctx, store); v != 3 {
				t.Fatalf("%s retry appended: version %d", name, v)
			}
			_, err = hh.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 4})
			if !errors.Is(err, command.ErrIdempotencyKeyReused) {
				t.Fatalf("%s same key, other body: %v", name, err)
			}
			_, err = hh.StopQueue.Handle(ctx, command.StopQueue{Request: req("k1")})
			if !errors.Is(err, command.ErrIdempotencyKeyReused) {
				t.Fatalf("%s same key, other command: %v", name, err)
			}
		}
	})
}

func storeVersion(ctx context.Context, store eventstore.Store) (int64, error) {
	return store.StreamVersion(ctx, "queue-alice")
}

func TestIfMatch(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		h := handlers(t, store, newClock(), 10)
		res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		stale := int64(1)
		r := req("k2")
		r.IfMatch = &stale
		_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
		var pf *command.PreconditionFailedError
		if !errors.As(err, &pf) || pf.Expected != 1 || pf.Actual != res.Version || !errors.Is(err, command.ErrPreconditionFailed) {
			t.Fatalf("stale If-Match: %v", err)
		}
		r.IfMatch = &res.Version
		stopped, err := h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
		if err != nil || stopped.View.Running {
			t.Fatalf("matching If-Match: %+v %v", stopped, err)
		}
		// The retry of the conditional command returns its first result,
		// though the version moved on.
		again, err := h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
		if err != nil || !again.Duplicate || again.Version != stopped.Version {
			t.Fatalf("retry of a conditional command: %+v %v", again, err)
		}
	})
}

func TestDomainErrorsPassThrough(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		h := handlers(t, store, newClock(), 1)
		cases := []struct {
			name string
			run  func() error
			is   error
		}{
			{"bad player", func() error {
				_, err := h.StartQueue.Handle(ctx, command.StartQueue{Request: command.Request{PlayerID: "a b"}})
				return err
			}, domain.ErrInvalid},
			{"bad key", func() error {
				_, err := h.StartQueue.Handle(ctx, command.StartQueue{Request: req("has space")})
				return err
			}, domain.ErrInvalid},
			{"unknown type", func() error {
				_, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("a"), Type: "nope", Count: 1})
				return err
			}, domain.ErrUnknownTaskType},
			{"requirement", func() error {
				_, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("b"), Type: "mine-iron", Count: 1})
				return err
			}, domain.ErrRequirementNotMet},
			{"fill", func() error {
				_, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("c"), Type: "chop-wood", Count: 1})
				return err
			}, nil},
			{"full", func() error {
				_, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("d"), Type: "chop-wood", Count: 1})
				return err
			}, domain.ErrQueueFull},
			{"not found", func() error {
				_, err := h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("e"), TaskID: "nope"})
				return err
			}, domain.ErrTaskNotFound},
		}
		for _, tc := range cases {
			err := tc.run()
			if tc.is == nil && err != nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.is)
			}
		}
		if v, _ := storeVersion(ctx, store); v != 2 {
			t.Fatalf("refused commands appended: version %d", v)
		}
	})
}

func TestWalkthroughStopReorderRemoveComplete(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		h := handlers(t, store, clk, 10)
		a, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("1"), Type: "chop-wood", Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("2"), Type: "mine-copper", Count: 1})
		c, _ := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("3"), Type: "catch-shrimp", Count: 1})
		res, err := h.ReorderTasks.Handle(ctx, command.ReorderTasks{Request: req("4"), Order: []string{string(c.Task.TaskID), string(b.Task.TaskID)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.View.Tasks; got[1].TaskID != c.Task.TaskID || got[2].TaskID != b.Task.TaskID {
			t.Fatalf("after reorder %+v", got)
		}
		// The processor completes chop-wood #1 when due (late, from another
		// process with its own cache).
		proc := handlers(t, store, clk, 10)
		clk.add(3500 * time.Millisecond)
		done, err := proc.CompleteRepetition.Handle(ctx, command.CompleteRepetition{
			Request: command.Request{PlayerID: "alice", IdempotencyKey: command.CompletionKey(string(a.Task.TaskID), 1), Actor: "system"},
			TaskID:  string(a.Task.TaskID), Number: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if done.View.Inventory["logs"] != 1 || done.View.Repetition.Number != 2 || !done.View.Repetition.StartedAt.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("after completion %+v", done.View)
		}
		// The player's process (stale cache) removes the running task: it
		// reads the tail first, so the completion is kept.
		res, err = h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("5"), TaskID: string(a.Task.TaskID)})
		if err != nil {
			t.Fatal(err)
		}
		if res.View.Inventory["logs"] != 1 || len(res.View.Tasks) != 2 || res.View.Repetition.TaskID != c.Task.TaskID {
			t.Fatalf("after remove %+v", res.View)
		}
		res, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: req("6")})
		if err != nil || res.View.Running || res.View.Repetition != nil {
			t.Fatalf("after stop %+v %v", res.View, err)
		}
		// A completion of a repetition that is no longer running is a no-op.
		noop, err := proc.CompleteRepetition.Handle(ctx, command.CompleteRepetition{
			Request: command.Request{PlayerID: "alice", IdempotencyKey: command.CompletionKey(string(a.Task.TaskID), 2)},
			TaskID:  string(a.Task.TaskID), Number: 2,
		})
		if err != nil || len(noop.Events) != 0 || noop.Version != res.Version {
			t.Fatalf("stale completion: %+v %v", noop, err)
		}
		res, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: req("7")})
		if err != nil || !res.View.Running || res.View.Repetition == nil {
			t.Fatalf("after start %+v %v", res.View, err)
		}
	})
}

// With Optimistic, a command on a cached queue that nothing else wrote
// appends without reading the stream; when another process did write it,
// whatever the outdated queue would answer (a no-op, a duplicate, a failed
// If-Match, a wrong version) is replaced by the answer on the caught-up
// queue.
func TestOptimisticSkipsTheReadUnlessOutdated(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		counting := &teststore.Reads{Store: store}
		h, err := command.NewHandlers(counting, command.Config{
			Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: clk.now, Optimistic: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		other := handlers(t, store, clk, 10)
		first, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		calls := counting.Calls.Load()
		res, err := h.StopQueue.Handle(ctx, command.StopQueue{Request: req("stop1")})
		if err != nil || len(res.Events) == 0 || res.Version != first.Version+int64(len(res.Events)) {
			t.Fatalf("stop: %+v %v", res, err)
		}
		if n := counting.Calls.Load() - calls; n != 0 {
			t.Fatalf("a command on the current cached queue read the stream %d times, want 0", n)
		}

		// Another process starts the queue: stopping it again is a no-op
		// on the outdated queue, a stop on the stream.
		if _, err := other.StartQueue.Handle(ctx, command.StartQueue{Request: req("start1")}); err != nil {
			t.Fatal(err)
		}
		res, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: req("stop2")})
		if v, _ := storeVersion(ctx, store); err != nil || len(res.Events) == 0 || res.Version != v || res.View.Running {
			t.Fatalf("stop after another process started: %+v %v (stream version %d)", res, err, v)
		}
		// Another process enqueues: this one's enqueue loses the version
		// race on the outdated queue and is decided again.
		if _, err := other.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k2"), Type: "chop-wood", Count: 1}); err != nil {
			t.Fatal(err)
		}
		res3, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k3"), Type: "mine-copper", Count: 1})
		if v, _ := storeVersion(ctx, store); err != nil || res3.Version != v || len(res3.View.Tasks) != 3 {
			t.Fatalf("enqueue after another process enqueued: %+v %v (stream version %d)", res3, err, v)
		}
		// If-Match on the stream's version, which the outdated queue does
		// not know yet, holds.
		if _, err := other.StartQueue.Handle(ctx, command.StartQueue{Request: req("start2")}); err != nil {
			t.Fatal(err)
		}
		v, _ := storeVersion(ctx, store)
		r := req("stop3")
		r.IfMatch = &v
		if res, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: r}); err != nil || len(res.Events) == 0 || res.Version != v+int64(len(res.Events)) {
			t.Fatalf("If-Match %d after another process wrote: %+v %v", v, res, err)
		}
		// A retry, answered as a duplicate with the queue as it is now.
		if _, err := other.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("rm"), TaskID: string(res3.Task.TaskID)}); err != nil {
			t.Fatal(err)
		}
		again, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k3"), Type: "mine-copper", Count: 1})
		if err != nil || !again.Duplicate || again.Task.TaskID != res3.Task.TaskID || len(again.View.Tasks) != 2 {
			t.Fatalf("retry of k3 after another process removed its task: %+v %v", again, err)
		}
		// A task only the stream knows: the outdated queue refuses its
		// removal, the caught-up one removes it.
		k4, err := other.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k4"), Type: "chop-wood", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		res, err = h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("rm4"), TaskID: string(k4.Task.TaskID)})
		if v, _ := storeVersion(ctx, store); err != nil || len(res.Events) == 0 || res.Version != v {
			t.Fatalf("remove a task another process queued: %+v %v (stream version %d)", res, err, v)
		}
	})
}

func TestCachedQueueReadsOnlyTheTail(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		counting := &teststore.Reads{Store: store}
		h := handlers(t, counting, clk, 10)
		// 300 commands make a long stream (stop/start, each 1-2 events).
		for i := range 150 {
			if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req(fmt.Sprintf("e%d", i)), Type: "chop-wood", Count: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.StopQueue.Handle(ctx, command.StopQueue{Request: req(fmt.Sprintf("s%d", i))}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req(fmt.Sprintf("r%d", i)), TaskID: mustHead(t, h)}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.StartQueue.Handle(ctx, command.StartQueue{Request: req(fmt.Sprintf("t%d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		version, _ := storeVersion(ctx, store)
		if version < 700 {
			t.Fatalf("stream version %d", version)
		}
		// Another process appends 2 events; this one reads just those.
		other := handlers(t, store, clk, 10)
		if _, err := other.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("other"), Type: "chop-wood", Count: 1}); err != nil {
			t.Fatal(err)
		}
		before := counting.Events.Load()
		if _, err := h.StopQueue.Handle(ctx, command.StopQueue{Request: req("last")}); err != nil {
			t.Fatal(err)
		}
		if n := counting.Events.Load() - before; n != 2 {
			t.Fatalf("the cached queue read %d events, want the 2 of the tail", n)
		}
	})
}

func mustHead(t *testing.T, h *command.Handlers) string {
	t.Helper()
	snap, err := h.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: "alice"})
	if err != nil || len(snap.View.Tasks) == 0 {
		t.Fatalf("head: %+v %v", snap, err)
	}
	return string(snap.View.Tasks[0].TaskID)
}

// TestConcurrentCommandsAreReflectedExactlyOnce: many goroutines, in two
// "processes" (two Handlers with their own caches) on one store, enqueue on
// the same player, each request sent twice. Every accepted request is in
// the stream exactly once; refused ones (conflict) not at all.
func TestConcurrentCommandsAreReflectedExactlyOnce(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		conflicts := &conflictCounter{Store: store}
		procs := []*command.Handlers{handlers(t, conflicts, clk, 1000), handlers(t, conflicts, clk, 1000)}
		// Stopped, so every enqueue is exactly one TaskEnqueued.
		if _, err := procs[0].StopQueue.Handle(ctx, command.StopQueue{Request: req("stop")}); err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 12
		var (
			mu       sync.Mutex
			accepted = map[string]domain.TaskID{}
			wg       sync.WaitGroup
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					key := fmt.Sprintf("w%d-%d", w, i)
					// The same request twice at once, one copy to each
					// process (a client retrying on a timeout).
					var copies sync.WaitGroup
					for try := range 2 {
						copies.Add(1)
						go func() {
							defer copies.Done()
							res, err := procs[(w+try)%2].EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req(key), Type: "chop-wood", Count: 1 + i})
							switch {
							case errors.Is(err, command.ErrConflict):
								return
							case err != nil:
								t.Errorf("%s: %v", key, err)
								return
							}
							mu.Lock()
							defer mu.Unlock()
							if prev, ok := accepted[key]; ok && prev != res.Task.TaskID {
								t.Errorf("%s: task %s, first %s", key, res.Task.TaskID, prev)
							}
							accepted[key] = res.Task.TaskID
						}()
					}
					copies.Wait()
				}
			}()
		}
		wg.Wait()
		stored, err := store.ReadStream(ctx, "queue-alice", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range stored {
			if e.Type == "TaskEnqueued" {
				seen[e.Metadata.CausationID]++
			}
		}
		for key := range accepted {
			if seen[key] != 1 {
				t.Errorf("%s accepted, stored %d times", key, seen[key])
			}
		}
		for key, n := range seen {
			if _, ok := accepted[key]; !ok {
				t.Errorf("%s stored %d times but never accepted", key, n)
			}
		}
		t.Logf("%d of %d requests accepted, stream version %d, %d appends lost a race and were retried, %d were stored already by the other copy",
			len(accepted), workers*each, len(stored), conflicts.n.Load(), conflicts.duplicates.Load())
		if len(accepted) < workers*each/2 {
			t.Errorf("only %d of %d requests accepted", len(accepted), workers*each)
		}
		snap, err := procs[1].GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil || len(snap.View.Tasks) != len(accepted) || snap.Version != int64(len(stored)) {
			t.Fatalf("final queue: %d tasks at version %d, accepted %d, stored %d: %v", len(snap.View.Tasks), snap.Version, len(accepted), len(stored), err)
		}
	})
}

func TestMiddlewareWrapsEveryHandler(t *testing.T) {
	store := teststore.SQLite(t, "")
	h := handlers(t, store, newClock(), 10)
	var names []string
	h.Use(command.Metrics(func(name string, _ time.Duration, err error) { names = append(names, name) }))
	ctx := context.Background()
	_, _ = h.StartQueue.Handle(ctx, command.StartQueue{Request: req("a")})
	_, _ = h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
	_, _ = h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("b"), TaskID: "x"})
	if fmt.Sprint(names) != "[StartQueue GetQueue RemoveTask]" {
		t.Fatalf("observed %v", names)
	}
}

// conflictCounter counts the appends a real store refused for a wrong
// expected version, and those it found stored already.
type conflictCounter struct {
	eventstore.Store
	n, duplicates atomic.Int64
}

func (c *conflictCounter) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := c.Store.Append(ctx, stream, expected, events...)
	if errors.Is(err, eventstore.ErrWrongVersion) {
		c.n.Add(1)
	}
	if err == nil && res.Duplicate {
		c.duplicates.Add(1)
	}
	return res, err
}

func TestCacheIsBounded(t *testing.T) {
	store := teststore.SQLite(t, "")
	h, err := command.NewHandlers(store, command.Config{CacheSize: 2, Clock: newClock().now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, p := range []string{"a", "b", "c", "a"} {
		r := command.Request{PlayerID: p, IdempotencyKey: "k-" + p}
		res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: r, Type: "chop-wood", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		// "a" was evicted by "c": its retry is still recognized after the
		// reload from the stream.
		if i == 3 && (!res.Duplicate || res.Version != 2) {
			t.Fatalf("retry after eviction: %+v", res)
		}
	}
	if n := h.Queues.Len(); n != 2 {
		t.Fatalf("%d queues cached, limit 2", n)
	}
}

// A key older than the keys a queue remembers is refused, not run twice
// and not a server error: its derived event IDs are already stored.
func TestForgottenKeyIsRefusedNotRunAgain(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		h, err := command.NewHandlers(store, command.Config{
			Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: newClock().now, KeysPerQueue: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		enqueue := command.EnqueueTask{Request: req("old"), Type: "chop-wood", Count: 1}
		first, err := h.EnqueueTask.Handle(ctx, enqueue)
		if err != nil {
			t.Fatal(err)
		}
		// Remove the task, so that running the old request again would be
		// accepted by the domain, then push its key out of the window.
		if _, err := h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req("r1"), TaskID: string(first.Task.TaskID)}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"k1", "k2"} {
			if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req(k), Type: "mine-copper", Count: 1}); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := storeVersion(ctx, store)
		_, err = h.EnqueueTask.Handle(ctx, enqueue)
		if !errors.Is(err, command.ErrIdempotencyKeyReused) {
			t.Fatalf("forgotten key: %v, want ErrIdempotencyKeyReused", err)
		}
		if after, _ := storeVersion(ctx, store); after != before {
			t.Fatalf("the forgotten key appended: version %d -> %d", before, after)
		}
	})
}

func TestEarlyCompletionIsRefused(t *testing.T) {
	store := teststore.SQLite(t, "")
	clk := newClock()
	h := handlers(t, store, clk, 10)
	ctx := context.Background()
	res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k"), Type: "chop-wood", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	_, err = h.CompleteRepetition.Handle(ctx, command.CompleteRepetition{Request: req("c"), TaskID: string(res.Task.TaskID), Number: 1})
	if !errors.Is(err, domain.ErrRepetitionNotDue) {
		t.Fatalf("early completion: %v", err)
	}
}

// Two writers of one process that share a cache (Queues.Share: the API and
// the processor) each find the queue as the other's last command left it:
// optimistic, neither reads the stream; each decides with its own clock;
// and Forget on one forgets for both.
func TestSharedQueuesSeeEachOthersCommands(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		apiClock, procClock := newClock(), newClock()
		procClock.add(time.Hour)
		counting := &teststore.Reads{Store: store}
		api, err := command.NewHandlers(counting, command.Config{
			Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: apiClock.now, Optimistic: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		proc := command.HandlersOn(api.Queues.Share(procClock.now, true))

		first, err := api.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k1"), Type: "chop-wood", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		calls := counting.Calls.Load()
		stop, err := proc.StopQueue.Handle(ctx, command.StopQueue{Request: req("stop1")})
		if err != nil || len(stop.Events) == 0 || stop.Version != first.Version+int64(len(stop.Events)) {
			t.Fatalf("stop through the other writer: %+v %v", stop, err)
		}
		if at := stop.Events[len(stop.Events)-1].OccurredAt(); !at.Equal(procClock.now()) {
			t.Errorf("the other writer decided at %v, want its own clock's %v", at, procClock.now())
		}
		apiClock.add(2 * time.Hour)
		start, err := api.StartQueue.Handle(ctx, command.StartQueue{Request: req("start1")})
		if err != nil || len(start.Events) == 0 || start.Version != stop.Version+int64(len(start.Events)) || !start.View.Running {
			t.Fatalf("start after the other writer's stop: %+v %v", start, err)
		}
		if at := start.Events[len(start.Events)-1].OccurredAt(); !at.Equal(apiClock.now()) {
			t.Errorf("the API decided at %v, want its clock's %v", at, apiClock.now())
		}
		if n := counting.Calls.Load() - calls; n != 0 {
			t.Errorf("commands after the other writer's read the stream %d times, want 0 (one cache)", n)
		}
		if api.Queues.Len() != 1 || proc.Queues.Len() != 1 {
			t.Errorf("cached queues: %d and %d, want the same one", api.Queues.Len(), proc.Queues.Len())
		}
		api.Queues.Forget("alice")
		if proc.Queues.Len() != 0 {
			t.Errorf("Forget through one left %d queues in the other", proc.Queues.Len())
		}
	})
}
