package realtime

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// streamReader is the part of the event store the views read.
type streamReader interface {
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error)
}

// views folds queue aggregates from the event log so that every message can
// carry the queue as it is right after its event. The cache is written only
// by the hub's dispatcher (advance), in log order; catch-ups read copies
// (at, latest). Safe for concurrent use.
type views struct {
	store streamReader
	rules domain.Rules
	size  int

	mu      sync.Mutex
	entries map[domain.PlayerID]*list.Element // of *viewEntry
	lru     *list.List                        // front: most recently used
}

// viewEntry is a player's queue after the event at pos.
type viewEntry struct {
	player domain.PlayerID
	queue  *domain.Queue
	pos    eventstore.Position
}

func newViews(store streamReader, rules domain.Rules, size int) *views {
	return &views{store: store, rules: rules, size: size, entries: map[domain.PlayerID]*list.Element{}, lru: list.New()}
}

// apply folds one recorded event into q.
func apply(q *domain.Queue, e eventstore.RecordedEvent) error {
	de, err := domain.DecodeEvent(e.Type, e.SchemaVersion, e.Data)
	if err != nil {
		return fmt.Errorf("fold %s v%d of %s: %w", e.Type, e.Version, e.Stream, err)
	}
	if err := q.Apply(de); err != nil {
		return fmt.Errorf("fold %s v%d of %s: %w", e.Type, e.Version, e.Stream, err)
	}
	return nil
}

// readUpTo applies to q the stream's events after q's version up to and
// including version upTo (upTo < 0: everything stored), and returns the
// position of the last event applied (zero if none).
func (v *views) readUpTo(ctx context.Context, q *domain.Queue, upTo int64) (eventstore.Position, error) {
	var last eventstore.Position
	stream := q.Player().Stream()
	for upTo < 0 || q.Version() < upTo {
		limit := 1000
		if upTo >= 0 {
			limit = int(min(int64(limit), upTo-q.Version()))
		}
		evs, err := v.store.ReadStream(ctx, stream, q.Version()+1, limit)
		if err != nil {
			return last, fmt.Errorf("read %s from version %d: %w", stream, q.Version()+1, err)
		}
		if len(evs) == 0 {
			if upTo >= 0 {
				return last, fmt.Errorf("read %s: version %d is not stored (stream at %d)", stream, upTo, q.Version())
			}
			return last, nil
		}
		for _, e := range evs {
			if err := apply(q, e); err != nil {
				return last, err
			}
			last = e.Position
		}
	}
	return last, nil
}

// copyAt returns a copy of the cached queue of player when it is at or
// before version (any version when version < 0), with its position.
func (v *views) copyAt(player domain.PlayerID, version int64) (*domain.Queue, eventstore.Position, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.entries[player]
	if !ok {
		return nil, eventstore.Position{}, false
	}
	ent := el.Value.(*viewEntry)
	if version >= 0 && ent.queue.Version() > version {
		return nil, eventstore.Position{}, false
	}
	return ent.queue.Clone(), ent.pos, true
}

// at returns a queue of player at exactly version, which the caller owns.
func (v *views) at(ctx context.Context, player domain.PlayerID, version int64) (*domain.Queue, error) {
	q, _, ok := v.copyAt(player, version)
	if !ok {
		q = domain.NewQueue(player, v.rules)
	}
	if _, err := v.readUpTo(ctx, q, version); err != nil {
		return nil, err
	}
	return q, nil
}

// latest returns the queue of player with every stored event applied,
// which the caller owns, and the position of its last event (zero for a
// stream without events).
func (v *views) latest(ctx context.Context, player domain.PlayerID) (*domain.Queue, eventstore.Position, error) {
	q, pos, ok := v.copyAt(player, -1)
	if !ok {
		q = domain.NewQueue(player, v.rules)
	}
	last, err := v.readUpTo(ctx, q, -1)
	if err != nil {
		return nil, eventstore.Position{}, err
	}
	if !last.IsZero() {
		pos = last
	}
	v.warm(q, pos)
	return q, pos, nil
}

// warm caches a copy of q (at pos) for a player the cache does not hold,
// so that the dispatcher's first event of a newly watched player needs no
// read. If q is ahead of the dispatcher, advance rebuilds the entry when
// it meets an event at or below q's version: correct, only slower.
func (v *views) warm(q *domain.Queue, pos eventstore.Position) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.entries[q.Player()]; ok {
		return
	}
	v.entries[q.Player()] = v.lru.PushFront(&viewEntry{player: q.Player(), queue: q.Clone(), pos: pos})
	for v.lru.Len() > v.size {
		old := v.lru.Back()
		v.lru.Remove(old)
		delete(v.entries, old.Value.(*viewEntry).player)
	}
}

// advance folds e, the next event of its player's stream in log order, into
// the cache and returns the queue's view after it. A cache entry behind e
// reads the missing events first; one at or after e (never, while only the
// dispatcher writes) is rebuilt.
func (v *views) advance(ctx context.Context, player domain.PlayerID, e eventstore.RecordedEvent) (domain.QueueView, error) {
	v.mu.Lock()
	var ent *viewEntry
	if el, ok := v.entries[player]; ok {
		v.lru.MoveToFront(el)
		ent = el.Value.(*viewEntry)
		if ent.queue.Version() >= e.Version {
			ent.queue = domain.NewQueue(player, v.rules)
		}
	} else {
		ent = &viewEntry{player: player, queue: domain.NewQueue(player, v.rules)}
		v.entries[player] = v.lru.PushFront(ent)
		for v.lru.Len() > v.size {
			old := v.lru.Back()
			v.lru.Remove(old)
			delete(v.entries, old.Value.(*viewEntry).player)
		}
	}
	// Work on a copy, so that readers copying the entry meanwhile never see
	// a half-applied queue, and a failure leaves the entry as it was.
	q := ent.queue.Clone()
	v.mu.Unlock()

	if _, err := v.readUpTo(ctx, q, e.Version-1); err != nil {
		v.forget(player)
		return domain.QueueView{}, err
	}
	if err := apply(q, e); err != nil {
		v.forget(player)
		return domain.QueueView{}, err
	}
	v.mu.Lock()
	if el, ok := v.entries[player]; ok {
		ent := el.Value.(*viewEntry)
		ent.queue, ent.pos = q, e.Position
	}
	v.mu.Unlock()
	return q.View(), nil
}

func (v *views) forget(player domain.PlayerID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if el, ok := v.entries[player]; ok {
		v.lru.Remove(el)
		delete(v.entries, player)
	}
}
