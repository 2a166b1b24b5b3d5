package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// Store returns s decorated with the event log's metrics (see the package
// doc). The decorated store is what the rest of the app should use.
func (r *Registry) Store(s eventstore.Store) eventstore.Store { return &store{Store: s, r: r} }

type store struct {
	eventstore.Store
	r *Registry
}

// storeError counts err as a database error unless it is the caller's.
func (r *Registry) storeError(op string, err error) {
	switch {
	case err == nil, errors.Is(err, eventstore.ErrInvalid), errors.Is(err, eventstore.ErrWrongVersion),
		errors.Is(err, eventstore.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return
	}
	r.databaseErrors.WithLabelValues(op).Inc()
}

func (s *store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := s.Store.Append(ctx, stream, expected, events...)
	if err != nil {
		s.r.storeError("append", err)
		return res, err
	}
	if !res.Duplicate {
		s.appended(events, time.Now())
	}
	return res, nil
}

// AppendMany counts each stored append of the call as Append does, and
// each append that failed with an error not of its own caller's making.
func (s *store) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	outs, err := s.Store.AppendMany(ctx, appends)
	if err != nil {
		s.r.storeError("append", err)
		return outs, err
	}
	now := time.Now()
	for i, o := range outs {
		switch {
		case o.Err != nil:
			s.r.storeError("append", o.Err)
		case !o.Duplicate:
			s.appended(appends[i].Events, now)
		}
	}
	return outs, nil
}

// appended counts events stored at now: by type, repetitions, and the
// lateness of the processor's completions.
func (s *store) appended(events []eventstore.EventData, now time.Time) {
	for _, e := range events {
		s.r.eventsAppended.WithLabelValues(e.Type).Inc()
		switch e.Type {
		case string(domain.TypeRepetitionCompleted):
			s.r.repetitions.WithLabelValues("completed").Inc()
			if e.Metadata.Actor == command.ActorSystem && !e.Metadata.OccurredAt.IsZero() {
				s.r.ObserveLateness(now.Sub(e.Metadata.OccurredAt))
			}
		case string(domain.TypeTaskFailed):
			s.r.repetitions.WithLabelValues("failed").Inc()
		}
	}
}

func (s *store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadStream(ctx, stream, from, limit)
	s.r.storeError("read_stream", err)
	return evs, err
}

func (s *store) ReadAll(ctx context.Context, after eventstore.Position, filter eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadAll(ctx, after, filter, limit)
	s.r.storeError("read_all", err)
	return evs, err
}

func (s *store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	v, err := s.Store.StreamVersion(ctx, stream)
	s.r.storeError("stream_version", err)
	return v, err
}

func (s *store) Head(ctx context.Context) (eventstore.Position, error) {
	p, err := s.Store.Head(ctx)
	s.r.storeError("head", err)
	return p, err
}

func (s *store) Subscribe(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (eventstore.Subscription, error) {
	sub, err := s.Store.Subscribe(ctx, after, filter)
	if err != nil {
		s.r.storeError("subscribe", err)
		return nil, err
	}
	return &subscription{Subscription: sub, r: s.r}, nil
}

// Unwrap returns the decorated store (for callers that need a backend's
// own methods, e.g. sqlite.Store.WriteDB).
func (s *store) Unwrap() eventstore.Store { return s.Store }

type subscription struct {
	eventstore.Subscription
	r *Registry
}

func (s *subscription) Next(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Subscription.Next(ctx)
	s.r.storeError("subscribe", err)
	return evs, err
}
