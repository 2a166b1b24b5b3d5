package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// CompleteRepetition completes a running repetition that is due (the
// processor issues it). Completing a repetition that is no longer running
// appends nothing and is no error, so two processors may both try.
type CompleteRepetition struct {
	Request
	TaskID string
	// Number is the repetition's number (RepetitionStarted.Number).
	Number int
}

// CompletionKey is the idempotency key a processor should use for the
// completion of repetition number of task: the same for every processor
// instance, so a double attempt is recognized.
func CompletionKey(taskID string, number int) string {
	return fmt.Sprintf("complete-%s-%d", taskID, number)
}

// CompleteRepetitionHandler handles CompleteRepetition. The time of the
// completion is the repetition's due time, whatever the clock says; a
// clock before the due time gets domain.ErrRepetitionNotDue.
type CompleteRepetitionHandler struct{ queues *Queues }

// Handle completes the repetition.
func (h CompleteRepetitionHandler) Handle(ctx context.Context, cmd CompleteRepetition) (Result, error) {
	out, err := h.queues.execute(ctx, cmd.Request, completionFingerprint(cmd), completionDecision(cmd))
	if err != nil {
		return Result{}, fmt.Errorf("complete repetition %d of task %s of %s: %w", cmd.Number, cmd.TaskID, cmd.PlayerID, err)
	}
	return out.Result, nil
}

// completionFingerprint is the fingerprint of a completion (alone or in a
// batch: the same request either way).
func completionFingerprint(cmd CompleteRepetition) string {
	return fingerprint("CompleteRepetition", cmd.TaskID, cmd.Number)
}

func completionDecision(cmd CompleteRepetition) decision {
	return func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
		return q.CompleteRepetition(domain.TaskID(cmd.TaskID), cmd.Number, now)
	}
}
