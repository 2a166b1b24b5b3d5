package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Subscribe implements eventstore.Store. The subscription reads pages of
// the global log below the horizon; ctx bounds only the call itself.
func (s *Store) Subscribe(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (eventstore.Subscription, error) {
	if s.closed() {
		return nil, fmt.Errorf("subscribe after %v: %w", after, eventstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe after %v: %w", after, err)
	}
	if err := checkPosition(after); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s.listener.start()
	return &subscription{store: s, filter: filter, pos: after, done: make(chan struct{})}, nil
}

type subscription struct {
	store  *Store
	filter eventstore.Filter

	mu  sync.Mutex // guards pos, for Position called from another goroutine
	pos eventstore.Position
	// live is true when the last read reached the head of the log: the
	// next read shares the store's (tailReads).
	live bool

	closeOnce sync.Once
	done      chan struct{}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	s := sub.store
	for {
		if err := sub.stopped(ctx); err != nil {
			return nil, err
		}
		// Take the wake-up channel before reading, so a notification that
		// arrives during the read is not lost.
		wake, gen, listening := s.listener.wake()
		p, err := sub.read(ctx, gen)
		if err != nil {
			if stop := sub.stopped(ctx); stop != nil {
				return nil, stop
			}
			return nil, fmt.Errorf("subscription after %v: %w", sub.Position(), err)
		}
		if len(p.events) > 0 {
			return p.events, nil
		}
		if p.cut {
			continue // a shared read cut before anything of ours: read on
		}
		var wait time.Duration
		switch {
		case p.heldBack:
			wait = heldBackRetry
		case listening:
			wait = idlePoll
		default:
			wait = downPoll
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		case <-sub.done:
		case <-s.done:
		}
		timer.Stop()
	}
}

// read reads one page after the subscription's position and moves the
// position past the events delivered and, when the page reached the head,
// past everything scanned. gen is the generation of the wake-up channel
// the caller waits on next (see tailReads).
func (sub *subscription) read(ctx context.Context, gen uint64) (page, error) {
	s := sub.store
	qctx, done := s.withStore(ctx)
	defer done()
	qctx, cancel := context.WithCancel(qctx)
	defer cancel()
	stop := context.AfterFunc(doneContext(sub.done), cancel)
	defer stop()
	from := sub.Position()
	var (
		p   page
		err error
	)
	if sub.live {
		p, err = s.tail.read(qctx, from, sub.filter, gen)
	} else {
		p, err = readPage(qctx, s.pool, from, sub.filter, defaultPage)
	}
	if err != nil {
		return p, err
	}
	sub.live = !p.cut && len(p.events) < defaultPage
	next := from
	if len(p.events) > 0 {
		next = p.events[len(p.events)-1].Position
	}
	if len(p.events) < defaultPage && next.Less(p.head) {
		next = p.head
	}
	sub.mu.Lock()
	sub.pos = next
	sub.mu.Unlock()
	return p, nil
}

// stopped reports why Next must return, if it must.
func (sub *subscription) stopped(ctx context.Context) error {
	select {
	case <-sub.done:
		return eventstore.ErrClosed
	case <-sub.store.done:
		return eventstore.ErrClosed
	default:
	}
	return ctx.Err()
}

// Position implements eventstore.Subscription.
func (sub *subscription) Position() eventstore.Position {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.pos
}

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() { close(sub.done) })
	return nil
}

// doneContext is a context that ends when the channel is closed.
type doneContext <-chan struct{}

func (d doneContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (d doneContext) Done() <-chan struct{}       { return d }
func (d doneContext) Value(any) any               { return nil }
func (d doneContext) Err() error {
	select {
	case <-d:
		return context.Canceled
	default:
		return nil
	}
}

// listener holds the store's one LISTEN connection and wakes every waiting
// subscription when an append to this schema commits.
type listener struct {
	config *pgx.ConnConfig
	schema string
	ctx    context.Context // ends when the store closes

	startOnce sync.Once
	finished  chan struct{} // closed when run returns; nil if never started

	mu        sync.Mutex
	wakeCh    chan struct{} // closed and replaced on every wake-up
	gen       uint64        // wake-ups so far: wakeCh's generation
	listening bool
	pid       uint32 // backend PID of the listener connection, 0 if none
}

func newListener(ctx context.Context, config *pgx.ConnConfig, schema string) *listener {
	return &listener{config: config, schema: schema, ctx: ctx, wakeCh: make(chan struct{})}
}

// start runs the listener if it does not run yet.
func (l *listener) start() {
	l.startOnce.Do(func() {
		l.mu.Lock()
		l.finished = make(chan struct{})
		l.mu.Unlock()
		go l.run()
	})
}

// wait returns once the listener has stopped (after the store's done).
func (l *listener) wait() {
	l.startOnce.Do(func() {}) // no start after this
	l.mu.Lock()
	finished := l.finished
	l.mu.Unlock()
	if finished != nil {
		<-finished
	}
}

// wake returns the channel closed at the next wake-up, its generation and
// whether the listener connection is up.
func (l *listener) wake() (<-chan struct{}, uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wakeCh, l.gen, l.listening
}

// generation returns the number of wake-ups so far.
func (l *listener) generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

func (l *listener) broadcast() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wakeCh)
	l.wakeCh = make(chan struct{})
	l.gen++
}

func (l *listener) setConn(pid uint32, listening bool) {
	l.mu.Lock()
	l.pid, l.listening = pid, listening
	l.mu.Unlock()
	// Wake everyone: while the connection was down notifications were lost,
	// and whoever waits on the slow poll must switch to the fast one.
	l.broadcast()
}

func (l *listener) run() {
	defer close(l.finished)
	ctx := l.ctx
	// Reconnect after 10 ms, doubling up to 1 s while the server stays
	// away; a connection that got as far as LISTEN starts over at 10 ms.
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.Multiplier, bo.RandomizationFactor = 10*time.Millisecond, time.Second, 2, 0.2
	bo.Reset()
	for ctx.Err() == nil {
		// While the connection is down the subscriptions poll fast, so the
		// error needs no other handling than a retry.
		connected, _ := l.listen(ctx)
		l.setConn(0, false)
		if ctx.Err() != nil {
			return
		}
		if connected {
			bo.Reset()
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// listen connects, listens and relays notifications until the connection
// fails or ctx ends. connected reports whether LISTEN succeeded.
func (l *listener) listen(ctx context.Context) (connected bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.config.Copy())
	if err != nil {
		return false, fmt.Errorf("connect listener: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	l.setConn(conn.PgConn().PID(), true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return true, nil
			}
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		if n.Payload == l.schema {
			l.broadcast()
		}
	}
}

// listenerPID is the backend PID of the listener connection, 0 when it is
// down. Tests use it to kill the connection.
func (l *listener) listenerPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}
