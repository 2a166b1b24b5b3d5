package tracing

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/projections"
)

func fail(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// Command is the command side's tracing middleware:
// handlers.Use(tracing.Command()). The span is a child of the request's.
func Command() command.Middleware {
	return func(ctx context.Context, name string, _ any, next func(context.Context) error) error {
		ctx, span := tracer().Start(ctx, "command "+name, trace.WithAttributes(attribute.String("taskqueue.command", name)))
		defer span.End()
		err := next(ctx)
		fail(span, err)
		return err
	}
}

// Store decorates s with a span per Append (stream, events, version and
// position appended). An Append outside any span (the processor's) starts
// one in the trace of its events' correlation ID.
func Store(s eventstore.Store) eventstore.Store { return &store{Store: s} }

type store struct{ eventstore.Store }

func (s *store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) > 0 && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = correlated(ctx, events[0].Metadata.CorrelationID)
	}
	ctx, span := tracer().Start(ctx, "eventstore.append", trace.WithAttributes(
		attribute.String("taskqueue.stream", stream), attribute.Int("taskqueue.events", len(events))))
	defer span.End()
	res, err := s.Store.Append(ctx, stream, expected, events...)
	fail(span, err)
	if err == nil {
		span.SetAttributes(attribute.Int64("taskqueue.version", res.Version),
			attribute.String("taskqueue.position", res.Position.String()), attribute.Bool("taskqueue.duplicate", res.Duplicate))
	}
	return res, err
}

// AppendMany records one span per call (streams and events, and how
// many appends failed on their own), in the trace of its first event's
// correlation ID when it runs outside any span.
func (s *store) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	events := 0
	for _, a := range appends {
		events += len(a.Events)
	}
	if events > 0 && !trace.SpanContextFromContext(ctx).IsValid() {
		for _, a := range appends {
			if len(a.Events) > 0 {
				ctx = correlated(ctx, a.Events[0].Metadata.CorrelationID)
				break
			}
		}
	}
	ctx, span := tracer().Start(ctx, "eventstore.append_many", trace.WithAttributes(
		attribute.Int("taskqueue.streams", len(appends)), attribute.Int("taskqueue.events", events)))
	defer span.End()
	outs, err := s.Store.AppendMany(ctx, appends)
	fail(span, err)
	failed := 0
	for _, o := range outs {
		if o.Err != nil {
			failed++
		}
	}
	span.SetAttributes(attribute.Int("taskqueue.failed_appends", failed))
	return outs, err
}

// Unwrap returns the decorated store.
func (s *store) Unwrap() eventstore.Store { return s.Store }

// Projection decorates p: each batch it applies records one span per
// correlation ID in the batch ("projection NAME"), in that correlation's
// trace. The name, version, tables and filter are p's, so checkpoints are
// unchanged.
func Projection(p projections.Projection) projections.Projection { return projection{p} }

type projection struct{ projections.Projection }

// Unwrap returns the decorated projection: the projections' bulk build
// (a rebuild from position 0 on PostgreSQL) folds with its code directly,
// without spans.
func (p projection) Unwrap() projections.Projection { return p.Projection }

func (p projection) Apply(ctx context.Context, tx projections.Tx, t projections.Tables, events []eventstore.RecordedEvent) error {
	spans := startPerCorrelation(ctx, "projection "+p.Name(), events, attribute.String("taskqueue.projection", p.Name()))
	err := p.Projection.Apply(ctx, tx, t, events)
	for _, s := range spans {
		fail(s, err)
		s.End()
	}
	return err
}

// Subscriber decorates s so that every batch its subscriptions deliver
// records a span per correlation ID ("deliver CONSUMER"): give the
// realtime hub tracing.Subscriber(store, "fanout"). Appends are not traced
// here (see Store).
func Subscriber(s eventstore.Store, consumer string) eventstore.Store {
	return &subscriber{Store: s, consumer: consumer}
}

type subscriber struct {
	eventstore.Store
	consumer string
}

func (s *subscriber) Subscribe(ctx context.Context, after eventstore.Position, filter eventstore.Filter) (eventstore.Subscription, error) {
	sub, err := s.Store.Subscribe(ctx, after, filter)
	if err != nil {
		return nil, err
	}
	return &subscription{Subscription: sub, consumer: s.consumer}, nil
}

// Unwrap returns the decorated store.
func (s *subscriber) Unwrap() eventstore.Store { return s.Store }

type subscription struct {
	eventstore.Subscription
	consumer string
}

func (s *subscription) Next(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Subscription.Next(ctx)
	for _, sp := range startPerCorrelation(ctx, "deliver "+s.consumer, evs, attribute.String("taskqueue.consumer", s.consumer)) {
		sp.End()
	}
	return evs, err
}

// startPerCorrelation starts one span per distinct correlation ID of
// events (events without one are counted on a span of their own trace).
func startPerCorrelation(ctx context.Context, name string, events []eventstore.RecordedEvent, attrs ...attribute.KeyValue) []trace.Span {
	counts := map[string]int{}
	var order []string
	for _, e := range events {
		c := e.Metadata.CorrelationID
		if counts[c] == 0 {
			order = append(order, c)
		}
		counts[c]++
	}
	spans := make([]trace.Span, 0, len(order))
	for _, c := range order {
		a := append(slices.Clone(attrs), attribute.Int("taskqueue.events", counts[c]))
		var span trace.Span
		if c == "" {
			_, span = tracer().Start(ctx, name, trace.WithAttributes(a...))
		} else {
			_, span = Correlated(ctx, c, name, a...)
		}
		spans = append(spans, span)
	}
	return spans
}
