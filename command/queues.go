package command

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// EventStore is the part of the event store port the command side uses.
// Every eventstore.Store implements it.
type EventStore interface {
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error)
	ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error)
	Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error)
	AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error)
}

// Config configures the command side. The zero value of every field means
// its default.
type Config struct {
	// Rules are the game rules decisions follow (catalog, queue limit).
	Rules domain.Rules
	// Clock gives the time of each command. Default time.Now.
	Clock func() time.Time
	// MaxAttempts bounds the decisions of one command that loses to
	// concurrent writers (eventstore.ErrWrongVersion). Default 5.
	MaxAttempts int
	// CacheSize bounds the queues kept loaded in memory. Default 10,000.
	CacheSize int
	// KeysPerQueue bounds the idempotency keys remembered per queue.
	// Default 100.
	KeysPerQueue int
	// ReadPageSize is the number of events read per ReadStream call when
	// loading. Default 1,000.
	ReadPageSize int
	// Optimistic makes a command on a cached queue decide without reading
	// the stream's tail first and append with the cached version: one
	// round trip instead of two when nothing else wrote the stream since.
	// When the append finds another version, or the cached queue refuses
	// the command, decides nothing, fails its If-Match or knows its key,
	// the command reads the tail and decides again as usual. For a writer
	// that makes most of its streams' writes (the processor); a handler
	// whose cache other writers keep outdating pays a failed append (and
	// the reads that explain it) instead of a read. Default false.
	Optimistic bool
	// Snapshots keeps the queues' snapshots (see snapshots.go): a queue
	// that is not cached loads from its snapshot and the events after it.
	// Nil: the event store's own when it implements
	// eventstore.SnapshotStore (a decorated store must be given here).
	Snapshots eventstore.SnapshotStore
	// SnapshotEvery is how many events a queue's stream grows between two
	// snapshots of it. Default 20; negative: no snapshots are taken or
	// read.
	SnapshotEvery int
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 10_000
	}
	if c.KeysPerQueue <= 0 {
		c.KeysPerQueue = 100
	}
	if c.ReadPageSize <= 0 {
		c.ReadPageSize = 1000
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 20
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d is over 100", c.MaxAttempts))
	}
	return errors.Join(errs...)
}

// Queues loads, caches and saves queue aggregates. It is safe for
// concurrent use.
type Queues struct {
	store EventStore
	cfg   Config
	*cache
}

// cache is what the Queues that Share returns have in common: the loaded
// queues, the locks that serialize the commands of each stream in this
// process, and the snapshots.
type cache struct {
	snaps *snapshotter

	mu      sync.Mutex
	entries map[string]*list.Element // of *cached
	lru     *list.List               // front: most recently used
}

// cached is one loaded queue. lock (a one-slot semaphore, so waiting
// honours the context) serializes the commands of one stream in this
// process; st, guarded by lock, is nil until loaded or after a failed load.
type cached struct {
	stream string
	lock   chan struct{}
	st     *loaded
}

// acquire takes c's lock, or returns ctx's error.
func (c *cached) acquire(ctx context.Context) error {
	select {
	case c.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the other commands of %s: %w", c.stream, ctx.Err())
	}
}

func (c *cached) release() { <-c.lock }

// loaded is a queue as of a stream version, with the idempotency keys of
// its last commands.
type loaded struct {
	queue   *domain.Queue
	version int64
	keys    map[string]*keyRecord
	order   []string // keys, oldest first

	last         uuid.UUID // ID of the event at version
	check        uuid.UUID // restored from a snapshot: the event to find at version before going on
	snapshotAt   int64     // version of the last snapshot taken or restored
	snapshotSoon bool      // a cold load read a long tail: snapshot at the next command's end
}

// keyRecord is what a queue remembers of one command's events.
type keyRecord struct {
	firstID  uuid.UUID
	version  int64                // stream version after the command's last event
	position eventstore.Position  // global position of the command's last event
	enqueued *domain.TaskEnqueued // the task queued by the command, if any
}

// NewQueues returns the aggregate repository over store.
func NewQueues(store EventStore, cfg Config) (*Queues, error) {
	if store == nil {
		return nil, errors.New("new command queues: nil event store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new command queues: %w", err)
	}
	cfg.setDefaults()
	return &Queues{store: store, cfg: cfg, cache: &cache{snaps: newSnapshotter(store, cfg.Snapshots, cfg.SnapshotEvery),
		entries: map[string]*list.Element{}, lru: list.New()}}, nil
}

// Share returns a Queues over r's cache that decides with clock and is
// optimistic or not (Config.Optimistic), for another writer of the same
// streams in this process: the processor beside the API. Each finds the
// queues as the other's commands left them, so neither reads a tail the
// other wrote, and their commands on one stream take turns instead of
// racing to the store.
func (r *Queues) Share(clock func() time.Time, optimistic bool) *Queues {
	cfg := r.cfg
	cfg.Clock, cfg.Optimistic = clock, optimistic
	return &Queues{store: r.store, cfg: cfg, cache: r.cache}
}

// Now returns the time of the configured clock.
func (r *Queues) Now() time.Time { return r.cfg.Clock() }

// Rules returns the rules decisions follow.
func (r *Queues) Rules() domain.Rules { return r.cfg.Rules }

// entry returns the cache entry of stream, creating it (and evicting the
// least recently used one beyond CacheSize).
func (r *Queues) entry(stream string) *cached {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[stream]; ok {
		r.lru.MoveToFront(el)
		return el.Value.(*cached)
	}
	c := &cached{stream: stream, lock: make(chan struct{}, 1)}
	r.entries[stream] = r.lru.PushFront(c)
	for r.lru.Len() > r.cfg.CacheSize {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.entries, old.Value.(*cached).stream)
	}
	return c
}

// Forget drops the cached queue of player, for a player forgotten
// (eventstore.Store.DeleteStream): the next command loads the stream from
// the start. Another process that still caches the queue drops it at its
// next command, when the append reports a version below the cached one.
func (r *Queues) Forget(player domain.PlayerID) {
	stream := player.Stream()
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[stream]; ok {
		r.lru.Remove(el)
		delete(r.entries, stream)
	}
}

// Len returns the number of queues cached.
func (r *Queues) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}

// catchUp brings c's state to the end of its stream, from its snapshot
// when it is not loaded yet. c's lock must be held.
func (r *Queues) catchUp(ctx context.Context, c *cached, player domain.PlayerID) (st *loaded, err error) {
	if c.st == nil {
		// A cold load snapshots the queue if it read a tail of a quarter
		// of Config.SnapshotEvery events or more, so that the next cold
		// load (after another restart or an eviction) reads a short one.
		defer func() {
			if st != nil {
				st.snapshotSoon = st.version-st.snapshotAt >= r.snaps.coldTail()
			}
		}()
		c.st = r.snaps.load(ctx, c.stream, player, r.cfg.Rules)
	}
	if c.st == nil {
		c.st = r.fresh(player)
	}
	st = c.st
	for {
		from := st.version + 1
		if st.check != uuid.Nil {
			from = st.version // the snapshot's own event, to check
		}
		page, err := r.store.ReadStream(ctx, c.stream, from, r.cfg.ReadPageSize)
		if err != nil {
			return nil, fmt.Errorf("read %s from version %d: %w", c.stream, from, err)
		}
		full := len(page) == r.cfg.ReadPageSize
		if st.check != uuid.Nil {
			if len(page) == 0 || page[0].Version != st.version || page[0].ID != st.check {
				c.st = r.fresh(player) // a snapshot of another history: load the stream from the start
				st = c.st
				continue
			}
			st.check, page = uuid.Nil, page[1:]
		}
		for _, rec := range page {
			if err := r.applyRecorded(st, rec); err != nil {
				c.st = nil // the next command loads from scratch
				return nil, fmt.Errorf("load %s: %w", c.stream, err)
			}
		}
		if !full {
			return st, nil
		}
	}
}

// fresh is the state of a queue before its first event.
func (r *Queues) fresh(player domain.PlayerID) *loaded {
	return &loaded{queue: domain.NewQueue(player, r.cfg.Rules), keys: map[string]*keyRecord{}}
}

// snapshotIfDue saves c's state in the background when its stream grew by
// Config.SnapshotEvery events since the last snapshot. c's lock must be
// held.
func (r *Queues) snapshotIfDue(c *cached) {
	if r.snaps.due(c.st) {
		r.snaps.take(c.stream, c.st)
	}
}

func (r *Queues) applyRecorded(st *loaded, rec eventstore.RecordedEvent) error {
	if rec.Version != st.version+1 {
		return fmt.Errorf("event %s has version %d, expected %d", rec.ID, rec.Version, st.version+1)
	}
	e, err := domain.DecodeEvent(rec.Type, rec.SchemaVersion, rec.Data)
	if err != nil {
		return fmt.Errorf("event %d: %w", rec.Version, err)
	}
	if err := st.queue.Apply(e); err != nil {
		return err
	}
	st.version, st.last = rec.Version, rec.ID
	r.remember(st, rec.Metadata.CausationID, rec.ID, rec.Version, rec.Position, e)
	return nil
}

// remember records that event id (at version, position) came from the
// command with key.
func (r *Queues) remember(st *loaded, key string, id uuid.UUID, version int64, position eventstore.Position, e domain.Event) {
	if key == "" {
		return
	}
	k, ok := st.keys[key]
	if !ok {
		k = &keyRecord{firstID: id}
		st.keys[key] = k
		st.order = append(st.order, key)
		if len(st.order) > r.cfg.KeysPerQueue {
			delete(st.keys, st.order[0])
			st.order = st.order[1:]
		}
	}
	k.version, k.position = version, position
	if te, ok := e.(domain.TaskEnqueued); ok && k.enqueued == nil {
		k.enqueued = &te
	}
}

// Request carries what every command has besides its own fields.
type Request struct {
	// PlayerID is whose queue the command acts on.
	PlayerID string
	// IdempotencyKey identifies the request across retries (1-128
	// printable ASCII). Empty: the handler makes one, so the request is
	// not retry-safe.
	IdempotencyKey string
	// IfMatch, when set, makes the command conditional on the queue's
	// stream version.
	IfMatch *int64
	// CorrelationID ties the events to the request (e.g. its request ID).
	CorrelationID string
	// Actor is who asked: a player ID, ActorSystem or an admin.
	Actor string
}

// ActorSystem is the Actor of the commands the service sends itself (the
// processor's completions); metrics tells the processor's lateness by it.
const ActorSystem = "system"

// Result is the outcome of a command.
type Result struct {
	// View is the queue after the command. For a duplicate it is the
	// queue as it is now.
	View domain.QueueView
	// Version is the stream version after the command (the ETag); for a
	// duplicate, the version right after the first execution.
	Version int64
	// Position is the global position of the command's last event (zero
	// when it appended nothing).
	Position eventstore.Position
	// Events are the events the command appended (none for a duplicate).
	Events []domain.Event
	// Duplicate is true when the request was a retry of one already
	// executed: nothing was appended.
	Duplicate bool
}

// decision is what a handler asks the aggregate to do. key is the
// command's idempotency key (to derive IDs from).
type decision func(q *domain.Queue, now time.Time, key string) ([]domain.Event, error)

// outcome is Result plus what a handler may need of the first execution.
type outcome struct {
	Result
	first *keyRecord
}

// execute runs one command: load, check idempotency and the condition,
// decide, append with the exact expected version, retry on conflict.
func (r *Queues) execute(ctx context.Context, req Request, fp string, decide decision) (outcome, error) {
	return r.executeAs(ctx, req, fp, decide, r.cfg.Optimistic)
}

// executeAs is execute, optimistic (Config.Optimistic) or not.
func (r *Queues) executeAs(ctx context.Context, req Request, fp string, decide decision, optimistic bool) (outcome, error) {
	player, err := domain.ParsePlayerID(req.PlayerID)
	if err != nil {
		return outcome{}, err
	}
	key := req.IdempotencyKey
	if key == "" {
		key = uuid.NewString()
	} else if err := ValidateKey(key); err != nil {
		return outcome{}, err
	}
	stream := player.Stream()
	firstID := eventID(stream, key, fp, 0)
	for attempt := 1; ; attempt++ {
		out, retry, err := r.attempt(ctx, player, stream, req, key, fp, firstID, decide, optimistic)
		if !retry {
			return out, err
		}
		if attempt >= r.cfg.MaxAttempts {
			return outcome{}, fmt.Errorf("%s: %w: lost %d times to concurrent writers (last: %v)", stream, ErrConflict, attempt, err)
		}
		// A short random pause spreads competing processes apart.
		pause := time.Duration(rand.Int64N(int64(attempt)*int64(5*time.Millisecond) + 1))
		select {
		case <-ctx.Done():
			return outcome{}, fmt.Errorf("%s: retry after a conflict: %w", stream, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// attempt makes one decision. retry reports a lost race worth retrying.
// When optimistic it first decides on the cached queue as it is
// (see decideOn), and catches up and decides again when that was not
// enough.
func (r *Queues) attempt(ctx context.Context, player domain.PlayerID, stream string, req Request, key, fp string, firstID uuid.UUID, decide decision, optimistic bool) (out outcome, retry bool, err error) {
	c := r.entry(stream)
	if err := c.acquire(ctx); err != nil {
		return outcome{}, false, err
	}
	defer c.release()
	defer r.snapshotIfDue(c) // before the release
	if optimistic && c.st != nil && c.st.check == uuid.Nil {
		out, retry, err := r.decideOn(ctx, c, c.st, player, stream, req, key, fp, firstID, decide, true)
		if !errors.Is(err, errMaybeStale) {
			return out, retry, err
		}
	}
	st, err := r.catchUp(ctx, c, player)
	if err != nil {
		return outcome{}, false, err
	}
	return r.decideOn(ctx, c, st, player, stream, req, key, fp, firstID, decide, false)
}

// errMaybeStale is decideOn's answer, on a queue not caught up, to anything
// but an append that took: the queue may be out of date, so the command
// must catch up and decide again.
var errMaybeStale = errors.New("the cached queue may be out of date")

// decideOn checks idempotency and the condition on st, decides and appends
// with the exact expected version st.version. c's lock must be held.
// When optimistic, st (the cached queue, not caught up) may lag behind the
// stream: then only an append that took is an answer (it proves st was the
// end of the stream), and a wrong version, a refusal, no events, a failed
// If-Match or a known key return errMaybeStale.
func (r *Queues) decideOn(ctx context.Context, c *cached, st *loaded, player domain.PlayerID, stream string, req Request, key, fp string, firstID uuid.UUID, decide decision, optimistic bool) (out outcome, retry bool, err error) {
	p, out, err := r.prepare(st, stream, req, key, fp, firstID, decide, optimistic)
	if p == nil {
		return out, false, err
	}
	res, err := r.store.Append(ctx, stream, eventstore.Exact(st.version), p.data...)
	return r.settle(ctx, c, st, player, stream, key, firstID, p, res, err, optimistic)
}

// pending is a decision to append: the queue after it, its events and
// their data.
type pending struct {
	queue  *domain.Queue
	events []domain.Event
	data   []eventstore.EventData
}

// prepare checks idempotency and the condition on st and decides (see
// decideOn). It returns the decision to append, or, when there is nothing
// to append, nil and the command's answer.
func (r *Queues) prepare(st *loaded, stream string, req Request, key, fp string, firstID uuid.UUID, decide decision, optimistic bool) (*pending, outcome, error) {
	if out, seen, err := seenBefore(st, stream, key, firstID); seen {
		if optimistic {
			return nil, outcome{}, errMaybeStale
		}
		return nil, out, err
	}
	if req.IfMatch != nil && *req.IfMatch != st.version {
		if optimistic {
			return nil, outcome{}, errMaybeStale
		}
		return nil, outcome{}, &PreconditionFailedError{Stream: stream, Expected: *req.IfMatch, Actual: st.version}
	}
	q := st.queue.Clone()
	events, err := decide(q, r.cfg.Clock(), key)
	if err != nil {
		if optimistic {
			return nil, outcome{}, errMaybeStale
		}
		return nil, outcome{}, err
	}
	if len(events) == 0 {
		if optimistic {
			return nil, outcome{}, errMaybeStale
		}
		return nil, outcome{Result: Result{View: q.View(), Version: st.version}}, nil
	}
	data := make([]eventstore.EventData, len(events))
	for i, e := range events {
		typ, version, payload, err := domain.EncodeEvent(e)
		if err != nil {
			return nil, outcome{}, err
		}
		data[i] = eventstore.EventData{
			ID: eventID(stream, key, fp, i), Type: string(typ), SchemaVersion: version, Data: payload,
			Metadata: eventstore.Metadata{
				OccurredAt: e.OccurredAt(), CorrelationID: req.CorrelationID, CausationID: key, Actor: req.Actor,
			},
		}
	}
	return &pending{queue: q, events: events, data: data}, outcome{}, nil
}

// settle takes the store's answer (res, err) to the append of p with the
// expected version st.version: it moves st past the events that took, and
// returns the command's answer (see decideOn). c's lock must be held.
func (r *Queues) settle(ctx context.Context, c *cached, st *loaded, player domain.PlayerID, stream, key string, firstID uuid.UUID, p *pending, res eventstore.AppendResult, err error, optimistic bool) (out outcome, retry bool, _ error) {
	var wrong *eventstore.WrongVersionError
	if errors.As(err, &wrong) && wrong.Actual < st.version {
		// The stream is shorter than the queue counts: it was deleted (a
		// forgotten player, eventstore.Store.DeleteStream) and perhaps
		// started again. Reading on from st.version would never see the
		// new stream: load it from the start.
		c.st = nil
		return outcome{}, true, err
	}
	switch {
	case errors.Is(err, eventstore.ErrWrongVersion) && optimistic:
		return outcome{}, false, errMaybeStale
	case errors.Is(err, eventstore.ErrWrongVersion):
		return outcome{}, true, err
	case errors.Is(err, eventstore.ErrInvalid) && eventstore.ValidateStreamID(stream) == nil:
		// The events are well formed (the domain made them), so the store
		// refused their IDs: they are stored at an earlier place of the
		// stream (a store reports a wrong version first, so st was the end
		// of the stream). That is this key, used by a request older than the
		// keys the queue remembers: too old to answer again, and not to be
		// run twice.
		return outcome{}, false, fmt.Errorf("%s: key %q was used by a request older than the last %d: %w", stream, key, r.cfg.KeysPerQueue, ErrIdempotencyKeyReused)
	case err != nil:
		return outcome{}, false, fmt.Errorf("append %d events to %s: %w", len(p.data), stream, err)
	case res.Duplicate:
		// The same request, appended concurrently by another process: read
		// it and answer as a duplicate.
		st, err := r.catchUp(ctx, c, player)
		if err != nil {
			return outcome{}, false, err
		}
		if out, seen, err := seenBefore(st, stream, key, firstID); seen {
			return out, false, err
		}
		return outcome{}, false, fmt.Errorf("append %d events to %s: the store reports them stored, the stream does not show them", len(p.data), stream)
	case res.Version != p.queue.Version():
		c.st = nil
		return outcome{}, false, fmt.Errorf("append %d events to %s: the store reports version %d, the queue counts %d", len(p.data), stream, res.Version, p.queue.Version())
	}
	st.queue, st.version, st.last = p.queue, res.Version, p.data[len(p.data)-1].ID
	for i, e := range p.events {
		r.remember(st, key, p.data[i].ID, res.Version-int64(len(p.events)-1-i), res.Position, e)
	}
	return outcome{Result: Result{View: p.queue.View(), Version: res.Version, Position: res.Position, Events: p.events}}, false, nil
}

// seenBefore answers a request whose key the queue has seen: the first
// result when firstID matches (the same request), else
// ErrIdempotencyKeyReused. seen is false for a new key.
func seenBefore(st *loaded, stream, key string, firstID uuid.UUID) (out outcome, seen bool, err error) {
	k, ok := st.keys[key]
	switch {
	case !ok:
		return outcome{}, false, nil
	case k.firstID != firstID:
		return outcome{}, true, fmt.Errorf("%s: key %q: %w", stream, key, ErrIdempotencyKeyReused)
	}
	first := *k
	res := Result{View: st.queue.View(), Version: k.version, Position: k.position, Duplicate: true}
	return outcome{Result: res, first: &first}, true, nil
}

// read returns the queue of player as of the end of its stream.
func (r *Queues) read(ctx context.Context, playerID string) (domain.QueueView, int64, error) {
	player, err := domain.ParsePlayerID(playerID)
	if err != nil {
		return domain.QueueView{}, 0, err
	}
	c := r.entry(player.Stream())
	if err := c.acquire(ctx); err != nil {
		return domain.QueueView{}, 0, err
	}
	defer c.release()
	defer r.snapshotIfDue(c) // before the release
	st, err := r.catchUp(ctx, c, player)
	if err != nil {
		return domain.QueueView{}, 0, err
	}
	return st.queue.View(), st.version, nil
}
