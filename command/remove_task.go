package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// RemoveTask takes a task out of a player's queue
// (DELETE /api/queue/{playerId}/tasks/{taskId}).
type RemoveTask struct {
	Request
	TaskID string
}

// RemoveTaskHandler handles RemoveTask.
type RemoveTaskHandler struct{ queues *Queues }

// Handle removes the task.
func (h RemoveTaskHandler) Handle(ctx context.Context, cmd RemoveTask) (Result, error) {
	out, err := h.queues.execute(ctx, cmd.Request, fingerprint("RemoveTask", cmd.TaskID),
		func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
			return q.Remove(domain.TaskID(cmd.TaskID), now)
		})
	if err != nil {
		return Result{}, fmt.Errorf("remove task %s of %s: %w", cmd.TaskID, cmd.PlayerID, err)
	}
	return out.Result, nil
}
