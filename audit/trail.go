package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// queueSize is how many entries wait for the writer before Record drops
// rows (the log lines are still written).
const queueSize = 4096

// Trail records entries to the log and to a Store. Safe for concurrent use.
type Trail struct {
	log     *slog.Logger
	store   *Store
	now     func() time.Time
	queue   chan item
	dropped atomic.Int64
	closing sync.Once
	done    chan struct{}
}

// item is an entry to store, or a flush marker (flushed set).
type item struct {
	entry   Entry
	flushed chan struct{}
}

// NewTrail returns a trail that logs to log (component=audit) and, when
// store is not nil, stores every entry there. Close it to stop its writer.
func NewTrail(log *slog.Logger, store *Store) *Trail {
	if log == nil {
		log = slog.Default()
	}
	t := &Trail{log: log.With("component", "audit"), store: store, now: time.Now, queue: make(chan item, queueSize), done: make(chan struct{})}
	if store == nil {
		close(t.done)
		return t
	}
	go t.write()
	return t
}

// Store is where the trail keeps entries, nil when it only logs.
func (t *Trail) Store() *Store { return t.store }

// Record logs e at once and queues it for the store; it never waits for
// the database. A nil Trail records nothing.
func (t *Trail) Record(ctx context.Context, e Entry) {
	if t == nil {
		return
	}
	if e.At.IsZero() {
		e.At = t.now()
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	level := slog.LevelInfo
	if e.Action == Refused {
		level = slog.LevelWarn
	}
	t.log.LogAttrs(ctx, level, "audit",
		slog.String("action", string(e.Action)),
		slog.String("principal", e.Principal),
		slog.String("role", e.Role),
		slog.String("remote", e.Remote),
		slog.String("target", e.Target),
		slog.Int("status", e.Status),
		slog.String("detail", e.Detail),
	)
	if t.store == nil {
		return
	}
	select {
	case t.queue <- item{entry: e}:
	default:
		n := t.dropped.Add(1)
		t.log.WarnContext(ctx, "audit row dropped: the writer is behind (the log line above stands)", "dropped", n)
	}
}

// Dropped is how many entries were logged but not stored.
func (t *Trail) Dropped() int64 { return t.dropped.Load() }

// Flush waits until every entry recorded before it was written (or failed
// to be), or ctx ends.
func (t *Trail) Flush(ctx context.Context) error {
	if t == nil || t.store == nil {
		return nil
	}
	done := make(chan struct{})
	select {
	case t.queue <- item{flushed: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued (within a few seconds) and stops the writer.
func (t *Trail) Close() {
	if t == nil {
		return
	}
	t.closing.Do(func() {
		if t.store != nil {
			close(t.queue)
		}
	})
	<-t.done
}

// write stores queued entries in batches until the queue closes. A batch
// that fails is retried a few times (a database restarting), then its
// rows are counted as dropped.
func (t *Trail) write() {
	defer close(t.done)
	for it := range t.queue {
		batch := []Entry{}
		var flushes []chan struct{}
		add := func(it item) {
			if it.flushed != nil {
				flushes = append(flushes, it.flushed)
			} else {
				batch = append(batch, it.entry)
			}
		}
		add(it)
	more:
		for len(batch) < 500 {
			select {
			case it, ok := <-t.queue:
				if !ok {
					break more
				}
				add(it)
			default:
				break more
			}
		}
		t.store.appendWithRetry(batch, t)
		for _, f := range flushes {
			close(f)
		}
	}
}

func (s *Store) appendWithRetry(batch []Entry, t *Trail) {
	if len(batch) == 0 {
		return
	}
	var err error
	for attempt := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.Append(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 250 * time.Millisecond)
	}
	n := t.dropped.Add(int64(len(batch)))
	t.log.Error("audit rows not stored (their log lines stand)", "rows", len(batch), "dropped", n, "err", err)
}
