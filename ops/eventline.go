package ops

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// EventLine is one event as a JSON line: what ListEvents prints, Export
// writes and Import reads. Position and RecordedAt are the source store's
// and are informative only: Import keeps neither.
type EventLine struct {
	ID            uuid.UUID           `json:"id"`
	Stream        string              `json:"stream"`
	Version       int64               `json:"version"`
	Position      eventstore.Position `json:"position"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schemaVersion"`
	Data          json.RawMessage     `json:"data"`
	Metadata      eventstore.Metadata `json:"metadata"`
	RecordedAt    time.Time           `json:"recordedAt"`
}

// LineOf returns the line of a recorded event.
func LineOf(e eventstore.RecordedEvent) EventLine {
	return EventLine{
		ID: e.ID, Stream: e.Stream, Version: e.Version, Position: e.Position, Type: e.Type,
		SchemaVersion: e.SchemaVersion, Data: e.Data, Metadata: e.Metadata, RecordedAt: e.RecordedAt,
	}
}

// EventData returns the event to append.
func (l EventLine) EventData() eventstore.EventData {
	return eventstore.EventData{ID: l.ID, Type: l.Type, SchemaVersion: l.SchemaVersion, Data: l.Data, Metadata: l.Metadata}
}

// check reports what makes l unfit for an append.
func (l EventLine) check() error {
	if l.Version < 1 {
		return fmt.Errorf("event %s of %q has version %d, want >= 1", l.ID, l.Stream, l.Version)
	}
	if l.SchemaVersion < 1 {
		return fmt.Errorf("event %s of %q has schema version %d, want >= 1", l.ID, l.Stream, l.SchemaVersion)
	}
	if l.Metadata.OccurredAt.IsZero() {
		return fmt.Errorf("event %s of %q has no metadata.occurredAt", l.ID, l.Stream)
	}
	_, err := eventstore.ValidateAppend(l.Stream, eventstore.Any, []eventstore.EventData{l.EventData()})
	return err
}
