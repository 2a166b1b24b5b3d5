package projections

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/query"
)

// Admin adapts the Runners of a service to query.ProjectionAdmin: the admin
// API's status, rebuild, skip and retry of every projection the service
// runs (the read side's runner and the processor's, which runs
// processor_schedule), each request going to the runner that runs the
// named projection. The runner's errors are mapped to query's:
// ErrUnknownProjection -> query.ErrNotFound; ErrRebuildInProgress,
// ErrNotFailed and ErrSkipRefused -> query.ErrConflict; a malformed
// position -> a *domain.ValidationError on "position".
type Admin struct{ Runners []*Runner }

// NewAdmin returns the Admin of runners (nil ones are left out).
func NewAdmin(runners ...*Runner) Admin {
	var a Admin
	for _, r := range runners {
		if r != nil {
			a.Runners = append(a.Runners, r)
		}
	}
	return a
}

var _ query.ProjectionAdmin = Admin{}

// runner returns the runner that runs the named projection.
func (a Admin) runner(name string) (*Runner, error) {
	for _, r := range a.Runners {
		if _, ok := r.projs[name]; ok {
			return r, nil
		}
	}
	return nil, fmt.Errorf("projection %q: %w: %w", name, query.ErrNotFound, ErrUnknownProjection)
}

// Statuses reports every projection of every runner, sorted by name.
func (a Admin) Statuses(ctx context.Context) ([]query.ProjectionState, error) {
	var out []query.ProjectionState
	for _, r := range a.Runners {
		st, err := r.Status(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range st {
			out = append(out, toQueryState(s))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (a Admin) Status(ctx context.Context, name string) (query.ProjectionState, error) {
	r, err := a.runner(name)
	if err != nil {
		return query.ProjectionState{}, err
	}
	s, err := r.StatusOf(ctx, name)
	if err != nil {
		return query.ProjectionState{}, mapAdminErr(err)
	}
	return toQueryState(s), nil
}

func (a Admin) Rebuild(ctx context.Context, name string) (string, error) {
	r, err := a.runner(name)
	if err != nil {
		return "", err
	}
	gen, err := r.Rebuild(ctx, name)
	if err != nil {
		return "", mapAdminErr(err)
	}
	return gen, nil
}

func (a Admin) Skip(ctx context.Context, name, position, by string) error {
	r, err := a.runner(name)
	if err != nil {
		return err
	}
	pos, err := eventstore.ParsePosition(position)
	if err != nil {
		return &domain.ValidationError{Field: "position", Reason: fmt.Sprintf("is not a log position: %q", position)}
	}
	return mapAdminErr(r.Skip(ctx, name, pos, by))
}

func (a Admin) Retry(ctx context.Context, name string) error {
	r, err := a.runner(name)
	if err != nil {
		return err
	}
	return mapAdminErr(r.Retry(name))
}

func mapAdminErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownProjection):
		return fmt.Errorf("%w: %w", query.ErrNotFound, err)
	case errors.Is(err, ErrRebuildInProgress), errors.Is(err, ErrNotFailed), errors.Is(err, ErrSkipRefused):
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
	if d := s.Degraded; d != nil {
		out.Degraded = &query.ProjectionOutage{Since: d.Since, Error: d.Error}
	}
	if p := s.Rebuild; p != nil {
		out.Rebuild = &query.RebuildProgress{Generation: p.Generation, Version: p.Version, State: string(p.State),
			Position: p.Position.String(), Done: p.Done, Total: p.Total, EventsPerSecond: p.EventsPerSecond,
			ETAMs: p.ETA.Milliseconds(), Failure: toQueryFailure(p.Failure)}
	}
	return out
}
