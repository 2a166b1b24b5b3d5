package realtime

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// LocalAppends decorates the event store that this instance's command side
// appends through: once an append to a queue stream is durable, and a
// socket on this instance watches that queue, it hands the appended events
// (read back from the stream, exactly as stored, with their positions) to
// the hub, which delivers them to the queue's players at once, without
// waiting for its log subscription's wake-up, the PostgreSQL horizon or the
// read model's watermark. The log subscription stays the path for appends
// made elsewhere (other instances, other processes), for admins watching
// every queue (they get every event in log order), and for resume.
//
// Exactly once, in order: the hub delivers an append locally only when the
// stream's previous event is already delivered (by the log, or locally),
// and drops from the log what it delivered locally (Hub.deliverLocal). A
// local delivery that cannot be made (a gap, a failed read) is simply left
// to the log. Safe for concurrent use.
type LocalAppends struct {
	eventstore.Store
	hub atomic.Pointer[Hub]
}

// NewLocalAppends decorates store; appends reach a hub once Deliver names
// it.
func NewLocalAppends(store eventstore.Store) *LocalAppends {
	return &LocalAppends{Store: store}
}

// Deliver hands the durable appends to h from now on.
func (l *LocalAppends) Deliver(h *Hub) { l.hub.Store(h) }

// Unwrap returns the decorated store.
func (l *LocalAppends) Unwrap() eventstore.Store { return l.Store }

// Append appends, then offers the events to the hub.
func (l *LocalAppends) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := l.Store.Append(ctx, stream, expected, events...)
	if err == nil && !res.Duplicate {
		l.appended(ctx, stream, res.Version-int64(len(events))+1, res.Version)
	}
	return res, err
}

// AppendMany appends, then offers each watched stream's events to the
// hub, read back in one ReadStreams call.
func (l *LocalAppends) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	outs, err := l.Store.AppendMany(ctx, appends)
	h := l.hub.Load()
	if h == nil {
		return outs, err
	}
	var (
		reads []eventstore.StreamRead
		local []localAppend
		most  int64
	)
	for i, o := range outs {
		if o.Err != nil || o.Duplicate {
			continue
		}
		player, ok := domain.PlayerFromStream(appends[i].Stream)
		if !ok || !h.watched(player) || len(reads) == eventstore.MaxStreamsPerRead {
			continue
		}
		from := o.Version - int64(len(appends[i].Events)) + 1
		first := max(1, from-1)
		reads = append(reads, eventstore.StreamRead{Stream: appends[i].Stream, From: first})
		local = append(local, localAppend{player: player, from: from, to: o.Version})
		most = max(most, o.Version-first+1)
	}
	if len(reads) == 0 {
		return outs, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localReadTimeout)
	defer cancel()
	evs, rerr := l.Store.ReadStreams(rctx, reads, int(most))
	if rerr != nil {
		return outs, err // the log delivers them
	}
	for i, la := range local {
		// A stream may have grown since: keep its events up to this append.
		for len(evs[i]) > 0 && evs[i][len(evs[i])-1].Version > la.to {
			evs[i] = evs[i][:len(evs[i])-1]
		}
		if len(evs[i]) > 0 && evs[i][len(evs[i])-1].Version == la.to {
			la.evs = evs[i]
			h.deliverLocal(rctx, la)
		}
	}
	return outs, err
}

// appended reads back versions from..to of stream, with the event before
// them (the hub checks that it was delivered), and offers them to the hub
// when a socket here watches the queue.
func (l *LocalAppends) appended(ctx context.Context, stream string, from, to int64) {
	h := l.hub.Load()
	if h == nil {
		return
	}
	player, ok := domain.PlayerFromStream(stream)
	if !ok || !h.watched(player) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localReadTimeout)
	defer cancel()
	first := max(1, from-1)
	evs, err := l.Store.ReadStream(ctx, stream, first, int(to-first+1))
	if err != nil || len(evs) == 0 || evs[len(evs)-1].Version != to {
		return // the log delivers them
	}
	h.deliverLocal(ctx, localAppend{player: player, evs: evs, from: from, to: to})
}

// localReadTimeout bounds the read back of a local append.
const localReadTimeout = time.Second

// localAppend is a durable append of this instance: evs are the stream's
// events from version from-1 (when from > 1) to the last appended.
type localAppend struct {
	player   domain.PlayerID
	evs      []eventstore.RecordedEvent
	from, to int64
}

// watched reports whether a socket here watches player's queue.
func (h *Hub) watched(player domain.PlayerID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.players[player]) > 0
}

// deliverLocal delivers a local append to the queue's players, in the
// appending goroutine, when the stream's event before it was delivered
// already: by the log (its position is at or below the hub's) or locally
// (h.localPos). It records what it delivered, so that the log's copy goes
// to the admins only. It holds the dispatch lock, which the dispatcher
// does not hold while it waits for the read model.
func (h *Hub) deliverLocal(ctx context.Context, l localAppend) {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	evs := l.evs
	if evs[0].Version < l.from { // the event before the append
		prev := evs[0]
		evs = evs[1:]
		h.mu.Lock()
		done := !h.pos.Less(prev.Position)
		h.mu.Unlock()
		if lp, ok := h.localPos[l.player]; ok && lp == prev.Position {
			done = true
		}
		if !done {
			return // the log delivers them
		}
	} else if l.from != 1 {
		return
	}
	h.mu.Lock()
	for len(evs) > 0 && !h.pos.Less(evs[0].Position) {
		evs = evs[1:] // the log was first
	}
	h.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	now := h.cfg.Now()
	for i, e := range evs {
		var queue []byte
		view, err := h.views.advance(ctx, l.player, e)
		if err == nil && h.cfg.Changes != nil && i == len(evs)-1 {
			h.cfg.Changes.QueueChanged(ctx, view)
		}
		if err == nil && endsCommand(evs, i) {
			queue, err = queueJSON(view, now)
		}
		if err != nil {
			h.log.Warn("fold the queue view; sending the event without it", "player", l.player, "version", e.Version, "err", err)
		}
		data, err := eventMessage(l.player, e, queue)
		if err != nil {
			h.log.Error("encode a message", "err", err)
			continue
		}
		h.deliverTo(l.player, &outMessage{pos: e.Position, data: data}, true, false)
		h.localPos[l.player] = e.Position
	}
	h.localDelivered.Add(int64(len(evs)))
}
