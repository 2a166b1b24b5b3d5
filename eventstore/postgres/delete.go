package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
)

// DeleteStream implements eventstore.Store: in one transaction holding the
// stream's lock (so an append to the stream lands wholly before or after),
// the stream's rows become tombstones, keeping their transaction_id and
// position (the horizon rule and every checkpoint stay valid), and its
// event_streams and stream_snapshots rows are deleted.
func (s *Store) DeleteStream(ctx context.Context, stream string) (eventstore.DeleteResult, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, err)
	}
	if s.closed() {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, eventstore.ErrClosed)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	var res eventstore.DeleteResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = eventstore.DeleteResult{}
		if _, err := tx.Exec(ctx, `SELECT slot FROM stream_locks WHERE slot = hashtext($1::text) & `+fmt.Sprint(lockSlots-1)+` FOR UPDATE`, stream); err != nil {
			return fmt.Errorf("lock the stream: %w", err)
		}
		rows, err := tx.Query(ctx, `UPDATE event_log SET stream_id = $2, event_id = gen_random_uuid(), event_type = $3,
			schema_version = 1, data = '{}', occurred_at = recorded_at, correlation_id = '', causation_id = '', actor = ''
			WHERE stream_id = $1 RETURNING transaction_id::text::bigint, position`,
			stream, eventstore.DeletedStreamPrefix+uuid.NewString(), eventstore.DeletedType)
		if err != nil {
			return err
		}
		var xid, pos int64
		if _, err := pgx.ForEachRow(rows, []any{&xid, &pos}, func() error {
			res.Events++
			if p := (eventstore.Position{Commit: uint64(xid), Seq: uint64(pos)}); res.Last.Less(p) {
				res.Last = p
			}
			return nil
		}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_streams WHERE stream_id = $1`, stream); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM stream_snapshots WHERE stream_id = $1`, stream)
		return err
	})
	if err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, s.opError(ctx, err))
	}
	return res, nil
}
