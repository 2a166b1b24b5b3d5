package kurrentdb

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// batchSize bounds the events one Next returns.
	batchSize = 256
	// resubscribeDelay is the pause before resubscribing after a drop.
	resubscribeDelay = 200 * time.Millisecond
)

// Subscribe implements eventstore.Store. ctx bounds only the call; the
// subscription lives until it or the store is closed. It subscribes to
// $all after the given position (never the client's default, the end).
func (s *Store) Subscribe(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (eventstore.Subscription, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("subscribe after %s: %w", after, eventstore.ErrClosed)
	}
	life, cancel := context.WithCancel(context.Background())
	sub := &subscription{
		store:  s,
		filter: filter,
		pos:    after,
		items:  make(chan item, batchSize),
		cancel: cancel,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	// Subscribe once here so that a bad URL or a refused filter fails the
	// call; the pump resubscribes by itself after a drop. The client ties
	// the subscription to the context it is made with, so it is made with
	// the subscription's own, which ctx cancels only during this call.
	stop := context.AfterFunc(ctx, cancel)
	first, err := s.subscribeAll(life, after, filter)
	if !stop() && err == nil {
		first.Close()
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe after %s: %w", after, s.fail(ctx, err))
	}
	go sub.pump(life, first)
	return sub, nil
}

func (s *Store) subscribeAll(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (*esdb.Subscription, error) {
	return s.client.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   fromPosition(after),
		Filter: serverFilter(filter, s.ns),
	})
}

// serverSubscription is the part of *esdb.Subscription the pump uses.
type serverSubscription interface {
	Recv() *esdb.SubscriptionEvent
	Close() error
}

// item is what the pump hands to Next: an event of ours, or a position
// the server has searched up to (a checkpoint or an event filtered out).
type item struct {
	event *eventstore.RecordedEvent
	pos   eventstore.Position
}

type subscription struct {
	store  *Store
	filter eventstore.Filter
	pos    eventstore.Position // owned by Next

	items  chan item
	cancel context.CancelFunc
	done   chan struct{} // closed when the pump returns
	closed chan struct{} // closed by Close
	once   sync.Once
}

// pump reads the server's subscription into items, resubscribing after
// the last position it passed on when the subscription drops.
func (sub *subscription) pump(ctx context.Context, es serverSubscription) {
	defer close(sub.done)
	last := sub.pos
	for {
		if es != nil {
			last = sub.forward(ctx, es, last)
			es.Close()
			es = nil
		}
		if ctx.Err() != nil || sub.store.isClosed() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.store.closed:
			return
		case <-time.After(resubscribeDelay):
		}
		// A failed resubscription (the server is down) is retried after
		// the same pause.
		if next, err := sub.store.subscribeAll(ctx, last, sub.filter); err == nil {
			es = next
		}
	}
}

// forward passes es's events on until es drops or ctx ends, and returns
// the last position it passed on.
func (sub *subscription) forward(ctx context.Context, es serverSubscription, last eventstore.Position) eventstore.Position {
	stop := context.AfterFunc(ctx, func() { es.Close() })
	defer stop()
	for {
		msg := es.Recv()
		var it item
		switch {
		case msg.SubscriptionDropped != nil:
			return last
		case msg.CheckPointReached != nil:
			it.pos = toPosition(*msg.CheckPointReached)
		case msg.EventAppeared != nil && msg.EventAppeared.Event != nil:
			r := msg.EventAppeared.Event
			it.pos = toPosition(r.Position)
			if sub.store.ours(r) {
				if e := decodeEvent(r, sub.store.ns); sub.filter.Match(e.Stream, e.Type) {
					it.event = &e
				}
			}
		default:
			continue // caught up, fell behind: nothing to pass on
		}
		if !last.Less(it.pos) {
			continue // at or before what was passed on already
		}
		select {
		case sub.items <- it:
			last = it.pos
		case <-ctx.Done():
			return last
		}
	}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	var batch []eventstore.RecordedEvent
	take := func(it item) {
		sub.pos = it.pos
		if it.event != nil {
			batch = append(batch, *it.event)
		}
	}
	for len(batch) == 0 {
		if err := sub.closedErr(); err != nil {
			return nil, err
		}
		select {
		case it := <-sub.items:
			take(it)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sub.closed:
			return nil, eventstore.ErrClosed
		case <-sub.done:
			return nil, eventstore.ErrClosed
		case <-sub.store.closed:
			return nil, eventstore.ErrClosed
		}
	}
	for len(batch) < batchSize {
		select {
		case it := <-sub.items:
			take(it)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

func (sub *subscription) closedErr() error {
	select {
	case <-sub.closed:
		return eventstore.ErrClosed
	case <-sub.done:
		return eventstore.ErrClosed
	case <-sub.store.closed:
		return eventstore.ErrClosed
	default:
		return nil
	}
}

// Position implements eventstore.Subscription.
func (sub *subscription) Position() eventstore.Position { return sub.pos }

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.once.Do(func() {
		close(sub.closed)
		sub.cancel()
	})
	return nil
}
