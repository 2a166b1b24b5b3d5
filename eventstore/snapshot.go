package eventstore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Snapshot is an aggregate's state as of a version of its stream, kept
// beside the stream so that loading the aggregate reads only the events
// after it. What Data holds is the aggregate's business (the store keeps
// bytes); Schema says which shape it has, so an aggregate that changed
// ignores the snapshots of its older self.
type Snapshot struct {
	// Version is the stream version the state is as of (≥ 1).
	Version int64
	// EventID is the ID of the event at Version. A loader checks it against
	// the stream: a snapshot whose event is not there is not of this
	// stream's history (a log restored from an older backup) and is
	// ignored.
	EventID uuid.UUID
	// Schema is the aggregate's snapshot schema.
	Schema int
	// Data is the state.
	Data []byte
}

// SnapshotStore is implemented by stores that keep a snapshot per stream
// (the SQL backends; not KurrentDB, whose streams load from the start).
// Snapshots are a cache: losing one costs a longer load, never a wrong one.
type SnapshotStore interface {
	// ReadSnapshot returns the stream's snapshot; ok is false when it has
	// none.
	ReadSnapshot(ctx context.Context, stream string) (_ Snapshot, ok bool, _ error)
	// SaveSnapshot stores s as the stream's snapshot unless the one stored
	// is of the same schema and a later version (so concurrent savers keep
	// the newest), or the stream does not hold s.EventID at s.Version (a
	// snapshot finished after its stream was deleted stores nothing). s
	// must be valid: a version ≥ 1 and data.
	SaveSnapshot(ctx context.Context, stream string, s Snapshot) error
}

// ValidateSnapshot reports, wrapping ErrInvalid, why s cannot be stored as
// stream's snapshot.
func ValidateSnapshot(stream string, s Snapshot) error {
	if err := ValidateStreamID(stream); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if s.Version < 1 || s.EventID == uuid.Nil || len(s.Data) == 0 {
		return fmt.Errorf("save snapshot of %s: %w: version %d, event %s, %d bytes", stream, ErrInvalid, s.Version, s.EventID, len(s.Data))
	}
	return nil
}
