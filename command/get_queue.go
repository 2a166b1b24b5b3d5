package command

import (
	"context"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
)

// GetQueue reads a player's queue from the event log (through the same
// cache the commands use): always current, for operators and for a
// server built without read models (GET /api/queue/{playerId} reads the
// queue_status read model). It changes nothing.
type GetQueue struct {
	PlayerID string
}

// QueueSnapshot is a queue as of a stream version.
type QueueSnapshot struct {
	View    domain.QueueView
	Version int64
}

// GetQueueHandler handles GetQueue.
type GetQueueHandler struct{ queues *Queues }

// Handle reads the queue. A player without events has the empty queue at
// version 0.
func (h GetQueueHandler) Handle(ctx context.Context, q GetQueue) (QueueSnapshot, error) {
	view, version, err := h.queues.read(ctx, q.PlayerID)
	if err != nil {
		return QueueSnapshot{}, fmt.Errorf("read the queue of %s: %w", q.PlayerID, err)
	}
	return QueueSnapshot{View: view, Version: version}, nil
}
