package query

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
)

// QueueCache is a read-through cache of queue views in front of whatever
// reads a queue. Put must never replace a view with an older one.
type QueueCache interface {
	// Get returns the cached view of player, or calls load and caches
	// what it returns.
	Get(ctx context.Context, player domain.PlayerID, load func(context.Context) (domain.QueueView, error)) (domain.QueueView, error)
	// Put caches v unless a view of the same or a newer version is cached.
	Put(ctx context.Context, v domain.QueueView)
}

// QueueReader reads a player's queue as GET /api/queue/{playerId} answers
// it: through Cache, to the read model (View), or, when no read side runs,
// to the write side's latest state (Aggregate). A view older than the
// version the client asks for is never returned.
type QueueReader struct {
	// Cache may be nil: then every read loads.
	Cache QueueCache
	// View reads the queue_status read model; nil when no read side runs.
	View *QueueViewHandler
	// Aggregate loads the queue from the event log (the command side's
	// latest state); used only when View is nil.
	Aggregate func(ctx context.Context, player domain.PlayerID) (domain.QueueView, error)
	// Closed, when set, is asked after a read of the read model failed: a
	// non-nil answer (the event store's "closed" error) is wrapped into the
	// read's error, because the read model's pool then only says "database
	// is closed" and the web layer answers 503 for a closed store.
	Closed func(ctx context.Context) error
}

// Queue returns the queue of player at minVersion or later: a cached view
// when one is cached at minVersion or later, else a loaded one, which is
// cached. When the queue cannot reach minVersion in time the error matches
// ErrStale.
func (r QueueReader) Queue(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error) {
	load := func(ctx context.Context) (domain.QueueView, error) { return r.load(ctx, player, minVersion) }
	if r.Cache == nil {
		return load(ctx)
	}
	v, err := r.Cache.Get(ctx, player, load)
	if err != nil || v.Version >= minVersion {
		return v, err
	}
	// The cached view is older than the client's own write.
	if v, err = load(ctx); err != nil {
		return domain.QueueView{}, err
	}
	r.Cache.Put(ctx, v)
	return v, nil
}

// Put caches the view a successful command answered with.
func (r QueueReader) Put(ctx context.Context, v domain.QueueView) {
	if r.Cache != nil {
		r.Cache.Put(ctx, v)
	}
}

func (r QueueReader) load(ctx context.Context, player domain.PlayerID, minVersion int64) (domain.QueueView, error) {
	if r.View != nil {
		v, err := r.View.Handle(ctx, QueueView{PlayerID: string(player), MinVersion: minVersion})
		if err != nil {
			return domain.QueueView{}, r.closedOr(ctx, err)
		}
		return v, nil
	}
	if r.Aggregate == nil {
		return domain.QueueView{}, errors.New("query: a QueueReader without a read model needs Aggregate")
	}
	v, err := r.Aggregate(ctx, player)
	if err != nil {
		return domain.QueueView{}, err
	}
	if v.Version < minVersion {
		// The aggregate is the latest state: the version does not exist.
		return domain.QueueView{}, fmt.Errorf("queue of %s at version %d, asked for %d: %w", player, v.Version, minVersion, ErrStale)
	}
	return v, nil
}

func (r QueueReader) closedOr(ctx context.Context, err error) error {
	if r.Closed == nil || errors.Is(err, ErrStale) || errors.Is(err, domain.ErrInvalid) {
		return err
	}
	if cerr := r.Closed(ctx); cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}
