package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
)

// eventColumns are read by scanEvent, in this order. The first is named
// transaction_id like the table's xid8 column: an ORDER BY next to it must
// name event_log.transaction_id, or it sorts by the bigint output column and
// cannot walk the primary key (a full sort of the log per page).
const eventColumns = `transaction_id::text::bigint, position, event_id, stream_id, version, event_type,
	schema_version, data::text, occurred_at, correlation_id, causation_id, actor, recorded_at`

// ReadStream implements eventstore.Store. A stream's committed events are
// final (appends to one stream are serialized), so it reads them directly,
// without the global readers' horizon.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	if s.closed() {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrClosed)
	}
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	evs, err := readStream(ctx, s.pool, stream, from, limit)
	if err != nil {
		return nil, s.opError(ctx, err)
	}
	return evs, nil
}

func readStream(ctx context.Context, q querier, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM event_log
		WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`, stream, from, lim)
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, err)
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, err)
	}
	return evs, nil
}

func scanEvent(row pgx.CollectableRow) (eventstore.RecordedEvent, error) {
	var (
		e    eventstore.RecordedEvent
		xid  int64
		pos  int64
		data string
	)
	err := row.Scan(&xid, &pos, &e.ID, &e.Stream, &e.Version, &e.Type, &e.SchemaVersion, &data,
		&e.Metadata.OccurredAt, &e.Metadata.CorrelationID, &e.Metadata.CausationID, &e.Metadata.Actor, &e.RecordedAt)
	if err != nil {
		return e, err
	}
	e.Data = []byte(data)
	e.Position = eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}
	e.Metadata.OccurredAt = e.Metadata.OccurredAt.UTC()
	e.RecordedAt = e.RecordedAt.UTC()
	return e, nil
}

// StreamVersion implements eventstore.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if s.closed() {
		return 0, fmt.Errorf("read version of %s: %w", stream, eventstore.ErrClosed)
	}
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return 0, fmt.Errorf("read stream version: %w", err)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM event_streams WHERE stream_id = $1`, stream).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read version of %s: %w", stream, s.opError(ctx, err))
	}
	return v, nil
}

// Head implements eventstore.Store: the last event below the horizon.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if s.closed() {
		return eventstore.Position{}, fmt.Errorf("read head: %w", eventstore.ErrClosed)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	var xid, pos int64
	err := s.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, position FROM event_log
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY event_log.transaction_id DESC, event_log.position DESC LIMIT 1`).Scan(&xid, &pos)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return eventstore.Position{}, nil
	case err != nil:
		return eventstore.Position{}, fmt.Errorf("read head: %w", s.opError(ctx, err))
	}
	return eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}, nil
}

// CommittedHead returns the position of the last committed event of the
// log, whether or not it is in the safe prefix yet (Head): an event
// committed after a transaction that is still open is committed but not
// yet readable. Once Head has reached it, ReadAll returns every event that
// was committed when CommittedHead was called. The realtime catch-up waits
// for that, so that everything acknowledged before a resume is in it.
func (s *Store) CommittedHead(ctx context.Context) (eventstore.Position, error) {
	if s.closed() {
		return eventstore.Position{}, fmt.Errorf("read committed head: %w", eventstore.ErrClosed)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	var xid, pos int64
	err := s.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, position FROM event_log
		ORDER BY event_log.transaction_id DESC, event_log.position DESC LIMIT 1`).Scan(&xid, &pos)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return eventstore.Position{}, nil
	case err != nil:
		return eventstore.Position{}, fmt.Errorf("read committed head: %w", s.opError(ctx, err))
	}
	return eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}, nil
}

// checkPosition refuses a position this backend never hands out: every
// PostgreSQL position has a commit part (a transaction ID), so "1042" (a
// SQLite position, Commit 0) comes from another store. Read as a
// PostgreSQL position it would sit before every event and replay the whole
// log; ErrInvalid lets the caller tell (the realtime hub answers a reset).
// Start (0) is valid.
func checkPosition(p eventstore.Position) error {
	if p.Commit == 0 && p.Seq != 0 {
		return fmt.Errorf("%w: position %s is not a PostgreSQL position (it has no commit part)", eventstore.ErrInvalid, p)
	}
	return nil
}

// ReadAll implements eventstore.Store. Its pages come in binary and are
// decoded from the raw values (eventRows): the Data of the events of one
// read may share a buffer, and their Type and Stream strings are shared.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, filter eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	if s.closed() {
		return nil, fmt.Errorf("read all after %v: %w", after, eventstore.ErrClosed)
	}
	if err := checkPosition(after); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	if limit <= 0 {
		limit = defaultPage
	}
	ctx, done := s.withStore(ctx)
	defer done()
	p, err := readPage(ctx, s.pool, after, filter, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %v: %w", after, s.opError(ctx, err))
	}
	return p.events, nil
}

// page is one read of the global log, all from one snapshot.
type page struct {
	// events match the filter, after the position asked for, below the
	// horizon, in log order; at most the limit, but never part of a
	// transaction's events.
	events []eventstore.RecordedEvent
	// head is the last event below the horizon (any filter), the zero
	// Position if none.
	head eventstore.Position
	// heldBack is true when committed events exist at or above the
	// horizon: an open transaction holds them back for now.
	heldBack bool
	// cut is true when the page is a part of a shared read that its limit
	// cut (tailReads): head is the end of that read, and more events may
	// follow at once.
	cut bool
}

// pageQuery reads a page and, in the same snapshot, the head and whether
// events are held back. The page skips tombstones
// (eventstore.DeletedType); the head counts them. $1 after.Commit (as text, for xid8), $2 after.Seq,
// $3 event types, $4 stream prefixes, $5 streams (NULL: no condition),
// $6 limit. The (SELECT 1) row keeps head and heldBack when the page is
// empty. heldBack compares the newest transaction ID with the horizon: one
// step down the primary key, where an EXISTS over ">= xmin" is planned as a
// scan of the whole log.
const pageQuery = `WITH snap AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
head AS MATERIALIZED (
	SELECT transaction_id, position FROM event_log
	WHERE transaction_id < (SELECT xmin FROM snap)
	ORDER BY transaction_id DESC, position DESC LIMIT 1
),
page AS MATERIALIZED (
	SELECT ` + eventColumns + ` FROM event_log
	WHERE (transaction_id, position) > ($1::text::xid8, $2::bigint)
		AND transaction_id < (SELECT xmin FROM snap)
		AND event_type <> '$deleted'
		AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))
		AND ($4::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($4::text[]) AS p(prefix) WHERE starts_with(stream_id, p.prefix)))
		AND ($5::text[] IS NULL OR stream_id = ANY($5::text[]))
	ORDER BY event_log.transaction_id, event_log.position
	LIMIT $6
)
SELECT coalesce((SELECT transaction_id::text::bigint FROM head), 0),
	coalesce((SELECT position FROM head), 0),
	coalesce((SELECT max(transaction_id) FROM event_log) >= (SELECT xmin FROM snap), false),
	p.*
FROM (SELECT 1) AS one LEFT JOIN page AS p ON true
ORDER BY p.transaction_id, p.position`

// binaryColumns checks that every column of a result but text ones came
// in binary, as the decoding of raw values needs. A batch cannot ask for
// result formats (as eventFormats does for a query): pgx asks for each
// type's preferred one, binary for every type of pageQuery but text,
// whose text and binary forms are the same bytes.
func binaryColumns(fields []pgconn.FieldDescription) error {
	for _, f := range fields {
		if f.Format != pgx.BinaryFormatCode && f.DataTypeOID != pgtype.TextOID {
			return fmt.Errorf("column %s (type %d) came in text, not binary", f.Name, f.DataTypeOID)
		}
	}
	return nil
}

// readPage reads a page with pageQuery and, when it filled its limit, the
// rest of the append it cut (restOfAppend).
//
// pageQuery runs with its generic plan unless the filter names streams:
// every read walks the (transaction_id, position) key from after, which is
// the plan PostgreSQL makes for any values but a list of streams (then the
// (stream_id, version) key serves better). Left to choose, it planned the
// statement again for most reads: 0.37 ms a plan, more than the read of a
// few events costs (checked on a 1,000,000-event log: the generic plan
// walks the key as the custom ones do, filtered by types or prefixes or
// not, from the start or from the head).
func readPage(ctx context.Context, pool *pgxpool.Pool, after eventstore.Position, filter eventstore.Filter, limit int) (page, error) {
	generic := len(filter.Streams) == 0
	b := &pgx.Batch{}
	if generic {
		b.Queue(genericPlans)
	}
	b.Queue(pageQuery, strconv.FormatUint(after.Commit, 10), int64(after.Seq),
		nullable(filter.EventTypes), nullable(filter.StreamPrefixes), nullable(filter.Streams), limit)
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	if generic {
		if _, err := br.Exec(); err != nil {
			return page{}, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return page{}, err
	}
	defer rows.Close()
	if err := binaryColumns(rows.FieldDescriptions()); err != nil {
		return page{}, err
	}
	var (
		p   page
		dec eventRows
	)
	for rows.Next() {
		v := rows.RawValues()
		if len(v) != 16 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 1 {
			return page{}, fmt.Errorf("unexpected binary page row (%d columns)", len(v))
		}
		p.head = eventstore.Position{Commit: binary.BigEndian.Uint64(v[0]), Seq: binary.BigEndian.Uint64(v[1])}
		p.heldBack = v[2][0] != 0
		if v[3] == nil {
			continue // the empty page's single row
		}
		if len(p.events) == cap(p.events) {
			// Room for 16, then eight times as much: a live reader's page
			// holds a few events and a catch-up's thousands. Room for
			// min(limit, 4,096) made up front was over a third of what
			// the process allocated at 500 commands/s (some 900 KB for
			// each read of a few events); doubling from 16, a 1,000-event
			// page allocated room for 2,032 (16 + 128 + 1,000 now), the
			// most a catch-up allocated.
			room := min(max(7*len(p.events), 16), limit-len(p.events))
			p.events = slices.Grow(p.events, max(room, 1))
		}
		e, err := dec.event(v[3:])
		if err != nil {
			return page{}, err
		}
		p.events = append(p.events, e)
	}
	if err := rows.Err(); err != nil {
		return page{}, err
	}
	rows.Close()
	if err := br.Close(); err != nil {
		return page{}, err
	}
	if len(p.events) == limit {
		// The limit may have cut an append: finish it, so a reader never
		// sees part of one (eventstore.Store.ReadAll). Its events are all
		// committed and below the horizon.
		last := p.events[len(p.events)-1]
		rows, err := pool.Query(ctx, restOfAppend, restFormats, strconv.FormatUint(last.Position.Commit, 10), int64(last.Position.Seq),
			nullable(filter.EventTypes), nullable(filter.StreamPrefixes), nullable(filter.Streams), last.Stream)
		if err != nil {
			return page{}, err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := dec.event(rows.RawValues())
			if err != nil {
				return page{}, err
			}
			p.events = append(p.events, e)
		}
		if err := rows.Err(); err != nil {
			return page{}, err
		}
	}
	return p, nil
}

// restFormats reads restOfAppend's columns (eventColumns) in binary.
var restFormats = eventFormats()

// restOfAppend reads the events of stream $6 in transaction $1 after
// position $2 that match the filter ($3 to $5 as in pageQuery): the rest of
// the append, since a transaction holds at most one append per stream (an
// append is one statement, a group commit or an AppendMany takes each
// stream once, AppendTx must be its transaction's first write) while
// holding the stream's lock.
const restOfAppend = `SELECT ` + eventColumns + ` FROM event_log
	WHERE transaction_id = $1::text::xid8 AND position > $2::bigint AND stream_id = $6
		AND event_type <> '$deleted'
		AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))
		AND ($4::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($4::text[]) AS p(prefix) WHERE starts_with(stream_id, p.prefix)))
		AND ($5::text[] IS NULL OR stream_id = ANY($5::text[]))
	ORDER BY position`

// nullable maps an empty filter list to SQL NULL ("no condition").
func nullable(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return list
}

// ReadStreams implements eventstore.Store: one statement, each stream read
// through the (stream_id, version) index like ReadStream.
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead, limit int) ([][]eventstore.RecordedEvent, error) {
	if s.closed() {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), eventstore.ErrClosed)
	}
	if err := eventstore.ValidateReadStreams(reads); err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), err)
	}
	out := make([][]eventstore.RecordedEvent, len(reads))
	if len(reads) == 0 {
		return out, nil
	}
	streams := make([]string, len(reads))
	froms := make([]int64, len(reads))
	index := make(map[string]int, len(reads))
	for i, r := range reads {
		streams[i], froms[i], index[r.Stream] = r.Stream, r.From, i
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	ctx, done := s.withStore(ctx)
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT e.* FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(stream, from_version, i)
		CROSS JOIN LATERAL (SELECT `+eventColumns+` FROM event_log
			WHERE stream_id = r.stream AND version >= r.from_version ORDER BY version LIMIT $3) AS e
		ORDER BY r.i, e.version`, streams, froms, lim)
	if err != nil {
		return nil, s.opError(ctx, fmt.Errorf("read %d streams: %w", len(reads), err))
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, s.opError(ctx, fmt.Errorf("read %d streams: %w", len(reads), err))
	}
	for _, e := range evs {
		i := index[e.Stream]
		out[i] = append(out[i], e)
	}
	return out, nil
}
