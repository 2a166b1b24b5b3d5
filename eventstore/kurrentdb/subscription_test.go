package kurrentdb

import (
	"context"
	"errors"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// script plays back what the client's subscription would deliver, then
// reports a drop. It stands in for *esdb.Subscription, not for a server:
// it lets the pump's own logic (positions, filters, checkpoints) be tested
// without one.
type script struct{ msgs []*esdb.SubscriptionEvent }

func (s *script) Recv() *esdb.SubscriptionEvent {
	if len(s.msgs) == 0 {
		return &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: errors.New("end of script")}}
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m
}

func (s *script) Close() error { return nil }

func appeared(stream, typ string, pos uint64) *esdb.SubscriptionEvent {
	return &esdb.SubscriptionEvent{EventAppeared: &esdb.ResolvedEvent{Event: &esdb.RecordedEvent{
		EventID: uuid.New(), EventType: typ, StreamID: stream, Position: esdb.Position{Commit: pos, Prepare: pos},
		Data: []byte(`{}`), UserMetadata: []byte(`{"schemaVersion":1,"occurredAt":"2026-03-14T15:09:26.535897Z"}`),
	}}}
}

func checkpoint(pos uint64) *esdb.SubscriptionEvent {
	return &esdb.SubscriptionEvent{CheckPointReached: &esdb.Position{Commit: pos, Prepare: pos}}
}

func TestSubscriptionPassesOnOnlyOurMatchingEvents(t *testing.T) {
	store := &Store{ns: "ns-", closed: make(chan struct{})}
	sub := &subscription{
		store:  store,
		filter: eventstore.Filter{StreamPrefixes: []string{"queue-"}},
		pos:    eventstore.Position{Commit: 4, Seq: 4},
		items:  make(chan item, batchSize),
		cancel: func() {},
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	play := &script{msgs: []*esdb.SubscriptionEvent{
		appeared("ns-queue-a", "A", 3), // at or before the start: dropped
		appeared("ns-queue-a", "A", 5),
		appeared("ns-queue-a", "$metadata", 6), // KurrentDB's own
		appeared("other-queue-a", "A", 7),      // another namespace
		appeared("ns-player-a", "A", 8),        // filtered out
		{CaughtUp: &esdb.Subscription{}},       // nothing to pass on
		checkpoint(9),                          // the server searched up to 9
		appeared("ns-queue-b", "B", 9),         // repeated position: dropped
		appeared("ns-queue-b", "B", 10),
		checkpoint(12),
	}}
	last := sub.forward(context.Background(), play, sub.pos)
	if last != (eventstore.Position{Commit: 12, Seq: 12}) {
		t.Fatalf("forward passed on up to %v, want 12:12", last)
	}
	ctx := context.Background()
	got, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Stream != "queue-a" || got[0].Position.Seq != 5 || got[1].Stream != "queue-b" || got[1].Version != 1 {
		t.Fatalf("Next = %+v, want queue-a@5 and queue-b@10", got)
	}
	if p := sub.Position(); p != (eventstore.Position{Commit: 12, Seq: 12}) {
		t.Errorf("Position = %v, want the last checkpoint 12:12", p)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sub.Next(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v, want context.Canceled", err)
	}
	// Still usable after a cancelled Next.
	sub.items <- item{pos: eventstore.Position{Commit: 13, Seq: 13}, event: &eventstore.RecordedEvent{Stream: "queue-c"}}
	if got, err := sub.Next(ctx); err != nil || len(got) != 1 || got[0].Stream != "queue-c" {
		t.Errorf("Next after a cancelled one = %+v, %v", got, err)
	}
	sub.Close()
	if _, err := sub.Next(ctx); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestSubscriptionEndsWhenStoreCloses(t *testing.T) {
	store := &Store{closed: make(chan struct{})}
	sub := &subscription{store: store, items: make(chan item), cancel: func() {}, done: make(chan struct{}), closed: make(chan struct{})}
	close(store.closed)
	if _, err := sub.Next(context.Background()); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Next on a closed store: %v, want ErrClosed", err)
	}
}
