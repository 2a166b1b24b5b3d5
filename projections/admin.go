package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/query"
)

// Admin adapts a Runner to query.ProjectionAdmin: the admin API's status,
// rebuild and skip, with the runner's errors mapped to query's
// (ErrUnknownProjection -> query.ErrNotFound; ErrRebuildInProgress and
// ErrNotFailed -> query.ErrConflict; a malformed position -> a
// *domain.ValidationError on "position").
type Admin struct{ R *Runner }

var _ query.ProjectionAdmin = Admin{}

func (a Admin) Statuses(ctx context.Context) ([]query.ProjectionState, error) {
	st, err := a.R.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]query.ProjectionState, len(st))
	for i, s := range st {
		out[i] = toQueryState(s)
	}
	return out, nil
}

func (a Admin) Status(ctx context.Context, name string) (query.ProjectionState, error) {
	s, err := a.R.StatusOf(ctx, name)
	if err != nil {
		return query.ProjectionState{}, mapAdminErr(err)
	}
	return toQueryState(s), nil
}

func (a Admin) Rebuild(ctx context.Context, name string) (string, error) {
	gen, err := a.R.Rebuild(ctx, name)
	if err != nil {
		return "", mapAdminErr(err)
	}
	return gen, nil
}

func (a Admin) Skip(ctx context.Context, name, position, by string) error {
	pos, err := eventstore.ParsePosition(position)
	if err != nil {
		return &domain.ValidationError{Field: "position", Reason: fmt.Sprintf("is not a log position: %q", position)}
	}
	return mapAdminErr(a.R.Skip(ctx, name, pos, by))
}

func mapAdminErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownProjection):
		return fmt.Errorf("%w: %w", query.ErrNotFound, err)
	case errors.Is(err, ErrRebuildInProgress), errors.Is(err, ErrNotFailed):
		return fmt.Errorf("%w: %w", query.ErrConflict, err)
	}
	return err
}

func toQueryFailure(f *Failure) *query.ProjectionError {
	if f == nil {
		return nil
	}
	return &query.ProjectionError{Position: f.Position.String(), EventID: f.EventID, EventType: f.EventType,
		Stream: f.Stream, Error: f.Error, At: f.At}
}

func toQueryState(s Status) query.ProjectionState {
	out := query.ProjectionState{
		Name: s.Name, Version: s.Version, Generation: s.Generation, State: string(s.State),
		Position: s.Position.String(), Head: s.Head.String(), LagEvents: s.LagEvents, LagSeconds: s.LagSeconds,
		EventsPerSecond: s.EventsPerSecond, EventsApplied: s.EventsApplied, Failure: toQueryFailure(s.Failure),
	}
	if p := s.Rebuild; p != nil {
		out.Rebuild = &query.RebuildProgress{Generation: p.Generation, Version: p.Version, State: string(p.State),
			Position: p.Position.String(), Done: p.Done, Total: p.Total, EventsPerSecond: p.EventsPerSecond,
			ETAMs: p.ETA.Milliseconds(), Failure: toQueryFailure(p.Failure)}
	}
	return out
}
