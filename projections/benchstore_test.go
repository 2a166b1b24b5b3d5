package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
)

// fixedReadStore is eventstore/postgres with ReadAll (zero filter) and Head
// answered by the same protocol (rows below pg_snapshot_xmin, in
// (transaction_id, position) order) but with ORDER BY naming the table's
// columns. The store's own queries select transaction_id::text::bigint
// under the name transaction_id, so their ORDER BY transaction_id sorts by
// that cast: no index, a sort of the whole rest of the log at every page
// and every Head, quadratic over a large log. Used by the benchmark only,
// to measure the projections at 1,000,000 events until the store is fixed;
// without -rebuild-store-queries the benchmark measures the store as it is.
type fixedReadStore struct {
	eventstore.Store
	pool *pgxpool.Pool
}

func (s fixedReadStore) Head(ctx context.Context) (eventstore.Position, error) {
	var xid, pos int64
	err := s.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, position FROM event_log
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY event_log.transaction_id DESC, event_log.position DESC LIMIT 1`).Scan(&xid, &pos)
	if isNoRows(err) {
		return eventstore.Position{}, nil
	}
	return eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}, err
}

func (s fixedReadStore) ReadAll(ctx context.Context, after eventstore.Position, f eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	if !f.IsZero() {
		return s.Store.ReadAll(ctx, after, f, limit)
	}
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT transaction_id::text::bigint, position, event_id, stream_id, version,
		event_type, schema_version, data::text, occurred_at, correlation_id, causation_id, actor, recorded_at
		FROM event_log
		WHERE (transaction_id, position) > ($1::text::xid8, $2::bigint)
			AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY event_log.transaction_id, event_log.position LIMIT $3`,
		fmt.Sprint(after.Commit), int64(after.Seq), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var e eventstore.RecordedEvent
		var xid, pos int64
		var data string
		if err := rows.Scan(&xid, &pos, &e.ID, &e.Stream, &e.Version, &e.Type, &e.SchemaVersion, &data,
			&e.Metadata.OccurredAt, &e.Metadata.CorrelationID, &e.Metadata.CausationID, &e.Metadata.Actor, &e.RecordedAt); err != nil {
			return nil, err
		}
		e.Data = []byte(data)
		e.Position = eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}
		e.Metadata.OccurredAt = e.Metadata.OccurredAt.UTC()
		e.RecordedAt = e.RecordedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
