package processor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// busOf waits for r's command bus to run and returns it.
func busOf(t testing.TB, r *running) *bus {
	var b *bus
	testenv.WaitUntil(t, waitDeadline, "the command bus", func() (bool, error) {
		r.p.pubMu.Lock()
		defer r.p.pubMu.Unlock()
		b = r.p.bus
		return b != nil, nil
	})
	return b
}

// A command that cannot succeed lands in the dead letter queue with its
// error and correlation ID; a retry re-sends it, and its new failure is a
// new dead letter while the first is marked retried.
func TestFailedCommandsGoToTheDeadLetterQueue(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		clock := NewManualClock(t0)
		r := start(t, b, Config{Clock: clock, Commands: commandConfig(domain.Rules{}), MaxRetries: 2})
		ctx := context.Background()
		bad := &command.CompleteRepetition{
			Request: command.Request{PlayerID: "not a player id!", IdempotencyKey: "k-1", CorrelationID: "corr-1", Actor: "system"},
			TaskID:  "t", Number: 1,
		}
		if err := busOf(t, r).commands.Send(ctx, bad); err != nil {
			t.Fatal(err)
		}
		dl := r.p.DeadLetters()
		var got []DeadLetter
		testenv.WaitUntil(t, waitDeadline, "the dead letter", func() (bool, error) {
			var err error
			got, err = dl.List(ctx, 10, false)
			return len(got) == 1, err
		})
		d := got[0]
		if d.Command != "CompleteRepetition" || d.CorrelationID != "corr-1" || !strings.Contains(d.Error, "not a player id!") ||
			!strings.Contains(d.Topic, ".commands.CompleteRepetition.p") || !strings.Contains(string(d.Payload), `"TaskID":"t"`) {
			t.Fatalf("dead letter %+v", d)
		}
		if err := dl.Retry(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		testenv.WaitUntil(t, waitDeadline, "the retried command's second failure", func() (bool, error) {
			all, err := dl.List(ctx, 10, true)
			return len(all) == 2, err
		})
		open, err := dl.List(ctx, 10, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != 1 || open[0].ID == d.ID || open[0].CorrelationID != "corr-1" {
			t.Fatalf("open dead letters after the retry: %+v", open)
		}
		all, _ := dl.List(ctx, 10, true)
		for _, x := range all {
			if x.ID == d.ID && (x.RetriedAt == nil || x.Retries != 1) {
				t.Fatalf("the retried dead letter is not marked: %+v", x)
			}
		}
		if err := dl.Retry(ctx, "no-such-id"); !errors.Is(err, ErrDeadLetterNotFound) {
			t.Fatalf("retry of an unknown ID: %v", err)
		}
	})
}
