// Package tracing owns taskqueue's OpenTelemetry traces: the exporter (OTLP
// over HTTP, only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; with neither, Setup installs
// nothing and every span here is a no-op costing a few nanoseconds) and the
// decorators that make one change one trace: HTTP → command → append →
// projection → fanout.
//
// # One trace per correlation ID
//
// The projections and the WebSocket fanout handle an event long after the
// request that caused it returned, in other goroutines or other processes;
// the event carries no trace context (eventstore.Metadata has none), but it
// carries its CorrelationID (the HTTP request ID, or the processor's key).
// So the trace ID is derived from the correlation ID (the first 16 bytes
// of its SHA-256): HTTP's span, the command's, the append's, and every
// projection batch and fanout delivery of the events that request caused
// share one trace, whichever process records them. An incoming W3C
// traceparent is kept as a span link. Changing the derivation splits the
// traces of instances running different versions.
//
// HTTP makes sure a request has an X-Request-Id before the router's request
// ID middleware runs (it keeps a client's sane one and makes a UUIDv7
// otherwise), so the request ID the web layer logs and passes as the
// correlation ID is the one the trace was derived from.
//
// Concurrency: everything here is safe for concurrent use.
package tracing

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the instrumentation scope of every span here.
const tracerName = "github.com/taskqueue/taskqueue"

// AttrCorrelationID is the attribute carrying an event's or a request's
// correlation ID on every span.
const AttrCorrelationID = "taskqueue.correlation_id"

// Enabled reports whether the environment names an OTLP endpoint.
func Enabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the global tracer provider exporting over OTLP/HTTP when
// Enabled (the exporter reads the standard OTEL_EXPORTER_OTLP_* variables:
// endpoint, headers, timeout, insecure), and the W3C trace context
// propagator. When not Enabled it installs nothing. The returned shutdown
// flushes the spans not yet exported; call it on exit.
func Setup(ctx context.Context, service, version string) (shutdown func(context.Context) error, err error) {
	if !Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("set up tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.version", version)))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("set up tracing: resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

func tracer() trace.Tracer { return otel.Tracer(tracerName) }

// TraceID returns the trace ID derived from a correlation ID.
func TraceID(correlationID string) trace.TraceID {
	sum := sha256.Sum256([]byte("taskqueue-trace:" + correlationID))
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// correlated returns ctx with a remote parent in the trace of
// correlationID, unless ctx already has a span of that trace (or
// correlationID is empty).
func correlated(ctx context.Context, correlationID string) context.Context {
	if correlationID == "" {
		return ctx
	}
	id := TraceID(correlationID)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.TraceID() == id {
		return ctx
	}
	sum := sha256.Sum256([]byte("taskqueue-root:" + correlationID))
	var span trace.SpanID
	copy(span[:], sum[:8])
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: id, SpanID: span, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
}

// Correlated starts a span named name in the trace of correlationID (for
// work that handles events outside any request); end it with span.End.
func Correlated(ctx context.Context, correlationID, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(slices.Clone(attrs), attribute.String(AttrCorrelationID, correlationID))
	return tracer().Start(correlated(ctx, correlationID), name, trace.WithAttributes(attrs...))
}
