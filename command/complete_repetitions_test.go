package command_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// batchCountingStore counts the calls a batch makes to a real store.
type batchCountingStore struct {
	eventstore.Store
	readStream, readStreams, appendOne, appendMany atomic.Int64
}

func (c *batchCountingStore) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	c.readStream.Add(1)
	return c.Store.ReadStream(ctx, stream, from, limit)
}

func (c *batchCountingStore) ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error) {
	c.readStreams.Add(1)
	return c.Store.ReadStreams(ctx, reads, limit)
}

func (c *batchCountingStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	c.appendOne.Add(1)
	return c.Store.Append(ctx, stream, expected, events...)
}

func (c *batchCountingStore) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	c.appendMany.Add(1)
	return c.Store.AppendMany(ctx, appends)
}

func (c *batchCountingStore) calls() [4]int64 {
	return [4]int64{c.readStream.Load(), c.readStreams.Load(), c.appendOne.Load(), c.appendMany.Load()}
}

// A batch of completions loads the queues it has not cached with one
// ReadStreams and appends with one AppendMany; each completion keeps its
// own outcome: a bad player ID fails alone, a second completion of one
// stream is answered as the duplicate it is, and a queue another writer
// changed since it was cached loses the version check and is completed
// alone, not failing the others.
func TestCompleteRepetitionsInOneReadAndOneAppend(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		web := handlers(t, store, clk, 10)
		counting := &batchCountingStore{Store: store}
		proc, err := command.NewHandlers(counting, command.Config{
			Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: clk.now, Optimistic: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		const players = 5
		var running [players]*domain.RepetitionView
		for i := range players {
			r := req(fmt.Sprintf("enq-%d", i))
			r.PlayerID = fmt.Sprintf("p%d", i)
			res, err := web.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: r, Type: "chop-wood", Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			running[i] = res.View.Repetition
		}
		completion := func(i int) command.CompleteRepetition {
			rep := running[i]
			key := command.CompletionKey(string(rep.TaskID), rep.Number)
			return command.CompleteRepetition{
				Request: command.Request{PlayerID: fmt.Sprintf("p%d", i), IdempotencyKey: key, CorrelationID: key, Actor: "system"},
				TaskID:  string(rep.TaskID), Number: rep.Number,
			}
		}
		batch := func() command.CompleteRepetitions {
			var cmd command.CompleteRepetitions
			for i := range players {
				cmd.Completions = append(cmd.Completions, completion(i))
			}
			return cmd
		}

		clk.set(running[0].DueAt)
		cmd := batch()
		bad := completion(0)
		bad.PlayerID = "not a player"
		cmd.Completions = append(cmd.Completions, completion(0), bad)
		before := counting.calls()
		results, err := proc.CompleteRepetitions.Handle(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		for i := range players {
			if r := results[i]; r.Err != nil || len(r.Events) == 0 || r.View.Repetition == nil {
				t.Fatalf("completion %d: %+v", i, r)
			}
			running[i] = results[i].View.Repetition
		}
		if r := results[players]; r.Err != nil || !r.Duplicate {
			t.Fatalf("the second completion of p0 in the batch: %+v, want a duplicate", r)
		}
		if r := results[players+1]; r.Err == nil {
			t.Fatalf("a completion for a bad player ID succeeded: %+v", r)
		}
		// Cold: one multi-stream read, one append for all five; the
		// duplicate, run alone, reads its stream once.
		if got, want := diff(counting.calls(), before), [4]int64{1, 1, 0, 1}; got != want {
			t.Fatalf("calls (ReadStream, ReadStreams, Append, AppendMany) = %v, want %v", got, want)
		}

		// Another writer appends to p1 after the batch cached it.
		r := req("other")
		r.PlayerID = "p1"
		if _, err := web.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: r, Type: "chop-wood", Count: 1}); err != nil {
			t.Fatal(err)
		}
		clk.set(running[0].DueAt)
		before = counting.calls()
		results, err = proc.CompleteRepetitions.Handle(ctx, batch())
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Err != nil || len(r.Events) == 0 {
				t.Fatalf("second batch, completion %d: %+v", i, r)
			}
		}
		// Warm: no read for the batch, one append; p1 alone: it reads its
		// tail and appends again.
		if got, want := diff(counting.calls(), before), [4]int64{1, 0, 1, 1}; got != want {
			t.Fatalf("calls (ReadStream, ReadStreams, Append, AppendMany) = %v, want %v", got, want)
		}
		for i := range players {
			recs, err := store.ReadStream(ctx, fmt.Sprintf("queue-p%d", i), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			completed := 0
			for _, e := range recs {
				if e.Type == string(domain.TypeRepetitionCompleted) {
					completed++
				}
			}
			if completed != 2 {
				t.Fatalf("p%d: %d repetitions completed, want 2", i, completed)
			}
		}
	})
}

func diff(a, b [4]int64) (d [4]int64) {
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}
