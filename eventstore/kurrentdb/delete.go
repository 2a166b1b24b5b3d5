package kurrentdb

import (
	"context"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/taskqueue/taskqueue/eventstore"
)

// DeleteStream implements eventstore.Store with KurrentDB's soft stream
// deletion (esdb.Client.DeleteStream, any revision): the stream reads as
// empty at once and may be written again, which a forgotten player who
// signs in again needs (a hard delete, TombstoneStream, forbids that
// forever). It differs from the SQL backends' tombstones, and is unrun
// here (no KurrentDB server on the CI machine):
//
//   - The events stay in $all, and so in ReadAll and Subscribe, until the
//     operator runs a scavenge; only the scavenge removes their bytes. A
//     rebuild between the deletion and the scavenge reads them again.
//   - A stream written again after a soft deletion continues its revisions
//     (KurrentDB truncates before the next one), so its first new event has
//     version n+1, not 1: the port's "starts again at version 1" does not
//     hold, and the aggregate of a re-created queue does not load.
//
// Run forgetting on the SQL backends; see the package doc of eventstore.
func (s *Store) DeleteStream(ctx context.Context, stream string) (eventstore.DeleteResult, error) {
	if err := eventstore.ValidateStreamID(stream); err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, err)
	}
	if s.isClosed() {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, eventstore.ErrClosed)
	}
	last, err := s.readStream(ctx, s.ns+stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, s.fail(ctx, err))
	}
	if len(last) == 0 {
		return eventstore.DeleteResult{}, nil
	}
	if _, err := s.client.DeleteStream(ctx, s.ns+stream, esdb.DeleteStreamOptions{ExpectedRevision: esdb.Any{}}); err != nil {
		return eventstore.DeleteResult{}, fmt.Errorf("delete stream %s: %w", stream, s.fail(ctx, err))
	}
	return eventstore.DeleteResult{Events: last[0].Version, Last: last[0].Position}, nil
}
