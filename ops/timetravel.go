package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// QueueAtResult is a queue as it was at a moment.
type QueueAtResult struct {
	Player domain.PlayerID `json:"playerId"`
	// At is the moment asked for.
	At string `json:"at"`
	// Events is the number of the stream's events folded.
	Events int `json:"events"`
	// Position is the global position of the last event folded (Start when
	// none was).
	Position eventstore.Position `json:"position"`
	// Queue is the view of the folded aggregate (version 0, empty, when the
	// player had no events yet).
	Queue domain.QueueView `json:"queue"`
	// Aggregate is the folded queue itself, for callers that decide on it.
	Aggregate *domain.Queue `json:"-"`
}

// QueueAt folds player's events that are at or before at into a
// domain.Queue deciding by rules (time travel): `taskqueue queue --player ID
// --at TIME` and GET /api/admin/players/{id}/queue?at=. The zero at folds
// every event. Folding is what the log recorded: a repetition that fell due
// before at but was completed after it still shows running.
func QueueAt(ctx context.Context, store eventstore.Store, player domain.PlayerID, at Moment, rules domain.Rules) (QueueAtResult, error) {
	if _, err := domain.ParsePlayerID(string(player)); err != nil {
		return QueueAtResult{}, fmt.Errorf("%w: player %q: %v", ErrInvalid, player, err)
	}
	q := domain.NewQueue(player, rules)
	res := QueueAtResult{Player: player, At: at.String(), Aggregate: q}
	for from := int64(1); ; {
		page, err := store.ReadStream(ctx, player.Stream(), from, readPage)
		if err != nil {
			return res, fmt.Errorf("time travel: read the events of %s: %w", player, err)
		}
		for _, re := range page {
			if !at.includes(re) {
				res.Queue = q.View()
				return res, nil
			}
			e, err := domain.DecodeEvent(re.Type, re.SchemaVersion, re.Data)
			if err != nil {
				return res, fmt.Errorf("time travel: decode event %d of %s (%s): %w", re.Version, re.Stream, re.Type, err)
			}
			if err := q.Apply(e); err != nil {
				return res, fmt.Errorf("time travel: apply event %d of %s (%s): %w", re.Version, re.Stream, re.Type, err)
			}
			res.Events++
			res.Position = re.Position
		}
		if len(page) < readPage {
			break
		}
		from = page[len(page)-1].Version + 1
	}
	res.Queue = q.View()
	return res, nil
}

// PrintQueueAt writes QueueAt's result to w as indented JSON.
func PrintQueueAt(ctx context.Context, store eventstore.Store, w io.Writer, player domain.PlayerID, at Moment, rules domain.Rules) error {
	res, err := QueueAt(ctx, store, player, at, rules)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("time travel: write: %w", err)
	}
	return nil
}
