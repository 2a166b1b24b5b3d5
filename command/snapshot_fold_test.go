package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// A long random workload (every kind of command, retries of old keys,
// repetitions completed) with a snapshot every few events: at many points a
// cold load from the latest snapshot and the events after it gives exactly
// the state, version and remembered keys the fold of the whole stream
// gives.
func TestSnapshotLoadEqualsTheFold(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 13))
		ctx := context.Background()
		var clock atomic.Int64
		clock.Store(time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC).UnixNano())
		cfg := func(every int) Config {
			return Config{Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 8},
				Clock: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, SnapshotEvery: every, KeysPerQueue: 30}
		}
		writer, err := NewHandlers(store, cfg(7))
		if err != nil {
			t.Fatal(err)
		}
		types := domain.DefaultCatalog().Tasks()
		var keys []string
		request := func() Request {
			key := fmt.Sprint("k", len(keys))
			if len(keys) > 0 && rng.IntN(8) == 0 { // a retry of an earlier command
				key = keys[rng.IntN(len(keys))]
			} else {
				keys = append(keys, key)
			}
			return Request{PlayerID: "alice", IdempotencyKey: key, Actor: "alice"}
		}
		checks, consuming := 0, 0
		for i := range 1500 {
			clock.Add(int64(time.Duration(rng.IntN(4000)) * time.Millisecond))
			view, err := writer.GetQueue.Handle(ctx, GetQueue{PlayerID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			tasks := view.View.Tasks
			randomTask := func() string {
				if len(tasks) == 0 {
					return "none"
				}
				return string(tasks[rng.IntN(len(tasks))].TaskID)
			}
			switch op := rng.IntN(10); {
			case op < 3:
				// Mostly chop-wood and saw-planks, which consumes its logs:
				// repetitions with inputs, and with no inputs at hand.
				typ := []string{"chop-wood", "chop-wood", "saw-planks", string(types[rng.IntN(len(types))].ID)}[rng.IntN(4)]
				c := EnqueueTask{Request: request(), Type: typ, Count: 1 + rng.IntN(4)}
				if rng.IntN(3) == 0 {
					p := rng.IntN(len(tasks) + 1)
					c.Position = &p
				}
				_, err = writer.EnqueueTask.Handle(ctx, c)
			case op == 3:
				_, err = writer.RemoveTask.Handle(ctx, RemoveTask{Request: request(), TaskID: randomTask()})
			case op == 4:
				var order []string
				for _, task := range tasks {
					if r := view.View.Repetition; r == nil || r.TaskID != task.TaskID {
						order = append(order, string(task.TaskID))
					}
				}
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				_, err = writer.ReorderTasks.Handle(ctx, ReorderTasks{Request: request(), Order: order})
			case op == 5:
				if view.View.Running {
					_, err = writer.StopQueue.Handle(ctx, StopQueue{Request: request(), Reason: fmt.Sprint("break ", i)})
				} else {
					_, err = writer.StartQueue.Handle(ctx, StartQueue{Request: request()})
				}
			case op == 6:
				_, err = writer.FailTask.Handle(ctx, FailTask{Request: request(), TaskID: randomTask(), Reason: "broken"})
			default:
				if r := view.View.Repetition; r != nil {
					if due := r.DueAt.UnixNano(); clock.Load() < due {
						clock.Store(due)
					}
					_, err = writer.CompleteRepetition.Handle(ctx, CompleteRepetition{
						Request: Request{PlayerID: "alice", IdempotencyKey: CompletionKey(string(r.TaskID), r.Number), Actor: ActorSystem},
						TaskID:  string(r.TaskID), Number: r.Number})
				}
			}
			// Refusals are part of the workload (a full queue, a task
			// removed before, a retry with other fields); nothing else is.
			if err != nil && !refusal(err) {
				t.Fatalf("command %d: %v", i, err)
			}
			if i%13 == 12 {
				WaitSnapshots(writer)
				consuming += compareSnapshotLoad(t, store, cfg)
				checks++
			}
		}
		WaitSnapshots(writer)
		consuming += compareSnapshotLoad(t, store, cfg)
		if consuming == 0 {
			t.Fatal("no comparison had a repetition that consumes: the workload misses part of the state")
		}
		version, err := store.StreamVersion(ctx, "queue-alice")
		if err != nil || version < 500 {
			t.Fatalf("the workload wrote %d events (%v); want a long stream", version, err)
		}
		t.Logf("%d events, %d comparisons, %d with a repetition that consumes", version, checks+1, consuming)
	})
}

func refusal(err error) bool {
	for _, e := range []error{domain.ErrInvalid, domain.ErrQueueFull, domain.ErrRequirementNotMet, domain.ErrTaskNotFound,
		domain.ErrRepetitionNotDue, ErrIdempotencyKeyReused} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// compareSnapshotLoad loads alice's queue cold from its snapshot and from
// the whole stream, and fails unless they are the same. It returns 1 when
// the queue runs a repetition that consumes, else 0.
func compareSnapshotLoad(t *testing.T, store eventstore.Store, cfg func(every int) Config) int {
	t.Helper()
	ctx := context.Background()
	snap, ok, err := store.(eventstore.SnapshotStore).ReadSnapshot(ctx, "queue-alice")
	if err != nil {
		t.Fatal(err)
	}
	load := func(every int) *loaded {
		q, err := NewQueues(store, cfg(every))
		if err != nil {
			t.Fatal(err)
		}
		c := q.entry("queue-alice")
		st, err := q.catchUp(ctx, c, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	fromSnapshot, fold := load(7), load(-1)
	if ok && snap.Schema == snapshotSchema && fromSnapshot.snapshotAt != snap.Version {
		t.Fatalf("the cold load did not start from the snapshot at version %d (it did from %d)", snap.Version, fromSnapshot.snapshotAt)
	}
	gotQ, _ := json.Marshal(fromSnapshot.queue.Snapshot())
	wantQ, _ := json.Marshal(fold.queue.Snapshot())
	if !fromSnapshot.queue.Equal(fold.queue) || string(gotQ) != string(wantQ) {
		t.Fatalf("queue from the snapshot at %d:\n%s\nfrom the fold:\n%s", snap.Version, gotQ, wantQ)
	}
	if fromSnapshot.version != fold.version || fromSnapshot.last != fold.last {
		t.Fatalf("version %d (event %s) from the snapshot, %d (%s) from the fold", fromSnapshot.version, fromSnapshot.last, fold.version, fold.last)
	}
	if !reflect.DeepEqual(fromSnapshot.order, fold.order) || !reflect.DeepEqual(fromSnapshot.keys, fold.keys) {
		t.Fatalf("keys from the snapshot at %d: %v, from the fold: %v", snap.Version, fromSnapshot.order, fold.order)
	}
	if r := fold.queue.Snapshot().Repetition; r != nil && len(r.Consumed) > 0 {
		return 1
	}
	return 0
}
