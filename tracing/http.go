package tracing

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskqueue/taskqueue/internal/requestid"
)

// RequestIDHeader is the header whose value is the request's correlation
// ID (web's request ID middleware reads and echoes the same header).
const RequestIDHeader = "X-Request-Id"

// HTTP wraps a chi router (or any handler): one server span per request in
// the trace of its request ID, named by the route pattern, with the status
// code. Wrap it around the router, outside web's request ID middleware.
func HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !requestid.Valid(id) {
			id = uuid.Must(uuid.NewV7()).String()
			r.Header.Set(RequestIDHeader, id)
		}
		var opts []trace.SpanStartOption
		if remote := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))); remote.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
		}
		rctx := chi.RouteContext(r.Context())
		ctx := r.Context()
		if rctx == nil {
			rctx = chi.NewRouteContext()
			ctx = context.WithValue(ctx, chi.RouteCtxKey, rctx)
		}
		opts = append(opts, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.String(AttrCorrelationID, id)))
		ctx, span := tracer().Start(correlated(ctx, id), "HTTP "+r.Method, opts...)
		defer span.End()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		if route := rctx.RoutePattern(); route != "" {
			span.SetName("HTTP " + r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(status))
		}
	})
}
