package sqlite

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Subscribe implements eventstore.Store. ctx bounds only the call: the
// subscription lives until it or the store is closed (Next then returns
// eventstore.ErrClosed), and each Next is bounded by its own context. It
// holds no connection between calls to Next.
func (s *Store) Subscribe(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (eventstore.Subscription, error) {
	if after.Commit != 0 {
		return nil, fmt.Errorf("subscribe after %s: %w: not a SQLite position (commit part must be 0)", after, eventstore.ErrInvalid)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("subscribe after %s: %w", after, eventstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe after %s: %w", after, err)
	}
	return &subscription{store: s, filter: filter, pos: after, closed: make(chan struct{})}, nil
}

// subscription pages through the log with Store.scan and waits between
// pages for the store's wake-up or the fallback poll.
type subscription struct {
	store  *Store
	filter eventstore.Filter
	pos    eventstore.Position // scanned up to here

	closed chan struct{}
	once   sync.Once
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := sub.done(ctx); err != nil {
			return nil, err
		}
		// Take the wake-up channel before reading, so an append that
		// commits after the read's snapshot always wakes the wait below.
		wake := sub.store.wakeChan()
		evs, scanned, err := sub.store.scan(ctx, sub.pos, sub.filter, defaultPage)
		if err != nil {
			if derr := sub.done(ctx); derr != nil {
				return nil, derr
			}
			return nil, fmt.Errorf("subscription after %s: %w", sub.pos, err)
		}
		sub.pos = scanned
		if len(evs) > 0 {
			return evs, nil
		}
		if timer == nil {
			timer = time.NewTimer(pollInterval)
		} else {
			timer.Reset(pollInterval)
		}
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		case <-sub.closed:
		case <-sub.store.closed:
		}
	}
}

// done reports why the subscription cannot go on, or nil.
func (sub *subscription) done(ctx context.Context) error {
	select {
	case <-sub.closed:
		return eventstore.ErrClosed
	case <-sub.store.closed:
		return eventstore.ErrClosed
	default:
	}
	return ctx.Err()
}

// Position implements eventstore.Subscription.
func (sub *subscription) Position() eventstore.Position { return sub.pos }

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.once.Do(func() { close(sub.closed) })
	return nil
}
