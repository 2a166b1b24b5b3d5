package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ReadByStream reads the prefix of the global log up to and including
// upTo, in stream order, tombstones skipped: the events of every stream whose
// (stream, version) comes after (afterStream, afterVersion), ordered by
// stream then version, at most limit (500 when limit <= 0). Start with
// ("", 0); continue with the last event's stream and version; an empty
// result is the end.
//
// upTo must be a position a global reader has seen (Head, or an event of
// ReadAll): every event at or before it is committed, so the prefix never
// changes and pages read at different times fit together. Each page is one
// short read-only query (no transaction is held between pages, so the
// log's horizon never waits for it); the (stream_id, version) key walks
// the streams. Blue-green rebuilds use it to fold each stream in memory
// from its first event to its last, writing each read-model row once
// (projections, docs/READ_MODELS.md).
func (s *Store) ReadByStream(ctx context.Context, upTo eventstore.Position, afterStream string, afterVersion int64, limit int) ([]eventstore.RecordedEvent, error) {
	if s.closed() {
		return nil, fmt.Errorf("read by stream after %s/%d: %w", afterStream, afterVersion, eventstore.ErrClosed)
	}
	if limit <= 0 {
		limit = defaultPage
	}
	ctx, done := s.withStore(ctx)
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM event_log
		WHERE (stream_id, version) > ($1, $2::bigint) AND event_type <> '$deleted'
			AND (event_log.transaction_id, event_log.position) <= ($3::text::xid8, $4::bigint)
		ORDER BY stream_id, version LIMIT $5`,
		afterStream, afterVersion, strconv.FormatUint(upTo.Commit, 10), int64(upTo.Seq), limit)
	if err != nil {
		return nil, fmt.Errorf("read by stream after %s/%d: %w", afterStream, afterVersion, s.opError(ctx, err))
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read by stream after %s/%d: %w", afterStream, afterVersion, s.opError(ctx, err))
	}
	return evs, nil
}
