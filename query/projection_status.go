package query

import (
	"context"
	"fmt"
	"time"
)

// ProjectionStatus asks for the status of every projection, or of one when
// Name is set (GET /api/admin/projections[/{name}]).
type ProjectionStatus struct {
	Name string
}

// ProjectionState is one projection's status, as the admin API shows it.
type ProjectionState struct {
	Name            string            `json:"name"`
	Version         int               `json:"version"`
	Generation      string            `json:"generation"`
	State           string            `json:"state"` // starting | catching-up | live | rebuilding | degraded | failed | stopped
	Position        string            `json:"position"`
	Head            string            `json:"head"`
	LagEvents       int64             `json:"lagEvents"`
	LagSeconds      float64           `json:"lagSeconds"`
	EventsPerSecond float64           `json:"eventsPerSecond"`
	EventsApplied   int64             `json:"eventsApplied"`
	Failure         *ProjectionError  `json:"failure"`
	Degraded        *ProjectionOutage `json:"degraded"`
	Rebuild         *RebuildProgress  `json:"rebuild"`
}

// ProjectionOutage is set while a projection is degraded: the
// infrastructure it needs failed (database or log unreachable, disk full)
// and it retries by itself.
type ProjectionOutage struct {
	Since time.Time `json:"since"`
	Error string    `json:"error"` // the last transient error
}

// ProjectionError is the event a projection failed on (its code refused
// it twice); POST /api/admin/projections/{name}/skip with its position
// skips it, if it still fails.
type ProjectionError struct {
	Position  string    `json:"position"`
	EventID   string    `json:"eventId"`
	EventType string    `json:"eventType"`
	Stream    string    `json:"stream"`
	Error     string    `json:"error"`
	At        time.Time `json:"at"`
}

// RebuildProgress is a running rebuild.
type RebuildProgress struct {
	Generation      string           `json:"generation"`
	Version         int              `json:"version"`
	State           string           `json:"state"`
	Position        string           `json:"position"`
	Done            int64            `json:"done"`
	Total           int64            `json:"total"`
	EventsPerSecond float64          `json:"eventsPerSecond"`
	ETAMs           int64            `json:"etaMs"`
	Failure         *ProjectionError `json:"failure"`
}

// ProjectionAdmin is implemented by projections.Admin (over the Runners).
// Errors: ErrNotFound for an unknown name, ErrConflict for a rebuild already
// running or a skip refused (the projection did not fail on that event, the
// event applies now, or the checkpoint moved), with the reason.
type ProjectionAdmin interface {
	Statuses(ctx context.Context) ([]ProjectionState, error)
	Status(ctx context.Context, name string) (ProjectionState, error)
	Rebuild(ctx context.Context, name string) (generation string, err error)
	Skip(ctx context.Context, name, position, by string) error
	Retry(ctx context.Context, name string) error
}

// ProjectionStatusHandler answers ProjectionStatus.
type ProjectionStatusHandler struct{ admin ProjectionAdmin }

func NewProjectionStatusHandler(a ProjectionAdmin) *ProjectionStatusHandler {
	return &ProjectionStatusHandler{a}
}

func (h *ProjectionStatusHandler) Handle(ctx context.Context, q ProjectionStatus) ([]ProjectionState, error) {
	if q.Name == "" {
		st, err := h.admin.Statuses(ctx)
		if err != nil {
			return nil, fmt.Errorf("projection status: %w", err)
		}
		return st, nil
	}
	s, err := h.admin.Status(ctx, q.Name)
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	return []ProjectionState{s}, nil
}
