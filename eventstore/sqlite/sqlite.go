// Package sqlite is the embedded event store: eventstore.Store on one SQLite
// file through modernc.org/sqlite (pure Go, driver name "sqlite"). It is the
// default of `go run ./cmd/taskqueue`, which needs no server.
//
// # Connections
//
// A Store holds two database/sql pools on the same file:
//
//   - the writer, limited to ONE connection (SetMaxOpenConns(1)). Every
//     append runs on it, so appends of this process are serialized and
//     never meet SQLITE_BUSY from one another. Its transactions start with
//     BEGIN IMMEDIATE, which takes the file's write lock up front: a
//     transaction that read first and wrote later could otherwise fail with
//     SQLITE_BUSY_SNAPSHOT when another process wrote in between, an error
//     no busy timeout retries. Against other processes writing the same
//     file, the busy timeout (5 s) makes SQLite wait for the lock instead of
//     failing.
//   - the readers, a small pool of read-only connections. In WAL mode readers
//     never block the writer nor each other, and every read transaction sees
//     a consistent snapshot.
//
// (and one more connection, the checkpointer's: see Checkpoints below).
//
// WriteTx runs a transaction on the writer for code that must commit its own
// rows in the same file in ONE transaction with nothing interleaved, as the
// projections do with a read model and its checkpoint. Such a transaction
// holds up every append of the process: keep it short, and never call
// Append (or anything that does) inside it, or the process deadlocks on the
// single connection. WriteDB exposes the writer's pool itself, whose
// transactions bypass the ordering below; ReadDB exposes the reader pool.
//
// # Who writes next
//
// database/sql alone hands a released connection to a random waiter: with
// one connection an append could wait behind any number of later projection
// batches, which made the latency tail under load. The Store orders the
// writer's users instead (writeGate): appends in arrival order and ahead of
// WriteTx transactions, which wait in arrival order, with at most 32 append
// transactions passing a waiting one. The append that gets the writer
// commits the appends queued behind it in the same transaction (up to 64 in
// all, a group commit; those that queue while it runs join it), each with
// its own outcome: a queue of appends costs one commit and one hand-over of
// the connection. An AppendMany call is one request of the gate, its
// appends committed in the same group, never split. A group is one
// transaction, so readers see all of it or none of it, and its positions
// are gap-free like any other commit's.
//
// A group normally costs two statements: one read of its streams'
// versions and one INSERT OR ROLLBACK of the events of every append whose
// expected version matches (storeParts). OR ROLLBACK spares SQLite the
// statement journal that a multi-row INSERT which may abort halfway needs
// (a copy of every page it changes: as many writes again as the WAL's);
// the price is that an event ID already stored (a retry with Any, an ID
// of another stream) rolls the group back, and the group runs again, one
// append at a time, in a new transaction.
//
// # Checkpoints
//
// The writer connection does not checkpoint the WAL in its commits
// (wal_autocheckpoint is 0 on it): a goroutine with a connection of its own
// runs PASSIVE checkpoints at most every 50 ms while commits come, so no
// append waits for one (see checkpointer).
//
// # Positions
//
// Each event's eventstore.Position is {Commit: 0, Seq: position}, where
// position is the events table's rowid (INTEGER PRIMARY KEY): one more
// than the largest stored, taken inside the writing transaction. SQLite
// admits one writer per file at a time, and the table is append-only
// (triggers refuse UPDATE and DELETE), so keys follow commit order: a
// reader's snapshot is always a gap-free prefix of the log, the whole
// committed log is the safe prefix, and "position > checkpoint" loses
// nothing here (unlike PostgreSQL).
//
// # Subscriptions
//
// A subscription reads pages of the log in read transactions. Between
// pages it waits for a wake-up that every committed append of this Store
// signals, or for a fallback poll (every 25 ms) that catches appends made by
// another process (or another Store) on the same file.
//
// # Schema
//
// Open applies migrations.Up(ctx, db, migrations.SQLite) (every SQLite
// migration, including other packages' read models) before returning. The
// event log is migrations/sqlite/0001_events.sql; this package reads its
// columns by name.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
)

const (
	// busyTimeout is how long a connection waits for a lock held by another
	// process before it reports SQLITE_BUSY.
	busyTimeout = 5 * time.Second
	// pollInterval bounds how late a subscriber sees an append made by
	// another process; appends through this Store wake subscribers at once.
	pollInterval = 25 * time.Millisecond
	// defaultPage is the page size of ReadAll when limit <= 0 and of every
	// subscription read.
	defaultPage = 500
	// readers is the size of the reader pool.
	readers = 4
)

// pragmas are applied to every connection, each as a `_pragma=` DSN
// parameter (modernc runs busy_timeout first, then the rest in order).
var pragmas = []string{
	// Wait up to busyTimeout for a lock another process holds instead of
	// failing at once with SQLITE_BUSY. In this process the single writer
	// connection means appends never contend with one another.
	fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
	// Write-ahead log: readers keep reading a consistent snapshot while the
	// writer appends, and a commit is one sequential write to the WAL.
	"journal_mode(WAL)",
	// With WAL, NORMAL syncs at checkpoints rather than at every commit: the
	// database never corrupts, and a power loss (not a process crash) may
	// forget the last commits. Commits are an order of magnitude faster.
	"synchronous(NORMAL)",
	// Enforce foreign keys, which SQLite leaves off by default, for the
	// tables the other packages keep in this file.
	"foreign_keys(ON)",
}

// dsn returns the connection string for path with the pragmas, plus extra
// parameters.
func dsn(path string, extra url.Values) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	for k, vs := range extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	return path + "?" + q.Encode()
}

// Store is eventstore.Store on a SQLite file. It is safe for concurrent use.
type Store struct {
	path   string
	writer *sql.DB
	reader *sql.DB

	// Statements prepared on the writer's one connection: the hot path of
	// a single-event append prepares nothing.
	versionStmt *sql.Stmt
	insertStmt  *sql.Stmt
	// Statements prepared on the reader pool (database/sql prepares each
	// on a reader connection the first time it runs there and keeps it):
	// the reads of a command prepare nothing.
	reads readStatements

	ckpt  *checkpointer   // checkpoints the WAL in the background
	gate  writeGate       // who uses the writer next
	group groupStatements // kept prepared for group commits (gate holder only)

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every committed append
	closed  chan struct{}
	once    sync.Once
}

var _ eventstore.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the SQLite file at
// path, applies the SQLite migrations and returns the store. Close it when
// done.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		// The driver reads everything after '?' as parameters.
		return nil, fmt.Errorf("open sqlite event store: %w: path %q is empty or contains '?'", eventstore.ErrInvalid, path)
	}
	if err := PrepareDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("open sqlite event store %s: %w", path, err)
	}
	if err := checkWritable(path); err != nil {
		return nil, fmt.Errorf("open sqlite event store: %w", err)
	}
	// BEGIN IMMEDIATE for the writer: see the package doc.
	writer, err := sql.Open("sqlite", dsn(path, writerParams()))
	if err != nil {
		return nil, fmt.Errorf("open sqlite event store %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The first connection switches the file to WAL; opening it before the
	// readers means no reader races the switch.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite event store %s: %w", path, err)
	}
	if _, err := migrations.Up(ctx, writer, migrations.SQLite); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite event store %s: %w", path, err)
	}
	versionStmt, err := writer.PrepareContext(ctx, selectVersion)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite event store %s: prepare: %w", path, err)
	}
	insertStmt, err := writer.PrepareContext(ctx, insertSQL(1))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite event store %s: prepare: %w", path, err)
	}
	reader, err := sql.Open("sqlite", dsn(path, url.Values{"_query_only": {"1"}}))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite event store %s: readers: %w", path, err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	if err := reader.PingContext(ctx); err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("open sqlite event store %s: readers: %w", path, err)
	}
	reads, err := prepareReads(ctx, reader)
	if err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("open sqlite event store %s: readers: prepare: %w", path, err)
	}
	ckpt, err := startCheckpointer(ctx, path)
	if err != nil {
		reads.close()
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("open sqlite event store %s: checkpointer: %w", path, err)
	}
	return &Store{
		path:        path,
		ckpt:        ckpt,
		reads:       reads,
		writer:      writer,
		versionStmt: versionStmt,
		insertStmt:  insertStmt,
		reader:      reader,
		changed:     make(chan struct{}),
		closed:      make(chan struct{}),
	}, nil
}

// PrepareDir creates dir (and its parents) when missing and checks that
// this process may create files in it, as SQLite must (the database and
// its -wal and -shm files beside it), so that a directory that cannot be
// used is reported plainly at start ("the data directory /x is read-only")
// rather than as SQLite's "unable to open database file (14)".
func PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path != dir {
			return fmt.Errorf("cannot create the data directory %s: %s: %w", dir, pe.Path, pe.Err)
		}
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create the data directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		switch {
		case errors.Is(err, syscall.EROFS):
			return fmt.Errorf("the data directory %s is read-only: its file system is mounted read-only", dir)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("the data directory %s is read-only for this process (user %d): permission denied", dir, os.Getuid())
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create files in the data directory %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// checkWritable reports plainly an existing database file this process
// may not write.
func checkWritable(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // SQLite creates it
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("the SQLite file %s is read-only for this process (user %d): %w", path, os.Getuid(), err)
	case err != nil:
		return fmt.Errorf("cannot open the SQLite file %s: %w", path, err)
	}
	return f.Close()
}

// WriteTx runs fn in a transaction on the single writer connection (BEGIN
// IMMEDIATE), for callers that must commit their own rows in this file
// serialized with appends, such as a projection writing a read model and
// its checkpoint in one transaction. It commits when fn returns nil and
// rolls back otherwise. The transaction starts once the appends waiting for
// the writer are through (at most 32 append transactions; see the package
// doc), and while it is open every Append of this Store waits: keep it
// short and never call Append inside it (that deadlocks).
func (s *Store) WriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.gate.enter(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer s.gate.leave()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.ckpt.committed()
	return nil
}

// WriteDB returns the single writer connection pool. Transactions begun on
// it are BEGIN IMMEDIATE and serialized with appends, but not ordered with
// them: prefer WriteTx. While such a transaction is open every Append of
// this Store waits: keep it short and never call Append inside it (that
// deadlocks). Its commits are checkpointed with the next append's or
// WriteTx's (see checkpointer). Do not close the returned pool.
func (s *Store) WriteDB() *sql.DB { return s.writer }

// ReadDB returns the pool of read-only connections. Do not close it.
func (s *Store) ReadDB() *sql.DB { return s.reader }

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes both pools. Subscriptions end with eventstore.ErrClosed.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = errors.Join(s.ckpt.close(), s.versionStmt.Close(), s.insertStmt.Close(), s.closeGroupStatements(), s.reads.close(), s.writer.Close(), s.reader.Close())
	})
	return err
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// wakeChan returns the channel the next committed append closes.
func (s *Store) wakeChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notify wakes every subscriber waiting on the current channel.
func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	n := len(events)
	events, err := eventstore.ValidateAppend(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", n, stream, err)
	}
	if s.isClosed() {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", len(events), stream, eventstore.ErrClosed)
	}
	req := s.newReq(ctx, []appendPart{{stream: stream, expected: expected, events: events}})
	err = s.append(req)
	if err == nil {
		err = req.parts[0].err
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", len(events), stream, err)
	}
	return req.parts[0].res, nil
}

// AppendMany implements eventstore.Store: the call's appends go through
// the gate as one request, which a leader commits in one transaction with
// whatever other appends it groups (see the package doc).
func (s *Store) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	if err := eventstore.ValidateAppendMany(appends); err != nil {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("append to %d streams: %w", len(appends), eventstore.ErrClosed)
	}
	outs := make([]eventstore.AppendOutcome, len(appends))
	parts := make([]appendPart, 0, len(appends))
	index := make([]int, 0, len(appends)) // parts[i] is appends[index[i]]
	for i, a := range appends {
		events, err := eventstore.ValidateAppend(a.Stream, a.Expected, a.Events)
		if err != nil {
			outs[i].Err = fmt.Errorf("append %d events to %s: %w", len(a.Events), a.Stream, err)
			continue
		}
		parts = append(parts, appendPart{stream: a.Stream, expected: a.Expected, events: events})
		index = append(index, i)
	}
	if len(parts) > 0 {
		req := s.newReq(ctx, parts)
		if err := s.append(req); err != nil {
			return nil, fmt.Errorf("append to %d streams: %w", len(appends), err)
		}
		for j, p := range req.parts {
			o := &outs[index[j]]
			o.AppendResult = p.res
			if p.err != nil {
				o.Err = fmt.Errorf("append %d events to %s: %w", len(p.events), p.stream, p.err)
			}
		}
	}
	return outs, nil
}

func (s *Store) newReq(ctx context.Context, parts []appendPart) *appendReq {
	return &appendReq{ctx: ctx, parts: parts, lead: make(chan struct{}), done: make(chan struct{})}
}

// append stores req's parts through the gate: as the leader of a group of
// requests committed together, or as a follower whose outcome a leader
// reports. It returns the error of the request as a whole; each part's
// own outcome is in req.parts.
func (s *Store) append(req *appendReq) error {
	lead, err := s.gate.enterAppend(req)
	if err != nil {
		return err
	}
	if lead {
		s.commitGroup(req)
	}
	return req.err
}

// commitGroup runs lead and the requests queued behind it in ONE
// transaction, in order, and commits it, then hands the writer on.
// Requests that queue while the transaction runs join it too, up to
// maxGroup appends in all: they would only wait for the next one. Each
// part's outcome is its own (storeParts): a part that fails (wrong
// version, an event ID stored elsewhere) wrote nothing, and the others go
// on. The statements do not take the requests' contexts: interrupting one
// would roll the whole transaction back; a request whose context has
// ended is skipped instead, whole, and the transaction is as short as its
// work. Any other error fails every request of the group, none of which
// is then stored.
func (s *Store) commitGroup(lead *appendReq) {
	defer s.gate.leave()
	// Let the appends whose outcome the last group reported queue again
	// before this one is taken: on a busy machine they are runnable but
	// not yet running, and a group of one costs a commit each.
	runtime.Gosched()
	group := append([]*appendReq{lead}, s.gate.followers(maxGroup-len(lead.parts))...)
	defer func() {
		for _, r := range group[1:] {
			close(r.done)
		}
	}()
	fail := func(err error) {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
		}
	}
	ctx := context.WithoutCancel(lead.ctx)
	rows := 0
	for _, r := range group {
		for _, p := range r.parts {
			rows += len(p.events)
		}
	}
	s.prepare(ctx, rows)
	stored, err := s.storeGroup(ctx, &group, true)
	if errors.Is(err, errRolledBack) {
		for _, r := range group {
			r.err = nil
		}
		stored, err = s.storeGroup(ctx, &group, false)
	}
	if err != nil {
		fail(err)
		return
	}
	if stored {
		s.notify()
	}
}

// storeGroup runs *group in one transaction (see commitGroup), taking in
// the requests that queue meanwhile, and commits it. An error leaves
// nothing of the group stored.
func (s *Store) storeGroup(ctx context.Context, group *[]*appendReq, fast bool) (stored bool, err error) {
	parts := 0
	for _, r := range *group {
		parts += len(r.parts)
	}
	// Only the wait for the file's write lock (BEGIN IMMEDIATE, up to the
	// busy timeout while another process writes) ends early, once no
	// request of the group is still waiting for it (groupContext); after
	// that the transaction runs to its end.
	live, begun, release := groupContext(ctx, *group)
	defer release()
	tx, err := s.writer.BeginTx(live, nil)
	begun()
	if err != nil {
		if live.Err() != nil {
			for _, r := range *group {
				r.err = r.ctx.Err()
			}
		}
		return false, s.closedOr(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit, an error after OR ROLLBACK
	var clock recordClock
	for next := 0; next < len(*group); {
		var batch []*appendPart
		for _, r := range (*group)[next:] {
			if r.err = r.ctx.Err(); r.err != nil {
				continue
			}
			for i := range r.parts {
				batch = append(batch, &r.parts[i])
			}
		}
		next = len(*group)
		wrote, err := s.storeParts(ctx, tx, batch, fast, &clock)
		if err != nil {
			// The transaction may be gone with it (SQLite rolls back on
			// some errors): none of the group is stored.
			return false, err
		}
		stored = stored || wrote
		if live.Err() != nil {
			break // every request it began for has gone: take no more into it
		}
		if more := s.gate.followers(maxGroup - parts); len(more) > 0 {
			for _, r := range more {
				parts += len(r.parts)
			}
			*group = append(*group, more...)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", s.closedOr(err))
	}
	s.ckpt.committed()
	return stored, nil
}

// groupContext returns a context derived from ctx (which never ends) that
// ends once the contexts of every request of group have ended, a function
// to call once the transaction has begun (from then on it ends only with
// release), and release.
func groupContext(ctx context.Context, group []*appendReq) (context.Context, func(), func()) {
	live, cancel := context.WithCancel(ctx)
	var left atomic.Int32
	left.Store(int32(len(group)))
	stops := make([]func() bool, len(group))
	for i, r := range group {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	begun := func() {
		for _, stop := range stops {
			stop()
		}
	}
	return live, begun, func() { begun(); cancel() }
}

// ownFailure reports whether err is an append's own failure, which leaves
// the transaction as it was: a wrong expected version, or invalid input such
// as an event ID stored elsewhere (the statement that broke the constraint
// wrote nothing).
func ownFailure(err error) bool {
	var wv *eventstore.WrongVersionError
	return errors.As(err, &wv) || errors.Is(err, eventstore.ErrInvalid)
}

// appendIn stores events in tx, or reports why not (then it wrote nothing).
func (s *Store) appendIn(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData, clock *recordClock) (eventstore.AppendResult, error) {
	var current int64
	if err := tx.StmtContext(ctx, s.versionStmt).QueryRowContext(ctx, stream).Scan(&current); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("read stream version: %w", s.closedOr(err))
	}
	if !expected.Check(current) {
		// Perhaps a retry of an append that already happened (Exact, NoStream).
		if dup, res, err := duplicateOf(ctx, tx, stream, expected, current, events); err != nil || dup {
			return res, err
		}
		return eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	last, err := s.insertEvents(ctx, tx, stream, current, events, clock.next())
	if err != nil {
		// An event ID already stored breaks the UNIQUE constraint: a retry
		// with Any or StreamExists, or an ID stored elsewhere. The failed
		// statement wrote nothing and the transaction is still usable.
		if dup, res, derr := duplicateOf(ctx, tx, stream, expected, current, events); derr != nil || dup {
			return res, derr
		}
		return eventstore.AppendResult{}, err
	}
	return eventstore.AppendResult{
		Version:  current + int64(len(events)),
		Position: eventstore.Position{Seq: uint64(last)},
	}, nil
}

const selectVersion = `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?`

// insertSQL returns an INSERT of n events in one statement.
func insertSQL(n int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO events
		(stream_id, version, event_id, event_type, schema_version, data, occurred_at, correlation_id, causation_id, actor, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	for i := 1; i < n; i++ {
		q.WriteString(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	}
	return q.String()
}

// insertEvents stores events at versions current+1... in ONE statement, so
// a failure (a duplicate event ID) leaves none of them, and returns the
// position of the last one.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, stream string, current int64, events []eventstore.EventData, now int64) (int64, error) {
	args := make([]any, 0, 11*len(events))
	for i, e := range events {
		args = append(args, stream, current+int64(i)+1, e.ID.String(), e.Type, e.SchemaVersion, []byte(e.Data),
			e.Metadata.OccurredAt.UnixMicro(), e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.Actor, now)
	}
	var (
		r   sql.Result
		err error
	)
	if len(events) == 1 {
		r, err = tx.StmtContext(ctx, s.insertStmt).ExecContext(ctx, args...)
	} else {
		r, err = tx.ExecContext(ctx, insertSQL(len(events)), args...)
	}
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	last, err := r.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	return last, nil
}

// duplicateOf applies the port's idempotency rules. It reports dup when
// every event is already stored at the place the append would have put it,
// with the stored result; an error when some ID is stored elsewhere; and
// neither when no ID is stored.
func duplicateOf(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, current int64, events []eventstore.EventData) (bool, eventstore.AppendResult, error) {
	// Where is the first ID stored, if anywhere? And is any other ID?
	ids := make([]any, len(events))
	for i, e := range events {
		ids[i] = e.ID.String()
	}
	q := `SELECT event_id, stream_id, version FROM events WHERE event_id IN (?` + strings.Repeat(",?", len(ids)-1) + `) ORDER BY position LIMIT 1`
	var (
		foundID, foundStream string
		foundVersion         int64
	)
	err := tx.QueryRowContext(ctx, q, ids...).Scan(&foundID, &foundStream, &foundVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return false, eventstore.AppendResult{}, nil
	}
	if err != nil {
		return false, eventstore.AppendResult{}, fmt.Errorf("look up event IDs: %w", err)
	}

	// The place the events would have gone: right after n for Exact(n) and
	// NoStream, anywhere in the stream for Any and StreamExists.
	from := int64(-1)
	if n, ok := expected.Version(); ok {
		from = n + 1
	} else if foundStream == stream && foundID == events[0].ID.String() {
		from = foundVersion
	}
	if from >= 1 {
		stored, err := readStream(ctx, tx, stream, from, len(events))
		if err != nil {
			return false, eventstore.AppendResult{}, err
		}
		if eventstore.IdempotentMatch(stored, events) {
			last := stored[len(events)-1]
			return true, eventstore.AppendResult{Version: last.Version, Position: last.Position, Duplicate: true}, nil
		}
	}
	if !expected.Check(current) {
		return false, eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	return false, eventstore.AppendResult{}, fmt.Errorf("%w: event ID %s is already stored in stream %q at version %d", eventstore.ErrInvalid, foundID, foundStream, foundVersion)
}

// closedOr returns ErrClosed when the store was closed (database/sql then
// reports its own "database is closed"), else err.
func (s *Store) closedOr(err error) error {
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	return err
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const selectEvents = `SELECT position, stream_id, version, event_id, event_type, schema_version, data,
	occurred_at, correlation_id, causation_id, actor, recorded_at FROM events`

// selectStream reads a stream from a version on, at most LIMIT events (a
// negative limit: all of them).
const selectStream = selectEvents + ` WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?`

func readStream(ctx context.Context, q queryer, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = -1
	}
	return scanEvents(ctx, q, selectStream, stream, from, limit)
}

func scanEvents(ctx context.Context, q queryer, query string, args ...any) ([]eventstore.RecordedEvent, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var (
			e                  eventstore.RecordedEvent
			pos                int64
			id                 string
			data               []byte
			occurred, recorded int64
		)
		if err := rows.Scan(&pos, &e.Stream, &e.Version, &id, &e.Type, &e.SchemaVersion, &data,
			&occurred, &e.Metadata.CorrelationID, &e.Metadata.CausationID, &e.Metadata.Actor, &recorded); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if e.ID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("scan event at position %d: event ID %q: %w", pos, id, err)
		}
		e.Data = data
		e.Position = eventstore.Position{Seq: uint64(pos)}
		e.Metadata.OccurredAt = time.UnixMicro(occurred).UTC()
		e.RecordedAt = time.UnixMicro(recorded).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// ReadStream implements eventstore.Store. from < 1 reads from the first
// event; a negative from is invalid input.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if from < 0 {
		return nil, fmt.Errorf("read stream %s: %w: from version %d is negative", stream, eventstore.ErrInvalid, from)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrClosed)
	}
	evs, err := readStream(ctx, prepared{s.reads.stream}, stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, s.closedOr(err))
	}
	return evs, nil
}

// ReadStreams implements eventstore.Store: the streams are read in one
// read transaction (one snapshot of the database file).
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error) {
	if err := eventstore.ValidateReadStreams(reads); err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), eventstore.ErrClosed)
	}
	out := make([][]eventstore.RecordedEvent, len(reads))
	if len(reads) == 0 {
		return out, nil
	}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), s.closedOr(err))
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	for i, r := range reads {
		if out[i], err = readStream(ctx, prepared{tx.StmtContext(ctx, s.reads.stream)}, r.Stream, r.From, limit); err != nil {
			return nil, fmt.Errorf("read stream %s from %d: %w", r.Stream, r.From, s.closedOr(err))
		}
	}
	return out, nil
}

// ReadAll implements eventstore.Store. Every committed event is in the safe
// prefix on SQLite (see the package doc).
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, filter eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("read all after %s: %w", after, eventstore.ErrClosed)
	}
	evs, _, err := s.scan(ctx, after, filter, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %s: %w", after, s.closedOr(err))
	}
	return evs, nil
}

// scan reads up to limit events after position after that match filter
// (more only to finish the append the limit cut), in one read transaction,
// and reports the position up to which the log was scanned: the end of the
// last event's append when the page is full, else the head of the log as
// the transaction saw it.
func (s *Store) scan(ctx context.Context, after eventstore.Position, filter eventstore.Filter, limit int) ([]eventstore.RecordedEvent, eventstore.Position, error) {
	if limit <= 0 {
		limit = defaultPage
	}
	if after.Commit != 0 {
		// Not a position this backend hands out: SQLite positions have
		// Commit 0, so everything stored is at or before it.
		return nil, after, fmt.Errorf("%w: position %s is not a SQLite position (commit part must be 0)", eventstore.ErrInvalid, after)
	}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, after, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only

	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); err != nil {
		return nil, after, fmt.Errorf("read head: %w", err)
	}
	if uint64(head) <= after.Seq {
		return nil, after, nil
	}
	where, args := filterSQL(filter)
	query := selectEvents + ` WHERE position > ? AND position <= ?` + where + ` ORDER BY position LIMIT ?`
	args = append([]any{int64(after.Seq), head}, args...)
	args = append(args, limit)
	evs, err := scanEvents(ctx, tx, query, args...)
	if err != nil {
		return nil, after, err
	}
	scanned := eventstore.Position{Seq: uint64(head)}
	if len(evs) == limit {
		// The limit may have cut an append: finish it, so a reader never
		// sees part of one (eventstore.Store.ReadAll).
		rest, end, err := restOfAppend(ctx, tx, evs[len(evs)-1], head, filter)
		if err != nil {
			return nil, after, err
		}
		evs, scanned = append(evs, rest...), end
	}
	return evs, scanned, nil
}

// restOfAppend returns the events of last's append after it that match
// filter, and the position of that append's last event (matching or not).
// One append's events have consecutive positions, one stream and one
// recorded_at (insertEvents writes them in one statement at one reading of
// the clock; the stream's next append reads the clock after this one was
// inserted, in a later transaction or later in the same group commit), so
// the append goes on while the next position has last's stream and
// recorded_at.
func restOfAppend(ctx context.Context, tx *sql.Tx, last eventstore.RecordedEvent, head int64, filter eventstore.Filter) ([]eventstore.RecordedEvent, eventstore.Position, error) {
	rows, err := tx.QueryContext(ctx, `SELECT position, stream_id, recorded_at FROM events
		WHERE position > ? AND position <= ? ORDER BY position LIMIT ?`,
		int64(last.Position.Seq), head, eventstore.MaxEventsPerAppend)
	if err != nil {
		return nil, last.Position, fmt.Errorf("read the rest of an append: %w", err)
	}
	defer rows.Close()
	end, at := int64(last.Position.Seq), last.RecordedAt.UnixMicro()
	for rows.Next() {
		var (
			pos, recorded int64
			stream        string
		)
		if err := rows.Scan(&pos, &stream, &recorded); err != nil {
			return nil, last.Position, fmt.Errorf("read the rest of an append: %w", err)
		}
		if pos != end+1 || stream != last.Stream || recorded != at {
			break
		}
		end = pos
	}
	if err := rows.Err(); err != nil {
		return nil, last.Position, fmt.Errorf("read the rest of an append: %w", err)
	}
	rows.Close()
	if end == int64(last.Position.Seq) {
		return nil, last.Position, nil
	}
	where, args := filterSQL(filter)
	args = append([]any{int64(last.Position.Seq), end}, args...)
	rest, err := scanEvents(ctx, tx, selectEvents+` WHERE position > ? AND position <= ?`+where+` ORDER BY position`, args...)
	if err != nil {
		return nil, last.Position, err
	}
	return rest, eventstore.Position{Seq: uint64(end)}, nil
}

// filterSQL turns filter into SQL conditions (each starting with " AND "),
// the first of which skips tombstones (eventstore.DeletedType): no reader
// of the global log is handed one.
// instr(stream_id, p) = 1 is "starts with p", byte for byte.
func filterSQL(f eventstore.Filter) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString(` AND event_type <> '` + eventstore.DeletedType + `'`)
	if len(f.EventTypes) > 0 {
		b.WriteString(` AND event_type IN (?` + strings.Repeat(",?", len(f.EventTypes)-1) + `)`)
		for _, t := range f.EventTypes {
			args = append(args, t)
		}
	}
	if len(f.Streams) > 0 {
		b.WriteString(` AND stream_id IN (?` + strings.Repeat(",?", len(f.Streams)-1) + `)`)
		for _, s := range f.Streams {
			args = append(args, s)
		}
	}
	if len(f.StreamPrefixes) > 0 {
		b.WriteString(` AND (`)
		for i, p := range f.StreamPrefixes {
			if i > 0 {
				b.WriteString(` OR `)
			}
			if p == "" {
				b.WriteString(`1`)
				continue
			}
			b.WriteString(`instr(stream_id, ?) = 1`)
			args = append(args, p)
		}
		b.WriteString(`)`)
	}
	return b.String(), args
}

// StreamVersion implements eventstore.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return 0, fmt.Errorf("read version of %s: %w", stream, err)
	}
	if s.isClosed() {
		return 0, fmt.Errorf("read version of %s: %w", stream, eventstore.ErrClosed)
	}
	var v int64
	if err := s.reads.version.QueryRowContext(ctx, stream).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version of %s: %w", stream, s.closedOr(err))
	}
	return v, nil
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if s.isClosed() {
		return eventstore.Position{}, fmt.Errorf("read head: %w", eventstore.ErrClosed)
	}
	var head int64
	if err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); err != nil {
		return eventstore.Position{}, fmt.Errorf("read head: %w", s.closedOr(err))
	}
	return eventstore.Position{Seq: uint64(head)}, nil
}
