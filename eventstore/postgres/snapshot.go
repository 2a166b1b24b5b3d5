package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
)

var _ eventstore.SnapshotStore = (*Store)(nil)

// ReadSnapshot implements eventstore.SnapshotStore.
func (s *Store) ReadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	if s.closed() {
		return eventstore.Snapshot{}, false, fmt.Errorf("read snapshot of %s: %w", stream, eventstore.ErrClosed)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	var (
		snap eventstore.Snapshot
		id   string
	)
	err := s.pool.QueryRow(ctx, `SELECT version, event_id, schema_version, data FROM stream_snapshots WHERE stream_id = $1`,
		stream).Scan(&snap.Version, &id, &snap.Schema, &snap.Data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return eventstore.Snapshot{}, false, nil
	case err != nil:
		return eventstore.Snapshot{}, false, fmt.Errorf("read snapshot of %s: %w", stream, s.opError(ctx, err))
	}
	if snap.EventID, err = uuid.Parse(id); err != nil {
		return eventstore.Snapshot{}, false, nil // not one this code wrote: as good as none
	}
	return snap, true, nil
}

// SaveSnapshot implements eventstore.SnapshotStore.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	if err := eventstore.ValidateSnapshot(stream, snap); err != nil {
		return err
	}
	if s.closed() {
		return fmt.Errorf("save snapshot of %s: %w", stream, eventstore.ErrClosed)
	}
	ctx, done := s.withStore(ctx)
	defer done()
	// A snapshot is a cache, so its transaction commits without waiting
	// for the WAL flush (synchronous_commit off for it alone, set in the
	// same implicit transaction of the batch): a save lost in a crash costs
	// a longer load, and a save that survives one names an event committed
	// (flushed) before it. On a busy server each save would otherwise be
	// one more flush for the appends' commits to queue behind.
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	// Only a snapshot of an event the stream holds: one taken before the
	// stream was deleted (DeleteStream) must not bring its state back.
	b.Queue(`INSERT INTO stream_snapshots (stream_id, version, event_id, schema_version, data, saved_at)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE EXISTS (SELECT 1 FROM event_log WHERE stream_id = $1 AND version = $2 AND event_id = $3::text::uuid)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, event_id = excluded.event_id,
			schema_version = excluded.schema_version, data = excluded.data, saved_at = excluded.saved_at
		WHERE stream_snapshots.version < excluded.version OR stream_snapshots.schema_version <> excluded.schema_version`,
		stream, snap.Version, snap.EventID.String(), snap.Schema, snap.Data, time.Now().UnixMilli())
	err := s.pool.SendBatch(ctx, b).Close()
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", stream, s.opError(ctx, err))
	}
	return nil
}
