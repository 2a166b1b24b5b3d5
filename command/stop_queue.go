package command

import (
	"context"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// StopQueue stops a player's queue (POST /api/queue/{playerId}/stop; the
// processor's offline cap, with a reason).
type StopQueue struct {
	Request
	// Reason is empty when the player stops the queue, else why the server
	// did; the player sees it.
	Reason string
}

// StopQueueHandler handles StopQueue.
type StopQueueHandler struct{ queues *Queues }

// Handle stops the queue.
func (h StopQueueHandler) Handle(ctx context.Context, cmd StopQueue) (Result, error) {
	out, err := h.queues.execute(ctx, cmd.Request, fingerprint("StopQueue", cmd.Reason),
		func(q *domain.Queue, now time.Time, _ string) ([]domain.Event, error) {
			return q.Stop(cmd.Reason, now)
		})
	if err != nil {
		return Result{}, fmt.Errorf("stop the queue of %s: %w", cmd.PlayerID, err)
	}
	return out.Result, nil
}
