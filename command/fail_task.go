package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// FailTask takes a task out of a queue as failed, for a reason the player
// sees (an admin or the processor issues it).
type FailTask struct {
	Request
	TaskID string
	Reason string
}

// FailTaskHandler handles FailTask.
type FailTaskHandler struct{ queues *Queues }

// Handle fails the task.
func (h FailTaskHandler) Handle(ctx context.Context, cmd FailTask) (Result, error) {
	out, err := h.queues.execute(ctx, cmd.Request, fingerprint("FailTask", cmd.TaskID, cmd.Reason),
		func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
			return q.Fail(domain.TaskID(cmd.TaskID), cmd.Reason, now)
		})
	if err != nil {
		return Result{}, fmt.Errorf("fail task %s of %s: %w", cmd.TaskID, cmd.PlayerID, err)
	}
	return out.Result, nil
}
