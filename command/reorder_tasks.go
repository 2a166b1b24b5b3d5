package command

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// ReorderTasks puts the tasks that are not running in a new order
// (PUT /api/queue/{playerId}/reorder).
type ReorderTasks struct {
	Request
	// Order is a permutation of the IDs of the tasks that are not running.
	Order []string
}

// ReorderTasksHandler handles ReorderTasks.
type ReorderTasksHandler struct{ queues *Queues }

// Handle reorders the tasks.
func (h ReorderTasksHandler) Handle(ctx context.Context, cmd ReorderTasks) (Result, error) {
	order := make([]domain.TaskID, len(cmd.Order))
	for i, id := range cmd.Order {
		order[i] = domain.TaskID(id)
	}
	out, err := h.queues.execute(ctx, cmd.Request, fingerprint("ReorderTasks", strings.Join(cmd.Order, ",")),
		func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
			return q.Reorder(order, now)
		})
	if err != nil {
		return Result{}, fmt.Errorf("reorder the queue of %s: %w", cmd.PlayerID, err)
	}
	return out.Result, nil
}
