package realtime

import (
	"context"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// CommittedHeader is offered by an event store whose readable log (Head,
// ReadAll: the safe prefix) can lag behind what is committed:
// *postgres.Store, where an event committed after a transaction that is
// still open is readable only once that transaction ends. CommittedHead
// returns the position of the last committed event. The hub finds it on
// Config.Store, through decorators that have an Unwrap() eventstore.Store
// method; a store without it (SQLite) has nothing committed beyond Head.
type CommittedHeader interface {
	CommittedHead(ctx context.Context) (eventstore.Position, error)
}

// committedHeadOf returns s's CommittedHeader, looking through decorators,
// or nil.
func committedHeadOf(s eventstore.Store) CommittedHeader {
	c, _ := eventstore.As[CommittedHeader](s)
	return c
}

// TokenVerifier checks a bearer token; auth.Verifiers (the service's own
// tokens and the OpenID provider's) and *auth.Tokens implement it, and the
// HTTP middleware uses the same one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// SessionChecker tells whether a session ("sid" claim) is still active;
// sessions.Sessions implements it. A token without a session ID is not
// checked.
type SessionChecker interface {
	Active(ctx context.Context, sessionID string) (bool, error)
}

// Presence is told that a player's first socket on this hub opened, or
// that its last one closed and stayed closed for the grace period, with the
// last position the player's sockets were sent. The hub only knows its own
// sockets: the implementation decides whether the player is offline
// everywhere (the app's, on Redis, asks every instance through
// presence.Presence before it publishes player.offline with
// relay.PublishPlayerOffline). Calls for one player arrive in order,
// one at a time, each with a deadline; an error is logged, not retried.
type Presence interface {
	PlayerOnline(ctx context.Context, player domain.PlayerID, at time.Time) error
	PlayerOffline(ctx context.Context, player domain.PlayerID, at time.Time, lastPosition eventstore.Position) error
}

// Waker carries "the log has grown to this position" between instances;
// wakeups.Wakeups implements it on Redis pub/sub. It is only a wake-up: what
// is sent always comes from the event store, by position, so a lost
// wake-up delays delivery until the store's own subscription notices, and
// never loses a message.
type Waker interface {
	// Announce tells the other instances that the log reached pos. It
	// must not block.
	Announce(pos eventstore.Position)
	// Wakeups delivers the positions other instances announced, and a zero
	// Position after a reconnect (announcements may have been lost: read
	// the log from where you are).
	Wakeups() <-chan eventstore.Position
}

// Watermark tells when the queue read model has applied the log up to a
// position, so that a client reading GET /api/queue right after a message
// never sees an older state. WaitFor returns nil once every event at or
// below pos is applied, or ctx's error.
type Watermark interface {
	WaitFor(ctx context.Context, pos eventstore.Position) error
}

// ChangeSink hears, after each batch is delivered, of every queue the batch
// changed, with the view after the batch's last event of that queue (the
// Redis queue cache and progress entries: queuecache.Changes). Calls come
// from the hub's dispatcher: a slow sink delays the next batch, so keep it
// bounded (redisx's commands time out).
type ChangeSink interface {
	QueueChanged(ctx context.Context, view domain.QueueView)
}

// PollingWatermark is a Watermark over a position reader (the projection
// runner's checkpoint of the queue projection) and a channel that closes
// after each commit (projections.Runner.Committed). It re-reads the position
// on every commit and at least every poll (commits made by another
// process's runner do not close the channel).
func PollingWatermark(position func(ctx context.Context) (eventstore.Position, error), committed func() <-chan struct{}, poll time.Duration) Watermark {
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	return pollingWatermark{position: position, committed: committed, poll: poll}
}

type pollingWatermark struct {
	position  func(ctx context.Context) (eventstore.Position, error)
	committed func() <-chan struct{}
	poll      time.Duration
}

func (w pollingWatermark) WaitFor(ctx context.Context, pos eventstore.Position) error {
	t := time.NewTimer(w.poll)
	defer t.Stop()
	for {
		var ch <-chan struct{}
		if w.committed != nil {
			ch = w.committed()
		}
		at, err := w.position(ctx)
		if err == nil && !at.Less(pos) {
			return nil
		}
		t.Reset(w.poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-t.C:
		}
	}
}
