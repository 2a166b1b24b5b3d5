package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/processor"
)

// What a pass of the relay follows gives every task.completed exactly what
// the read of the stream's window gives, whatever the pass's first event:
// random queues (tasks of random counts, stops and starts, removals, a task
// ID enqueued again after its task ended) are relayed from a random point
// of their streams, and at each TaskCompleted the followed events, when the
// pass saw the whole window, must fold to the window's figures.
func TestFollowedEqualsTheStreamsWindow(t *testing.T) {
	relayed := map[string]bool{}
	for _, typ := range relayFilter.EventTypes {
		relayed[typ] = true
	}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		streams := map[string][]eventstore.RecordedEvent{}
		decoded := map[string][]domain.Event{}
		var log []eventstore.RecordedEvent // all streams, in log order
		queues := map[string]*domain.Queue{}
		now := t0
		record := func(player string) func([]domain.Event, error) {
			return func(events []domain.Event, err error) {
				if err != nil {
					return // a refused decision (a full queue, a task already gone): nothing written
				}
				stream := domain.PlayerID(player).Stream()
				for _, e := range events {
					rec := eventstore.RecordedEvent{Stream: stream, Version: int64(len(streams[stream]) + 1)}
					rec.Type = string(e.EventType())
					streams[stream] = append(streams[stream], rec)
					decoded[stream] = append(decoded[stream], e)
					log = append(log, rec)
				}
			}
		}
		players := []string{"ann", "bob", "cy"}
		for _, p := range players {
			queues[p] = domain.NewQueue(domain.PlayerID(p), domain.Rules{})
		}
		for range 600 {
			p := players[rng.IntN(len(players))]
			q := queues[p]
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			switch k := rng.IntN(10); {
			case k < 3:
				id := domain.TaskID(fmt.Sprint("t", rng.IntN(12))) // a small set: IDs come back after their task ended
				record(p)(q.Enqueue(id, "chop-wood", 1+rng.IntN(4), nil, now))
			case k < 7:
				if r, ok := q.Repetition(); ok {
					now = r.DueAt
					record(p)(q.CompleteRepetition(r.TaskID, r.Number, r.DueAt))
				}
			case k == 7:
				record(p)(q.Stop("", now))
			case k == 8:
				record(p)(q.Start(now))
			default:
				if view := q.View(); len(view.Tasks) > 0 {
					record(p)(q.Remove(view.Tasks[rng.IntN(len(view.Tasks))].TaskID, now))
				}
			}
		}

		start := rng.IntN(len(log)) // the pass's first event in the log
		f := newFollowed()
		followedTasks, read := 0, 0
		for _, rec := range log[start:] {
			if !relayed[rec.Type] {
				continue
			}
			e := decoded[rec.Stream][rec.Version-1]
			f.see(rec, e)
			done, ok := e.(domain.TaskCompleted)
			if !ok {
				continue
			}
			from := max(1, rec.Version-int64(4*done.Count+64))
			want := completedData(done, decoded[rec.Stream][from-1:rec.Version])
			events, ok := f.window(rec, done.TaskID, from)
			if !ok {
				read++
				if first := firstRelayed(log[start:], relayed, rec.Stream); first <= from && !reusedIn(decoded[rec.Stream][:rec.Version-1], done.TaskID) {
					t.Errorf("seed %d: task %s of %s (versions %d-%d) not followed though the pass saw the stream from version %d",
						seed, done.TaskID, rec.Stream, from, rec.Version, first)
				}
				continue
			}
			followedTasks++
			if got := completedData(done, events); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: task %s of %s at version %d: followed %+v, the window gives %+v", seed, done.TaskID, rec.Stream, rec.Version, got, want)
			}
		}
		if seed == 0 && followedTasks == 0 {
			t.Fatalf("seed 0 followed no task (%d read): the test checks nothing", read)
		}
	}
}

// firstRelayed is the version of the first relayed event of stream in log.
func firstRelayed(log []eventstore.RecordedEvent, relayed map[string]bool, stream string) int64 {
	i := slices.IndexFunc(log, func(r eventstore.RecordedEvent) bool { return r.Stream == stream && relayed[r.Type] })
	return log[i].Version
}

// reusedIn reports whether task id ended in events before (its ID enqueued
// again since).
func reusedIn(events []domain.Event, id domain.TaskID) bool {
	return slices.ContainsFunc(events, func(e domain.Event) bool {
		switch e := e.(type) {
		case domain.TaskCompleted:
			return e.TaskID == id
		case domain.TaskFailed:
			return e.TaskID == id
		case domain.TaskRemoved:
			return e.TaskID == id
		}
		return false
	})
}

// A relay that saw a task start reads nothing to publish its
// task.completed; one whose pass began after the task started reads the
// stream's tail, and both publish the same message.
func TestRelayReadsOnlyTheTasksItDidNotFollow(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := processor.NewManualClock(t0)
		h := commands(t, b, clock, domain.Rules{})
		enqueue(t, h, "ida", "chop-wood", 3)
		clock.Advance(time.Minute)
		startProcessor(t, b, processor.Config{Clock: clock, Commands: commandConfig(domain.Rules{})})
		testenv.WaitUntil(t, waitDeadline, "ida's queue to finish", queueDone(t, b, "ida", domain.Rules{}))
		recs, err := b.Store.ReadStream(ctx, domain.PlayerID("ida").Stream(), 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		started := slices.IndexFunc(recs, func(r eventstore.RecordedEvent) bool { return r.Type == string(domain.TypeRepetitionStarted) })
		head, err := b.Store.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}

		completed := func(name string, after eventstore.Position) (json.RawMessage, int64) {
			store := &teststore.Reads{Store: b.Store}
			ps := gochannel.NewGoChannel(gochannel.Config{}, nil)
			t.Cleanup(func() { ps.Close() })
			c := collect(t, ps)
			r, err := New(Config{Name: name, Store: store, DB: b.DB, Publisher: ps, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if after != eventstore.Start {
				if err := r.saveCheckpoint(ctx, eventstore.Start, after); err != nil {
					t.Fatal(err)
				}
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Run(rctx) }()
			// Topics are delivered concurrently: wait for the message itself.
			var data json.RawMessage
			testenv.WaitUntil(t, waitDeadline, name+"'s task.completed", func() (bool, error) {
				for _, ev := range c.events(t) {
					if ev.Type == TypeTaskCompleted {
						data = ev.Data
					}
				}
				cp, err := r.Checkpoint(ctx)
				return cp == head && data != nil, err
			})
			cancel()
			<-done
			return data, store.Calls.Load()
		}
		whole, reads := completed("whole", eventstore.Start)
		if reads != 0 {
			t.Errorf("the relay that followed the task from its start read %d streams", reads)
		}
		late, reads := completed("late", recs[started].Position)
		if reads != 1 {
			t.Errorf("the relay whose pass began after the task's first repetition read %d streams, want 1", reads)
		}
		if string(whole) != string(late) {
			t.Errorf("task.completed followed: %s; read: %s", whole, late)
		}
		var d TaskCompletedData
		if err := json.Unmarshal(whole, &d); err != nil || d.Count != 3 || d.Rewards.Items["logs"] != 3 || d.DurationMs != 9000 {
			t.Errorf("task.completed %s (%v)", whole, err)
		}
	})
}

// A task completed that the pass did not see start (its tail is read) is
// forgotten all the same: what a pass holds is only the running tasks'.
func TestFollowedForgetsEveryEndedTask(t *testing.T) {
	f := newFollowed()
	stream := domain.PlayerID("jo").Stream()
	rec := func(v int64) eventstore.RecordedEvent { return eventstore.RecordedEvent{Stream: stream, Version: v} }
	f.see(rec(10), domain.RepetitionCompleted{TaskID: "a", Number: 3})
	f.see(rec(11), domain.RepetitionStarted{TaskID: "a", Number: 4})
	f.see(rec(12), domain.RepetitionCompleted{TaskID: "a", Number: 4})
	f.see(rec(13), domain.TaskCompleted{TaskID: "a", Count: 4})
	if _, ok := f.window(rec(13), "a", 1); ok {
		t.Fatal("a window from version 1 followed from version 10")
	}
	if f.held != 1 || len(f.streams[stream].tasks) != 0 {
		t.Errorf("after the task ended the pass holds %d (tasks %v), want its ended ID alone", f.held, f.streams[stream].tasks)
	}
}
