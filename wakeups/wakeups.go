// Package wakeups owns the realtime hubs' cross-instance wake-ups on Redis
// pub/sub (realtime.Waker): "the log reached this position". It is only a
// wake-up, never the data: a hub reads the log from where it is. Without
// Redis, or while it is down, each hub wakes on its own store's appends.
//
// The contract it passes on one Redis server and on a Redis Cluster:
// package wakeupstest.
package wakeups

import (
	"context"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/redisx"
)

const wakeChannel = "realtime-wake"

// Wakeups carries "the log reached this position" between instances on the
// realtime-wake pub/sub channel (realtime.Waker). Announce never blocks:
// the latest position waits for the publisher goroutine, older ones are
// coalesced. Announcements of this instance are not delivered back to it.
// After the subscription (re)connects, Wakeups delivers a zero Position:
// announcements may have been lost, read the log from where you are. Safe
// for concurrent use.
type Wakeups struct {
	c    *redisx.Client
	self string
	out  chan eventstore.Position

	mu      sync.Mutex
	pending *eventstore.Position
	poke    chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts publishing and listening on c. Close stops it.
func New(c *redisx.Client) *Wakeups {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Wakeups{c: c, self: uuid.NewString(), out: make(chan eventstore.Position, 64), poke: make(chan struct{}, 1), cancel: cancel}
	ps := c.Redis().Subscribe(ctx, c.Key(wakeChannel, ""))
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		defer ps.Close()
		w.listen(ctx, ps)
	}()
	go func() {
		defer w.wg.Done()
		w.publish(ctx)
	}()
	return w
}

// Close stops the goroutines.
func (w *Wakeups) Close() {
	w.cancel()
	w.wg.Wait()
}

// Announce implements realtime.Waker.
func (w *Wakeups) Announce(pos eventstore.Position) {
	w.mu.Lock()
	if w.pending == nil || w.pending.Less(pos) {
		w.pending = &pos
	}
	w.mu.Unlock()
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// Wakeups implements realtime.Waker.
func (w *Wakeups) Wakeups() <-chan eventstore.Position { return w.out }

func (w *Wakeups) publish(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.poke:
		}
		w.mu.Lock()
		pos := w.pending
		w.pending = nil
		w.mu.Unlock()
		if pos == nil || !w.c.Up() {
			continue // while Redis is down, the store's own wake-up carries on
		}
		cctx, cancel := w.c.Bound(ctx)
		err := w.c.Redis().Publish(cctx, w.c.Key(wakeChannel, ""), w.self+" "+pos.String()).Err()
		cancel()
		w.c.Observe(ctx, err)
	}
}

func (w *Wakeups) listen(ctx context.Context, ps *redis.PubSub) {
	ch := ps.ChannelWithSubscriptions()
	for {
		var msg any
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			msg = m
		}
		var pos eventstore.Position
		switch m := msg.(type) {
		case *redis.Subscription:
			// (Re)subscribed: deliver the zero Position, "resync".
		case *redis.Message:
			from, p, ok := strings.Cut(m.Payload, " ")
			if !ok || from == w.self {
				continue
			}
			var err error
			if pos, err = eventstore.ParsePosition(p); err != nil {
				continue
			}
		default:
			continue
		}
		select {
		case w.out <- pos:
		default: // the hub is busy reading; it reads by position anyway
		}
	}
}
