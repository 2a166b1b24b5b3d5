package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskqueue/taskqueue/eventstore"
)

// Append implements eventstore.Store. The append goes through the group
// commit (see the package doc): alone, it is one statement in an implicit
// transaction; queued behind others, it commits with them in one
// transaction. Either way a cancelled context leaves it fully done or
// undone. Once it committed, the store's subscriptions are woken directly
// and the notifier NOTIFYs other processes (see WithNotifyInTransaction).
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if s.closed() {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", len(events), stream, eventstore.ErrClosed)
	}
	evs, err := validate(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", len(events), stream, err)
	}
	req := &appendReq{ctx: ctx, single: true, done: make(chan struct{}),
		parts: []appendPart{{stream: stream, expected: expected, events: evs}}}
	err = s.submit(req)
	if err == nil {
		err = req.parts[0].err
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s: %w", len(events), stream, err)
	}
	return req.parts[0].res, nil
}

// AppendTx appends inside tx, a transaction of this store's database that
// the caller commits or rolls back; the events become visible to readers
// when it commits, and the statement NOTIFYs inside tx (AppendTx cannot
// know when tx commits). The append must be the transaction's first write
// (or follow AppendTx calls to the same stream): a transaction that already
// holds an ID could commit events behind a later append to the same
// stream, so AppendTx refuses it. Like every open
// transaction, tx holds global readers back until it ends: keep it short.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if s.closed() {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s in a transaction: %w", len(events), stream, eventstore.ErrClosed)
	}
	evs, err := validate(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s in a transaction: %w", len(events), stream, err)
	}
	// The stream's lock is taken in tx itself, outside the append's
	// savepoint, so it holds until tx ends even when the append fails: a
	// later AppendTx to the same stream in tx is then still in order (tx
	// got its ID while holding the stream), which the row's xmax shows.
	var first bool
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned() IS NULL
		OR (SELECT xmax = pg_current_xact_id_if_assigned()::xid FROM stream_locks WHERE slot = hashtext($1::text) & `+fmt.Sprint(lockSlots-1)+`)`,
		stream).Scan(&first); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s in a transaction: %w", len(events), stream, err)
	}
	if !first {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s in a transaction: %w", len(events), stream, errNotFirstWrite)
	}
	if _, err := tx.Exec(ctx, `SELECT slot FROM stream_locks WHERE slot = hashtext($1::text) & `+fmt.Sprint(lockSlots-1)+` FOR UPDATE`, stream); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %d events to %s in a transaction: lock the stream: %w", len(events), stream, err)
	}
	res, err := s.append(ctx, savepointer{tx}, stream, expected, evs, true)
	if err != nil {
		return res, fmt.Errorf("append %d events to %s in a transaction: %w", len(events), stream, err)
	}
	return res, nil
}

// validate applies the port's rules and the ones PostgreSQL text adds: no
// NUL bytes in text columns, valid UTF-8 JSON (the json type rejects less
// than encoding/json accepts otherwise).
func validate(stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) ([]eventstore.EventData, error) {
	evs, err := eventstore.ValidateAppend(stream, expected, events)
	if err != nil {
		return nil, err
	}
	for i, e := range evs {
		switch {
		case strings.ContainsRune(e.Type, 0):
			return nil, fmt.Errorf("%w: event %d type has a NUL byte", eventstore.ErrInvalid, i)
		case !utf8.Valid(e.Data):
			return nil, fmt.Errorf("%w: event %d (%s) data is not valid UTF-8", eventstore.ErrInvalid, i, e.Type)
		}
		for _, f := range []string{e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.Actor} {
			if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
				return nil, fmt.Errorf("%w: event %d (%s) metadata is not UTF-8 text without NUL bytes", eventstore.ErrInvalid, i, e.Type)
			}
		}
	}
	return evs, nil
}

// execer runs the append statement: the pool (autocommit) or a transaction
// (inside a savepoint, so a failure leaves the transaction usable).
type execer interface {
	querier
	// attempt runs f so that an error in it undoes only what f did.
	attempt(ctx context.Context, f func(q querier) error) error
}

type savepointer struct{ tx pgx.Tx }

func (sp savepointer) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return sp.tx.Query(ctx, sql, args...)
}

func (sp savepointer) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return sp.tx.QueryRow(ctx, sql, args...)
}

func (sp savepointer) attempt(ctx context.Context, f func(q querier) error) error {
	nested, err := sp.tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(nested); err != nil {
		_ = nested.Rollback(ctx)
		return err
	}
	return nested.Commit(ctx)
}

type poolExecer struct{ querier }

func (p poolExecer) attempt(_ context.Context, f func(q querier) error) error { return f(p.querier) }

// append writes evs (already validated) and resolves a failed write into a
// duplicate, a wrong version or invalid input.
func (s *Store) append(ctx context.Context, q querier, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData, notifyInTx bool) (eventstore.AppendResult, error) {
	ex, ok := q.(execer)
	if !ok {
		ex = poolExecer{q}
	}
	sql, args := appendStatement(stream, expected, evs, notifyInTx)
	// A retry happens only when the stream changed between the failed
	// statement and the reads that explain it; a few are plenty.
	for range 5 {
		var (
			inserted int
			lastPos  int64
			xid      *int64
			version  *int64
			notified *bool
		)
		err := ex.attempt(ctx, func(q querier) error {
			return q.QueryRow(ctx, sql, args...).Scan(&inserted, &lastPos, &xid, &version, &notified)
		})
		violated := isUniqueViolation(err, "event_log_event_id_key")
		switch {
		case err != nil && isDataException(err):
			// PostgreSQL refused a value that validation let through.
			return eventstore.AppendResult{}, fmt.Errorf("%w: %w", eventstore.ErrInvalid, err)
		case err != nil && !violated:
			return eventstore.AppendResult{}, err
		case err == nil && inserted == len(evs) && xid != nil && version != nil:
			return eventstore.AppendResult{
				Version:  *version,
				Position: eventstore.Position{Commit: uint64(*xid), Seq: uint64(lastPos)},
			}, nil
		case err == nil && inserted != 0:
			return eventstore.AppendResult{}, fmt.Errorf("append statement inserted %d of %d events", inserted, len(evs))
		}
		res, retry, err := resolve(ctx, ex, stream, expected, evs, violated)
		if !retry {
			return res, err
		}
	}
	return eventstore.AppendResult{}, fmt.Errorf("stream %s kept changing while the append was retried", stream)
}

// appendStatement builds the one statement of an append. $1 stream, $2
// number of events, $3..$10 the events' columns as arrays, $11 the exact
// expected version. The stream's lock (its row of stream_locks) is taken
// before any row is written, so the transaction's ID is assigned while it
// holds the stream: PostgreSQL assigns a row locker's ID once it has the
// row, not while it waits.
func appendStatement(stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData, notify bool) (string, []any) {
	var streamCTE string
	n, exact := expected.Version()
	switch {
	case expected.IsAny():
		streamCTE = `INSERT INTO event_streams AS st (stream_id, version) SELECT $1::text, $2::bigint FROM lock
			ON CONFLICT (stream_id) DO UPDATE SET version = st.version + $2::bigint RETURNING st.version`
	case exact && n == 0:
		streamCTE = `INSERT INTO event_streams AS st (stream_id, version) SELECT $1::text, $2::bigint FROM lock
			ON CONFLICT (stream_id) DO NOTHING RETURNING st.version`
	case exact:
		streamCTE = `UPDATE event_streams AS st SET version = st.version + $2::bigint FROM lock
			WHERE st.stream_id = $1::text AND st.version = $11::bigint RETURNING st.version`
	default: // StreamExists: a row exists only for a stream with events
		streamCTE = `UPDATE event_streams AS st SET version = st.version + $2::bigint FROM lock
			WHERE st.stream_id = $1::text RETURNING st.version`
	}
	notifyColumn := "NULL::bool"
	if notify {
		notifyColumn = `CASE WHEN count(*) > 0 THEN pg_notify('` + notifyChannel + `', current_schema()) IS NULL END`
	}
	sql := `WITH lock AS (SELECT slot FROM stream_locks WHERE slot = hashtext($1::text) & ` + fmt.Sprint(lockSlots-1) + ` FOR UPDATE),
	s AS (` + streamCTE + `),
	ins AS (
		INSERT INTO event_log (event_id, stream_id, version, event_type, schema_version, data,
			occurred_at, correlation_id, causation_id, actor)
		SELECT e.id, $1::text, s.version - $2::bigint + e.ord, e.typ, e.sv, e.data::json, e.at, e.corr, e.caus, e.actor
		FROM s CROSS JOIN unnest($3::uuid[], $4::text[], $5::int4[], $6::text[], $7::timestamptz[],
			$8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS e(id, typ, sv, data, at, corr, caus, actor, ord)
		ORDER BY e.ord
		RETURNING transaction_id, position
	)
	SELECT count(*), coalesce(max(position), 0),
		(SELECT transaction_id::text::bigint FROM ins LIMIT 1),
		(SELECT version FROM s),
		` + notifyColumn + `
	FROM ins`
	var (
		ids   = make([][16]byte, len(evs)) // binary, not uuid.UUID's text Value
		types = make([]string, len(evs))
		svs   = make([]int32, len(evs))
		datas = make([]string, len(evs))
		ats   = make([]time.Time, len(evs))
		corrs = make([]string, len(evs))
		caus  = make([]string, len(evs))
		acts  = make([]string, len(evs))
	)
	for i, e := range evs {
		ids[i], types[i], svs[i], datas[i] = e.ID, e.Type, int32(e.SchemaVersion), string(e.Data)
		ats[i], corrs[i], caus[i], acts[i] = e.Metadata.OccurredAt, e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.Actor
	}
	args := []any{stream, int64(len(evs)), ids, types, svs, datas, ats, corrs, caus, acts}
	if exact && n > 0 {
		args = append(args, n)
	}
	return sql, args
}

// resolve explains an append that wrote nothing: the events may already be
// stored at the place the append would have put them (an idempotent retry),
// the expected version may not match, or an event ID may be stored
// elsewhere. retry is true when none of these holds any more: the stream
// changed since the statement ran.
func resolve(ctx context.Context, q querier, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData, violated bool) (eventstore.AppendResult, bool, error) {
	var actual int64
	err := q.QueryRow(ctx, `SELECT coalesce((SELECT version FROM event_streams WHERE stream_id = $1), 0)`, stream).Scan(&actual)
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("read version: %w", err)
	}
	var (
		firstStream  string
		firstVersion int64
	)
	err = q.QueryRow(ctx, `SELECT stream_id, version FROM event_log WHERE event_id = $1`, evs[0].ID).Scan(&firstStream, &firstVersion)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return eventstore.AppendResult{}, false, fmt.Errorf("look up event %s: %w", evs[0].ID, err)
	case firstStream == stream:
		n, exact := expected.Version()
		if !exact || firstVersion == n+1 {
			stored, err := readStream(ctx, q, stream, firstVersion, len(evs))
			if err != nil {
				return eventstore.AppendResult{}, false, err
			}
			if eventstore.IdempotentMatch(stored, evs) {
				last := stored[len(evs)-1]
				return eventstore.AppendResult{Version: last.Version, Position: last.Position, Duplicate: true}, false, nil
			}
		}
	}
	if !expected.Check(actual) {
		return eventstore.AppendResult{}, false, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: actual}
	}
	if violated {
		ids := make([]uuid.UUID, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		var (
			id      uuid.UUID
			where   string
			version int64
		)
		err := q.QueryRow(ctx, `SELECT event_id, stream_id, version FROM event_log WHERE event_id = ANY($1) ORDER BY position LIMIT 1`, ids).Scan(&id, &where, &version)
		if err == nil {
			return eventstore.AppendResult{}, false, fmt.Errorf("%w: event %s is already stored in stream %s at version %d", eventstore.ErrInvalid, id, where, version)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return eventstore.AppendResult{}, false, fmt.Errorf("look up stored event IDs: %w", err)
		}
	}
	return eventstore.AppendResult{}, true, nil
}

// isDataException reports a PostgreSQL "data exception" (SQLSTATE class
// 22): a value the column types refuse.
func isDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}
