package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// randomUUID is an SQL expression of a random (version 4) UUID in the
// text form event_id holds.
const randomUUID = `lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' ||
	substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`

// DeleteStream implements eventstore.Store: in one write transaction on the
// single writer, serialized with appends, the stream's rows become
// tombstones (the one UPDATE migration 0002's trigger allows) and its
// snapshot is deleted.
func (s *Store) DeleteStream(ctx context.Context, stream string) (eventstore.DeleteResult, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, err)
	}
	if s.isClosed() {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, eventstore.ErrClosed)
	}
	var res eventstore.DeleteResult
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		res = eventstore.DeleteResult{}
		rows, err := tx.QueryContext(ctx, `UPDATE events SET stream_id = ?, event_id = `+randomUUID+`,
			event_type = ?, schema_version = 1, data = CAST('{}' AS BLOB), occurred_at = recorded_at,
			correlation_id = '', causation_id = '', actor = ''
			WHERE stream_id = ? RETURNING position`, eventstore.DeletedStreamPrefix+uuid.NewString(), eventstore.DeletedType, stream)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var pos int64
			if err := rows.Scan(&pos); err != nil {
				return err
			}
			res.Events++
			if p := (eventstore.Position{Seq: uint64(pos)}); res.Last.Less(p) {
				res.Last = p
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		_, err = tx.ExecContext(ctx, `DELETE FROM stream_snapshots WHERE stream_id = ?`, stream)
		return err
	})
	if err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, s.closedOr(err))
	}
	return res, nil
}
