package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// EventsQuery selects a player's events for ListEvents.
type EventsQuery struct {
	// Player whose stream is read. Required.
	Player domain.PlayerID
	// From keeps events at or after a time, or at or after a position.
	From Moment
	// Types keeps events of these types (all when empty).
	Types []string
	// Limit is the most events returned; <= 0 means all.
	Limit int
}

// PlayerEvents returns the events of q.Player's stream that q selects, in
// stream order. A player without events has none (no error).
func PlayerEvents(ctx context.Context, store eventstore.Store, q EventsQuery) ([]eventstore.RecordedEvent, error) {
	if _, err := domain.ParsePlayerID(string(q.Player)); err != nil {
		return nil, fmt.Errorf("%w: player %q: %v", ErrInvalid, q.Player, err)
	}
	var out []eventstore.RecordedEvent
	for from := int64(1); ; {
		page, err := store.ReadStream(ctx, q.Player.Stream(), from, readPage)
		if err != nil {
			return nil, fmt.Errorf("read the events of %s: %w", q.Player, err)
		}
		for _, e := range page {
			if !atOrAfter(e, q.From) || (len(q.Types) > 0 && !slices.Contains(q.Types, e.Type)) {
				continue
			}
			out = append(out, e)
			if q.Limit > 0 && len(out) == q.Limit {
				return out, nil
			}
		}
		if len(page) < readPage {
			return out, nil
		}
		from = page[len(page)-1].Version + 1
	}
}

// readPage is how many events one read of a stream or of the log returns.
const readPage = 1000

// atOrAfter reports whether e is at or after m (always for the zero m).
func atOrAfter(e eventstore.RecordedEvent, m Moment) bool {
	switch {
	case m.HasPosition:
		return e.Position.Compare(m.Position) >= 0
	case !m.Time.IsZero():
		return !e.Metadata.OccurredAt.Before(m.Time)
	}
	return true
}

// ListEvents writes the events of q to w as JSON lines (EventLine) and
// returns how many it wrote: `taskqueue events --player ID`.
func ListEvents(ctx context.Context, store eventstore.Store, w io.Writer, q EventsQuery) (int, error) {
	evs, err := PlayerEvents(ctx, store, q)
	if err != nil {
		return 0, err
	}
	enc := json.NewEncoder(w)
	for i, e := range evs {
		if err := enc.Encode(LineOf(e)); err != nil {
			return i, fmt.Errorf("write the events of %s: %w", q.Player, err)
		}
	}
	return len(evs), nil
}
