package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

var _ eventstore.SnapshotStore = (*Store)(nil)

// ReadSnapshot implements eventstore.SnapshotStore.
func (s *Store) ReadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	if s.isClosed() {
		return eventstore.Snapshot{}, false, fmt.Errorf("read snapshot of %s: %w", stream, eventstore.ErrClosed)
	}
	var (
		snap eventstore.Snapshot
		id   string
	)
	err := s.reads.snapshot.QueryRowContext(ctx, stream).Scan(&snap.Version, &id, &snap.Schema, &snap.Data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return eventstore.Snapshot{}, false, nil
	case err != nil:
		return eventstore.Snapshot{}, false, fmt.Errorf("read snapshot of %s: %w", stream, s.closedOr(err))
	}
	if snap.EventID, err = uuid.Parse(id); err != nil {
		return eventstore.Snapshot{}, false, nil // not one this code wrote: as good as none
	}
	return snap, true, nil
}

// SaveSnapshot implements eventstore.SnapshotStore. It writes on the single
// writer (WriteTx), after the appends waiting for it.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	if err := eventstore.ValidateSnapshot(stream, snap); err != nil {
		return err
	}
	if s.isClosed() {
		return fmt.Errorf("save snapshot of %s: %w", stream, eventstore.ErrClosed)
	}
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		// Only a snapshot of an event the stream holds: one taken before
		// the stream was deleted (DeleteStream) must not bring its state back.
		_, err := tx.ExecContext(ctx, `INSERT INTO stream_snapshots (stream_id, version, event_id, schema_version, data, saved_at)
			SELECT ?1, ?2, ?3, ?4, ?5, ?6
			WHERE EXISTS (SELECT 1 FROM events WHERE stream_id = ?1 AND version = ?2 AND event_id = ?3)
			ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, event_id = excluded.event_id,
				schema_version = excluded.schema_version, data = excluded.data, saved_at = excluded.saved_at
			WHERE stream_snapshots.version < excluded.version OR stream_snapshots.schema_version <> excluded.schema_version`,
			stream, snap.Version, snap.EventID.String(), snap.Schema, snap.Data, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", stream, s.closedOr(err))
	}
	return nil
}
