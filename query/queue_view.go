package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// QueueView asks for a player's queue as GET /api/queue/{playerId} shows it.
type QueueView struct {
	PlayerID string
	// MinVersion, when > 0, makes the handler wait (up to the handler's
	// MaxWait or the context's deadline) until the read model shows the
	// queue at this stream version or later: a client reading after its own
	// command (whose response carried the version as ETag) never reads a
	// state from before it.
	MinVersion int64
}

// QueueSnapshot is a queue as the read models show it.
type QueueSnapshot struct {
	// View is the queue view; View.Limit is set by the handler. A player
	// without events has the empty view at version 0.
	View domain.QueueView
	// ProgressVersion is the stream version the skills and inventory of
	// the view come from (they are kept by another projection).
	ProgressVersion int64
}

// QueueViewReadModel reads queue_status and player_progress.
type QueueViewReadModel interface {
	QueueSnapshot(ctx context.Context, player domain.PlayerID) (QueueSnapshot, error)
}

// Committed is implemented by projections.Runner: the channel is closed
// after the next commit of any projection.
type Committed interface {
	Committed() <-chan struct{}
}

// QueueViewHandler answers QueueView.
type QueueViewHandler struct {
	rm        QueueViewReadModel
	committed Committed
	limit     int
	// MaxWait bounds a read-your-writes wait. Default 5 s.
	MaxWait time.Duration
	// Poll is how often a wait re-reads when no Committed is given (another
	// process runs the projections). Default 25 ms.
	Poll time.Duration

	// fallback answers when this handler reads replicas (Replicas.QueueViews)
	// and they fail or are behind.
	fallback *QueueViewHandler
	replicas *Replicas
}

// NewQueueViewHandler returns the handler. committed may be nil (waits then
// poll); queueLimit is the queue limit in force, shown as the view's limit
// (0 means domain.DefaultQueueLimit).
func NewQueueViewHandler(rm QueueViewReadModel, committed Committed, queueLimit int) *QueueViewHandler {
	if queueLimit <= 0 {
		queueLimit = domain.DefaultQueueLimit
	}
	return &QueueViewHandler{rm: rm, committed: committed, limit: queueLimit, MaxWait: 5 * time.Second, Poll: 25 * time.Millisecond}
}

// Handle returns the queue view. The view's tasks (queue_status) and its
// skills and inventory (player_progress) come from two projections that
// commit apart, so Handle reads until both show the same stream version:
// the view is the queue as of one version. With MinVersion it waits until
// that version is at least MinVersion; if the wait (MaxWait, or the
// context) ends first it returns the latest view and an error matching
// ErrStale. Without MinVersion a wait that ends before the projections
// agree returns the latest view, without an error.
func (h *QueueViewHandler) Handle(ctx context.Context, q QueueView) (domain.QueueView, error) {
	if h.fallback == nil {
		return h.handle(ctx, q)
	}
	v, err := h.handle(ctx, q)
	switch {
	case err == nil:
		h.replicas.observe(ReplicaServed)
		return v, nil
	case ctx.Err() != nil, errors.Is(err, domain.ErrInvalid):
		return v, err
	case errors.Is(err, ErrStale):
		h.replicas.observe(ReplicaBehind)
	default:
		h.replicas.observe(ReplicaFailed)
	}
	return h.fallback.Handle(ctx, q)
}

func (h *QueueViewHandler) handle(ctx context.Context, q QueueView) (domain.QueueView, error) {
	player, err := domain.ParsePlayerID(q.PlayerID)
	if err != nil {
		return domain.QueueView{}, err
	}
	if q.MinVersion < 0 {
		return domain.QueueView{}, invalid("minVersion", "must be a stream version >= 0, got %d", q.MinVersion)
	}
	t := time.NewTimer(h.MaxWait)
	defer t.Stop()
	for {
		var changed <-chan struct{}
		if h.committed != nil {
			changed = h.committed.Committed()
		}
		s, err := h.rm.QueueSnapshot(ctx, player)
		if err != nil {
			return domain.QueueView{}, fmt.Errorf("read queue of %s: %w", player, err)
		}
		s.View.Limit = h.limit
		reached := s.View.Version >= q.MinVersion && s.ProgressVersion >= q.MinVersion
		if reached && s.View.Version == s.ProgressVersion {
			return s.View, nil
		}
		stale := func() (domain.QueueView, error) {
			if reached {
				return s.View, nil
			}
			return s.View, fmt.Errorf("queue of %s at version %d, waited for %d: %w", player, s.View.Version, q.MinVersion, ErrStale)
		}
		poll := time.NewTimer(h.Poll)
		if changed != nil {
			poll.Reset(h.MaxWait) // the commit signal comes first; this only bounds the wait
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-t.C:
			poll.Stop()
			return stale()
		case <-ctx.Done():
			poll.Stop()
			return stale()
		}
		poll.Stop()
	}
}
