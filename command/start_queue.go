package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// StartQueue lets a stopped queue advance again
// (POST /api/queue/{playerId}/start).
type StartQueue struct {
	Request
}

// StartQueueHandler handles StartQueue.
type StartQueueHandler struct{ queues *Queues }

// Handle starts the queue.
func (h StartQueueHandler) Handle(ctx context.Context, cmd StartQueue) (Result, error) {
	out, err := h.queues.execute(ctx, cmd.Request, fingerprint("StartQueue"),
		func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
			return q.Start(now)
		})
	if err != nil {
		return Result{}, fmt.Errorf("start the queue of %s: %w", cmd.PlayerID, err)
	}
	return out.Result, nil
}
