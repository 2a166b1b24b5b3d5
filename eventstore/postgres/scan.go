package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ReadByStream reads the prefix of the global log up to and including
// upTo, in stream order, tombstones skipped, one page at a time: it walks
// the next limit keys of the (stream_id, version) index after
// (afterStream, afterVersion) (500 when limit <= 0) and returns the events
// among them at or before upTo, ordered by stream then version, and where
// the next page starts: the last key it walked, events past upTo and
// tombstones included. more is false when the walk reached the end of the
// log. Start with ("", 0) and continue with the returned key until more is
// false; a page may hold fewer than limit events, even none, before the
// end (events appended after upTo).
//
// upTo must be a position a global reader has seen (Head, or an event of
// ReadAll): every event at or before it is committed, so the prefix never
// changes and pages read at different times fit together. Each page is one
// short read-only query (no transaction is held between pages, so the
// log's horizon never waits for it); the (stream_id, version) key walks
// the streams. Blue-green rebuilds use it to fold each stream in memory
// from its first event to its last, writing each read-model row once
// (projections, docs/READ_MODELS.md).
//
// The limit applies to the walk of the key, and the upTo and tombstone
// conditions to what it found: with both in one WHERE the planner, which
// estimates a row comparison at a third of the table whatever the
// statistics say, chose to read the whole log up to upTo by the primary key
// and sort it at every page (an external sort on disk: 333 ms a page of a
// 218,257-event log, against 20 ms for the walk of the key).
//
// It reads what a fold needs and nothing more, at the pace of the wire: the
// events' ID, Type, SchemaVersion, Data, Stream, Version and Position are
// set; their Metadata and RecordedAt are left zero. The columns come in
// binary and are taken as they are: the Data of many events share a buffer,
// and the events of one stream share its Stream string.
func (s *Store) ReadByStream(ctx context.Context, upTo eventstore.Position, afterStream string, afterVersion int64, limit int) (
	evs []eventstore.RecordedEvent, nextStream string, nextVersion int64, more bool, err error) {
	if s.closed() {
		return nil, "", 0, false, fmt.Errorf("read by stream after %s/%d: %w", afterStream, afterVersion, eventstore.ErrClosed)
	}
	if limit <= 0 {
		limit = defaultPage
	}
	ctx, done := s.withStore(ctx)
	defer done()
	evs, nextStream, nextVersion, more, err = s.readByStream(ctx, upTo, afterStream, afterVersion, limit)
	if err != nil {
		return nil, "", 0, false, fmt.Errorf("read by stream after %s/%d: %w", afterStream, afterVersion, s.opError(ctx, err))
	}
	return evs, nextStream, nextVersion, more, nil
}

// dataBlock is the size of the buffers that ReadByStream copies the events'
// data into, several events to a buffer.
const dataBlock = 1 << 20

// byStreamColumns are byStreamQuery's columns, every one in binary (xid8: 8 bytes, big-endian, as bigint).
var byStreamColumns = pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode,
	pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode}

// byStreamQuery is ReadByStream's page: the walk of $5 keys after ($1, $2)
// in the subquery (its LIMIT keeps the planner on the (stream_id, version)
// index), then the conditions on what it found. A row that does not
// qualify (past upTo, $3 and $4, or a tombstone) comes with a NULL
// event_type and data, for its key only.
const byStreamQuery = `SELECT transaction_id, position, event_id, stream_id, version,
		CASE WHEN ok THEN event_type END, schema_version, CASE WHEN ok THEN data::text END
	FROM (SELECT transaction_id, position, event_id, stream_id, version, event_type, schema_version, data,
			event_type <> '$deleted' AND (transaction_id, position) <= ($3::text::xid8, $4::bigint) AS ok
		FROM event_log WHERE (stream_id, version) > ($1, $2::bigint)
		ORDER BY stream_id, version LIMIT $5) AS walk
	ORDER BY stream_id, version`

func (s *Store) readByStream(ctx context.Context, upTo eventstore.Position, afterStream string, afterVersion int64, limit int) (
	evs []eventstore.RecordedEvent, nextStream string, nextVersion int64, more bool, err error) {
	rows, err := s.pool.Query(ctx, byStreamQuery,
		byStreamColumns, afterStream, afterVersion, strconv.FormatUint(upTo.Commit, 10), int64(upTo.Seq), limit)
	if err != nil {
		return nil, "", 0, false, err
	}
	defer rows.Close()
	var (
		block  []byte // the data of the last events read, one after the other
		stream string
		types  = map[string]string{}
		walked int
	)
	evs = make([]eventstore.RecordedEvent, 0, min(limit, 1<<16))
	for rows.Next() {
		v := rows.RawValues()
		if len(v) != 8 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 16 || len(v[4]) != 8 || len(v[6]) != 4 {
			return nil, "", 0, false, fmt.Errorf("read by stream: unexpected binary row (%d columns)", len(v))
		}
		walked++
		if string(v[3]) != stream {
			stream = string(v[3])
		}
		version := int64(binary.BigEndian.Uint64(v[4]))
		nextStream, nextVersion = stream, version
		if v[5] == nil {
			continue // past upTo, or a tombstone
		}
		evs = append(evs, eventstore.RecordedEvent{})
		e := &evs[len(evs)-1] // filled in place: no copy of a 200-byte struct
		e.Position = eventstore.Position{Commit: binary.BigEndian.Uint64(v[0]), Seq: binary.BigEndian.Uint64(v[1])}
		copy(e.ID[:], v[2])
		e.Stream = stream
		e.Version = version
		t, ok := types[string(v[5])]
		if !ok {
			t = string(v[5])
			types[t] = t
		}
		e.Type = t
		e.SchemaVersion = int(int32(binary.BigEndian.Uint32(v[6])))
		if len(block)+len(v[7]) > cap(block) {
			block = make([]byte, 0, max(dataBlock, len(v[7])))
		}
		start := len(block)
		block = append(block, v[7]...)
		e.Data = block[start:len(block):len(block)]
	}
	if err := rows.Err(); err != nil {
		return nil, "", 0, false, err
	}
	if walked < limit {
		return evs, "", 0, false, nil
	}
	return evs, nextStream, nextVersion, true, nil
}

// pgEpoch is PostgreSQL's timestamp epoch: a binary timestamptz counts
// microseconds from it.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// binaryTime decodes a binary timestamptz (UTC). Infinity, which no event
// carries, is an error.
func binaryTime(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("timestamptz of %d bytes", len(v))
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errors.New("infinite timestamptz")
	}
	return time.UnixMicro(pgEpoch + us).UTC(), nil
}

// eventRows decodes rows of eventColumns read in binary (eventFormats) from
// their raw values, without pgx's scan plans: ReadAll's pages and the
// subscriptions' reads go through it. The event types and streams of one
// decoder are shared strings, and the Data of several events share a
// buffer (first blocks are small, so a page of a few events stays small;
// at most dataBlock).
type eventRows struct {
	block   []byte
	strings map[string]string
}

// eventFormats reads eventColumns in binary.
func eventFormats() pgx.QueryResultFormats {
	f := make(pgx.QueryResultFormats, 13)
	for i := range f {
		f[i] = pgx.BinaryFormatCode
	}
	return f
}

// intern returns v as a string, the same one for equal values (types and
// streams repeat within a page).
func (d *eventRows) intern(v []byte) string {
	if s, ok := d.strings[string(v)]; ok {
		return s
	}
	if d.strings == nil {
		d.strings = map[string]string{}
	}
	s := string(v)
	d.strings[s] = s
	return s
}

// event decodes v, the 13 raw values of eventColumns in binary.
func (d *eventRows) event(v [][]byte) (eventstore.RecordedEvent, error) {
	var e eventstore.RecordedEvent
	if len(v) != 13 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 16 || len(v[4]) != 8 || len(v[6]) != 4 {
		return e, fmt.Errorf("unexpected binary event row (%d columns)", len(v))
	}
	e.Position = eventstore.Position{Commit: binary.BigEndian.Uint64(v[0]), Seq: binary.BigEndian.Uint64(v[1])}
	copy(e.ID[:], v[2])
	e.Stream = d.intern(v[3])
	e.Version = int64(binary.BigEndian.Uint64(v[4]))
	e.Type = d.intern(v[5])
	e.SchemaVersion = int(int32(binary.BigEndian.Uint32(v[6])))
	if len(d.block)+len(v[7]) > cap(d.block) {
		size := min(max(2*cap(d.block), 1<<10), dataBlock)
		d.block = make([]byte, 0, max(size, len(v[7])))
	}
	start := len(d.block)
	d.block = append(d.block, v[7]...)
	e.Data = d.block[start:len(d.block):len(d.block)]
	var err error
	if e.Metadata.OccurredAt, err = binaryTime(v[8]); err != nil {
		return e, fmt.Errorf("occurred_at: %w", err)
	}
	e.Metadata.CorrelationID = string(v[9])
	e.Metadata.CausationID = string(v[10])
	e.Metadata.Actor = d.intern(v[11])
	if e.RecordedAt, err = binaryTime(v[12]); err != nil {
		return e, fmt.Errorf("recorded_at: %w", err)
	}
	return e, nil
}
