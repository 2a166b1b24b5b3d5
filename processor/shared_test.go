package processor

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// With Config.Queues the processor's completions go through the command
// side's cache: a player's next command finds the queue as the processor
// left it, and appends without reading the stream.
func TestCompletionsLandInTheSharedCache(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := NewManualClock(t0)
		rules := domain.Rules{}
		counting := &teststore.Reads{Store: b.Store}
		api, err := command.NewHandlers(counting, command.Config{Rules: rules, Clock: clock.Now, Optimistic: true})
		if err != nil {
			t.Fatal(err)
		}
		start(t, b, Config{Clock: clock, Commands: commandConfig(rules), Queues: api.Queues})
		enqueue(t, api, "carol", "chop-wood", 3)
		clock.Advance(time.Hour)
		testenv.WaitUntil(t, waitDeadline, "carol's queue to finish", queueDone(t, b, "carol", rules))

		calls := counting.Calls.Load()
		res, err := api.EnqueueTask.Handle(ctx, command.EnqueueTask{
			Request: command.Request{PlayerID: "carol", Actor: "carol"}, Type: "mine-copper", Count: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, recs := readQueue(t, b, "carol", rules)
		if last := recs[len(recs)-1].Version; res.Version != last {
			t.Errorf("the command after the completions answered version %d, the stream is at %d", res.Version, last)
		}
		if n := counting.Calls.Load() - calls; n != 0 {
			t.Errorf("the command after the processor's completions read the stream %d times, want 0 (one cache)", n)
		}
	})
}
