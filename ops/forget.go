package ops

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/projections"
)

// Forgetting is what ForgetPlayer erases a player from, wired by app. A nil
// func is a place this deployment does not have.
type Forgetting struct {
	// Store is the event log: the player's stream is deleted there.
	Store eventstore.Store
	// Sessions revokes the player's sessions (every instance refuses their
	// tokens, and with Redis closes their sockets) and reports how many.
	Sessions func(ctx context.Context, player domain.PlayerID) (int, error)
	// Sockets closes the player's sockets on this instance and drops its
	// cached view.
	Sockets func(player domain.PlayerID)
	// ReadModels delete the player's read-model rows once the stream is
	// deleted (projections.Runner.Forget: one per runner).
	ReadModels []func(ctx context.Context, player domain.PlayerID, upTo eventstore.Position) (projections.ForgetResult, error)
	// Caches drop what caches hold of the player (the command side's
	// queues, the queue cache, Redis keys).
	Caches []func(ctx context.Context, player domain.PlayerID) error
	// Publish announces player.forgotten to integration consumers (nil:
	// no integration bus; the result says so).
	Publish func(ctx context.Context, player domain.PlayerID, at time.Time, events int64) error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ForgetResult is the body of POST /api/admin/players/{id}/forget and
// what `taskqueue forget` prints.
type ForgetResult struct {
	PlayerID string `json:"playerId"`
	// Events is the number of the player's events erased from the log (0
	// when the player had none, or was forgotten before).
	Events int64 `json:"events"`
	// ReadModelRows is the number of read-model rows deleted.
	ReadModelRows int64 `json:"readModelRows"`
	// Sessions is the number of sessions revoked.
	Sessions int `json:"sessions"`
	// Rebuilds names, by projection, the generation being rebuilt to take
	// the player out of its sums (GET /api/admin/projections shows it).
	Rebuilds map[string]string `json:"rebuilds,omitempty"`
	// Published is true when player.forgotten went to the integration bus.
	Published bool `json:"published"`
}

// ForgetPlayer forgets player (docs/API.md, "Forgetting a player"): it
// revokes the player's sessions and closes the sockets (so the player acts
// no more meanwhile), deletes the player's stream from the log
// (eventstore.Store.DeleteStream: tombstones at the same positions), deletes
// the player's read-model rows (rebuilding those with sums over players),
// drops every cache's copy, and publishes player.forgotten. Every step is
// idempotent: after an error (a dependency away: transient, 503), running it
// again finishes the work, and forgetting a forgotten player erases
// nothing and publishes again. A bad player ID is a *domain.ValidationError.
func ForgetPlayer(ctx context.Context, f Forgetting, player string) (ForgetResult, error) {
	p, err := domain.ParsePlayerID(player)
	if err != nil {
		return ForgetResult{}, err
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	res := ForgetResult{PlayerID: player, Rebuilds: map[string]string{}}
	if f.Sessions != nil {
		if res.Sessions, err = f.Sessions(ctx, p); err != nil {
			return res, fmt.Errorf("forget %s: %w", p, err)
		}
	}
	if f.Sockets != nil {
		f.Sockets(p)
	}
	deleted, err := f.Store.DeleteStream(ctx, p.Stream())
	if err != nil {
		return res, fmt.Errorf("forget %s: %w", p, err)
	}
	res.Events = deleted.Events
	upTo := deleted.Last
	if head, err := f.Store.Head(ctx); err == nil && upTo.Less(head) {
		upTo = head
	}
	for _, forget := range f.ReadModels {
		r, err := forget(ctx, p, upTo)
		if err != nil {
			return res, fmt.Errorf("forget %s: %w", p, err)
		}
		res.ReadModelRows += r.Rows
		for name, gen := range r.Rebuilds {
			res.Rebuilds[name] = gen
		}
	}
	for _, drop := range f.Caches {
		if err := drop(ctx, p); err != nil {
			return res, fmt.Errorf("forget %s: %w", p, err)
		}
	}
	if f.Sockets != nil {
		f.Sockets(p) // a socket opened meanwhile
	}
	if f.Publish != nil {
		if err := f.Publish(ctx, p, now(), res.Events); err != nil {
			return res, fmt.Errorf("forget %s: publish player.forgotten: %w", p, err)
		}
		res.Published = true
	}
	return res, nil
}

// AdminForget answers POST /api/admin/players/{id}/forget (no query
// parameters).
func AdminForget(ctx context.Context, f Forgetting, player string, _ url.Values) (ForgetResult, error) {
	return ForgetPlayer(ctx, f, player)
}
