// Package postgres owns the PostgreSQL backend of the event store: an
// eventstore.Store on a pgx v5 pool, over the tables created by
// migrations/postgres/0001_event_store.sql (event_streams, event_log).
//
// # Writing
//
// An append locks its stream, moves the stream's version in event_streams
// (the expected-version check) and inserts its events. Every event row is
// stamped with the writing transaction's ID, pg_current_xact_id() (xid8),
// and a number from an identity column (position). The stream locks are
// taken before anything is written, so a transaction gets its ID only once
// it holds its streams: appends to one stream get increasing transaction
// IDs, which keeps each stream's versions ascending in the global order.
//
// A stream's lock is a row of stream_locks (SELECT ... FOR UPDATE of slot
// hashtext(stream) & 65535), not an advisory lock: any role of the
// database may take any advisory lock, so a read-only analyst could hold a
// stream's and stall its appends, while locking a row needs UPDATE on its
// table, which only the service's role has. A waiting locker gets no
// transaction ID until it holds the row, as with the advisory locks; but a
// group append (AppendMany, a group commit) that locks several rows gets
// its ID at the first, and may then wait for another while a later
// transaction appends to one of its streams: its statement checks, once it
// holds them all, that no stream's last event has a later transaction ID
// than its own, and otherwise fails before writing (migration 0073) and
// runs again in a new transaction (TestAppendManyKeepsEachStreamInGlobalOrder).
//
// Appends go through a group commit (committer): Append and AppendMany
// calls queue, and a goroutine (a lane) takes what is queued as one group
// and commits it in ONE transaction, each append with its own outcome;
// while it is busy appends queue, so the busier the store the larger the
// groups, and a queue of appends costs one commit (one WAL flush) and one
// round trip instead of one each. A
// lane that just answered a group waits a little (a quarter of that
// commit's time at most) for as many calls to queue again before it takes
// the next. A group takes each stream at most once (a second append to a
// stream waits for the next group) and never splits an AppendMany call.
// While a full group (128 appends) waits behind the running lanes, another
// lane starts, up to WithAppendLanes (default 4), and commits beside them;
// it stops when no full group waits, so that many small appends keep
// sharing one lane's large groups.
//
//   - A group of one Append is one statement in an implicit transaction
//     (appendStatement): the lock, the version, the events. When it writes
//     nothing (version mismatch) or hits the unique event ID, a few reads
//     decide between an idempotent retry (Duplicate), a
//     *eventstore.WrongVersionError and an ErrInvalid error.
//   - Any other group is two statements sent together in one round trip,
//     one implicit transaction: lockStatement takes every stream's lock in
//     ascending order of lock key (so two transactions never wait for each
//     other in a cycle), then groupStatement, whose snapshot is taken once
//     the locks are held, judges every append (duplicate, wrong version,
//     an event ID stored elsewhere, or written) and writes those that pass.
//     An event ID that a concurrent transaction was storing breaks the
//     unique constraint and fails the statement: the group runs again and
//     then sees it. A value PostgreSQL refuses (a data exception) cannot be
//     traced to its append by the statement, so each call of the group then
//     runs alone.
//   - A transaction holds at most one append per stream, which is how
//     ReadAll finds where an append cut by its limit ends (restOfAppend).
//
// A call waits for its group's outcome until its context ends. The group's
// transaction is not interrupted by one caller giving up, only when all of
// them have (or the store closes): a call that returned its context's error
// may thus still have been stored, all of it or none, as a cancelled
// statement may.
//
// # Reading the global log
//
// The global order is (transaction_id, position); an eventstore.Position is
// {Commit: transaction_id, Seq: position}. Readers (ReadAll, Head, Subscribe)
// see only rows whose transaction_id is below
// pg_snapshot_xmin(pg_current_snapshot()): every transaction below that
// horizon has finished, so no row can ever appear below a position a reader
// has passed. A bare "position > checkpoint" would lose the events of a
// transaction that drew its positions first and committed last. The price:
// a transaction left open anywhere in the cluster (any writer, not only
// appends) holds readers back until it ends. It delays them; it never makes
// them skip.
//
// # Subscriptions
//
// NOTIFY is sent after the append committed, not inside it: a transaction
// that NOTIFYs takes a cluster-wide lock at commit that is held through the
// WAL flush, which serializes every notifying commit and cut single-event
// append throughput by about 3.5 times in docs/BENCHMARKS.md. So a committed
// group wakes the subscriptions of its own Store at once, and a notifier goroutine
// sends one coalesced pg_notify for other processes (while one is in flight,
// further appends share the next), committed without waiting for the WAL
// flush (asyncCommit: it carries no data). WithNotifyInTransaction restores the
// in-transaction NOTIFY; AppendTx always notifies in its transaction. A
// process that dies between commit and NOTIFY costs other processes one
// fallback poll, nothing more.
//
// A Store keeps ONE listener connection (LISTEN taskqueue_events), opened on
// the first Subscribe and shared by all subscriptions; the payload is the
// schema the append wrote to, so stores in other schemas of the same database
// do not wake each other. A notification is only a wake-up: subscriptions
// always read the table. When a read finds committed events still above the
// horizon (held back by an open transaction) the subscription retries every
// heldBackRetry; otherwise it waits for a notification, with a fallback poll
// (idlePoll while the listener is up, downPoll while it reconnects). A dropped
// listener connection is reconnected with backoff.
//
// The subscriptions of a Store that follow the head of the log share their
// reads (tailReads): one query of the unfiltered log answers every one that
// waits for a read as fresh as the wake-up it waits on, each with the events
// after its own position that its filter selects. A subscription that
// catches up reads alone.
//
// # Schema and transactions
//
// Open and New do not apply migrations: the application runs migrations.Up
// before serving (taskqueue migrate), and Migrate does it for tests and
// tools. Open fails with a clear error when the tables are missing.
// Pool exposes the pool so that a projection can write its read model and
// its checkpoint in one transaction of the same database (store both parts
// of the Position, or its String form: Commit alone or Seq alone is not a
// checkpoint). AppendTx appends inside a caller's transaction.
//
// Input PostgreSQL text cannot hold (NUL bytes in the type or metadata,
// invalid UTF-8) is refused with ErrInvalid before anything is written.
//
// The Store is safe for concurrent use. Renaming the tables or the
// notification channel, or changing the slots of stream_locks, breaks
// running deployments (instances of two versions must lock the same rows):
// add a migration and keep the old names readable.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
)

const (
	// notifyChannel is the LISTEN/NOTIFY channel appends notify on.
	notifyChannel = "taskqueue_events"
	// lockSlots is the number of rows of stream_locks (migration
	// 0070_stream_locks): a stream's lock is the row
	// hashtext(stream) & (lockSlots-1). Two streams of one slot wait for
	// each other's appends, which is rare (1 in 65,536) and harmless.
	lockSlots = 1 << 16
	// heldBackRetry is how soon a subscription that found events held back
	// by an open transaction reads again.
	heldBackRetry = 20 * time.Millisecond
	// idlePoll is the fallback poll of an idle subscription while the
	// listener is connected; notifications normally come first.
	idlePoll = time.Second
	// downPoll is the poll of an idle subscription while the listener is
	// disconnected: it keeps the ~50 ms wake-up promise without NOTIFY.
	downPoll = 50 * time.Millisecond
	// defaultPage is the page size of ReadAll (limit <= 0) and subscriptions.
	defaultPage = 500
)

// Store is the PostgreSQL event store. Build one with Open or New.
type Store struct {
	pool     *pgxpool.Pool
	ownsPool bool
	schema   string

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	done      <-chan struct{} // ctx.Done()
	closeOnce sync.Once
	listener  *listener
	tail      tailReads // the subscriptions' shared reads of the head

	notifyInTx bool
	pokes      chan struct{} // buffered 1: an append committed, NOTIFY pending
	notifierWG sync.WaitGroup

	commit committer // the group commit of appends
}

// Option configures Open or New.
type Option func(*options)

type options struct {
	pool       []func(*pgxpool.Config)
	notifyInTx bool
	lanes      int
}

// WithMaxConns bounds the pool Open creates (pgxpool's default is
// max(4, number of CPUs)). The listener connection is not counted. New
// ignores it.
func WithMaxConns(n int32) Option {
	return WithPoolConfig(func(c *pgxpool.Config) { c.MaxConns = n })
}

// WithPoolConfig lets the caller adjust the pool configuration Open parses
// from the URL. New ignores it.
func WithPoolConfig(f func(*pgxpool.Config)) Option {
	return func(o *options) { o.pool = append(o.pool, f) }
}

// WithNotifyInTransaction makes every append NOTIFY inside its own
// transaction instead of after it: no wake-up is ever lost to a crash, at the
// price of serialized commits (see the package doc).
func WithNotifyInTransaction() Option {
	return func(o *options) { o.notifyInTx = true }
}

// DefaultConnectTimeout bounds a new connection of a pool that Open
// creates, unless the URL sets connect_timeout: a database that does not
// answer (a partition) fails the connection rather than holding a slot of
// the pool for pgxpool's own 2 minutes.
const DefaultConnectTimeout = 5 * time.Second

// WithAppendLanes sets how many group transactions of appends the store
// may commit at once (default 4; see the package doc): a lane beyond the
// first runs only while a full group waits. Each takes a pool connection
// while it runs. n < 1 means 1, which commits every group after the
// previous one.
func WithAppendLanes(n int) Option {
	return func(o *options) { o.lanes = max(n, 1) }
}

// Open connects to the database at url (a pgx connection string) and returns
// a Store that owns its pool: Close closes the pool. It does not migrate.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres event store: parse url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	for _, f := range o.pool {
		f(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres event store: %w", err)
	}
	s, err := New(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// New returns a Store on pool, which the caller keeps owning: Close leaves
// it open. It checks that the event store's tables exist.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var schema string
	var tables int
	err := pool.QueryRow(ctx, `SELECT current_schema(),
		(to_regclass('event_log') IS NOT NULL)::int + (to_regclass('event_streams') IS NOT NULL)::int`).Scan(&schema, &tables)
	if err != nil {
		return nil, fmt.Errorf("open postgres event store: %w", err)
	}
	if tables != 2 {
		return nil, fmt.Errorf("open postgres event store: tables event_log and event_streams are missing from schema %q: apply the migrations first (taskqueue migrate up, or postgres.Migrate)", schema)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{pool: pool, schema: schema, ctx: sctx, cancel: cancel, done: sctx.Done(),
		notifyInTx: o.notifyInTx, pokes: make(chan struct{}, 1)}
	s.commit.lanes, s.commit.full = defaultLanes, maxGroup
	if o.lanes > 0 {
		s.commit.lanes = o.lanes
	}
	s.listener = newListener(sctx, pool.Config().ConnConfig, schema)
	s.tail.s = s
	if !s.notifyInTx {
		s.notifierWG.Add(1)
		go s.notifier()
	}
	return s, nil
}

// Migrate applies every pending PostgreSQL migration (the event store's and
// everyone else's) to the database of pool.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := migrations.Up(ctx, db, migrations.Postgres); err != nil {
		return fmt.Errorf("migrate event store: %w", err)
	}
	return nil
}

// Pool returns the store's pool, for writing read models and checkpoints in
// the same database. Do not close it while the Store is in use.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close ends every subscription (their Next returns ErrClosed), stops the
// listener and, when Open created the pool, closes it. A second Close
// returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.listener.wait()
		s.notifierWG.Wait()
		if s.ownsPool {
			s.pool.Close()
		}
	})
	return nil
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// withStore returns a context that also ends when the store closes, so that
// no query outlives Close. Call the returned function when done.
func (s *Store) withStore(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// opError turns an error of a query run under withStore into what callers
// expect: ctx.Err() when the caller's context ended, ErrClosed when the store
// closed, err otherwise.
func (s *Store) opError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.closed() {
		return eventstore.ErrClosed
	}
	return err
}

// announce tells this store's subscriptions, and through the notifier other
// processes, that an append committed.
func (s *Store) announce() {
	s.listener.broadcast()
	if s.notifyInTx {
		return
	}
	select {
	case s.pokes <- struct{}{}:
	default: // a NOTIFY is already pending: it covers this append too
	}
}

// notifier sends one pg_notify per burst of appends until the store closes.
// A failed NOTIFY is dropped: listeners elsewhere fall back to polling.
func (s *Store) notifier() {
	defer s.notifierWG.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.pokes:
		}
		// The NOTIFY's transaction commits without waiting for the WAL
		// flush: it carries no data (the appends it announces committed,
		// flushed, before it), yet a notifying commit gets a transaction
		// ID, which holds back every reader of the log until it ends, and
		// holds the cluster's notify lock through its commit. A NOTIFY lost
		// in a crash costs other processes one fallback poll, as one never
		// sent does.
		b := &pgx.Batch{}
		b.Queue(asyncCommit)
		b.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, s.schema)
		_ = s.pool.SendBatch(s.ctx, b).Close()
	}
}

// asyncCommit, queued first in a batch (one implicit transaction), lets
// that transaction commit without waiting for the WAL flush
// (synchronous_commit off for it alone). Only for transactions whose loss
// in a crash costs nothing but a cache entry or a wake-up: never for an
// append.
const asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// genericPlans, queued first in a batch (one implicit transaction), has
// PostgreSQL run the batch's statements with their generic plans, made
// once per connection. With plan_cache_mode auto it plans a prepared
// statement again for the values at hand whenever that plan's estimate
// beats the generic one's, which for the store's hot statements was most
// calls: at 500 commands/s, planning took 7 to 12 s of PostgreSQL's 31 to
// 34 s of CPU in a 33-s run, 2 s with the generic plans. Only for
// statements whose best plan does not depend on the values (see the
// uses).
const genericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`

// querier is what reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var _ eventstore.Store = (*Store)(nil)

var errNotFirstWrite = errors.New("AppendTx must be the transaction's first write")
