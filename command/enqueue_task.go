package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// EnqueueTask adds a task to a player's queue (POST /api/queue/{playerId}/tasks).
type EnqueueTask struct {
	Request
	// Type is the task type's catalog ID.
	Type string
	// Count is the number of repetitions, 1-1000.
	Count int
	// Position is the index in the tasks to insert at; nil: the end.
	Position *int
}

// EnqueueTaskResult is the outcome of EnqueueTask.
type EnqueueTaskResult struct {
	Result
	// Task is the task as queued (for a duplicate, as first queued).
	Task domain.TaskView
}

// EnqueueTaskHandler handles EnqueueTask. The task ID is derived from the
// idempotency key, so a retried request names the same task.
type EnqueueTaskHandler struct{ queues *Queues }

// Handle enqueues the task.
func (h EnqueueTaskHandler) Handle(ctx context.Context, cmd EnqueueTask) (EnqueueTaskResult, error) {
	pos := "end"
	if cmd.Position != nil {
		pos = fmt.Sprint(*cmd.Position)
	}
	fp := fingerprint("EnqueueTask", cmd.Type, cmd.Count, pos)
	var taskID domain.TaskID
	out, err := h.queues.execute(ctx, cmd.Request, fp, func(q *domain.Queue, now time.Time, key string) ([]domain.Event, error) {
		taskID = domain.TaskID(derivedID(q.Player().Stream(), key, fp, "task").String())
		return q.Enqueue(taskID, domain.TaskTypeID(cmd.Type), cmd.Count, cmd.Position, now)
	})
	if err != nil {
		return EnqueueTaskResult{}, fmt.Errorf("enqueue %s x%d for %s: %w", cmd.Type, cmd.Count, cmd.PlayerID, err)
	}
	res := EnqueueTaskResult{Result: out.Result}
	if out.Duplicate && out.first != nil && out.first.enqueued != nil {
		e := out.first.enqueued
		res.Task = domain.TaskView{TaskID: e.TaskID, Type: e.Type, Count: e.Count, EnqueuedAt: e.EnqueuedAt}
		return res, nil
	}
	for _, e := range out.Events {
		if te, ok := e.(domain.TaskEnqueued); ok {
			res.Task = domain.TaskView{TaskID: te.TaskID, Type: te.Type, Count: te.Count, EnqueuedAt: te.EnqueuedAt}
		}
	}
	return res, nil
}
