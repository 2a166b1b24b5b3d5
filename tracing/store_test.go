package tracing_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/tracing"
)

// An AppendMany outside any span (as the processor makes them) records
// one span in the trace of its first event's correlation ID, with the
// number of streams, events and failed appends.
func TestAppendManySpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	useProvider(t, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "taskqueue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	ev := func() eventstore.EventData {
		return eventstore.EventData{ID: uuid.New(), Type: "A", Data: []byte(`{}`),
			Metadata: eventstore.Metadata{OccurredAt: time.Now(), CorrelationID: "batch-7"}}
	}
	outs, err := tracing.Store(raw).AppendMany(ctx, []eventstore.StreamAppend{
		{Stream: "a", Expected: eventstore.Any, Events: []eventstore.EventData{ev(), ev()}},
		{Stream: "b", Expected: eventstore.Exact(3), Events: []eventstore.EventData{ev()}},
	})
	if err != nil || outs[0].Err != nil || outs[1].Err == nil {
		t.Fatalf("append many: %+v, %v", outs, err)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "eventstore.append_many" {
		t.Fatalf("spans %v, want one eventstore.append_many", spans)
	}
	if got := spans[0].SpanContext().TraceID(); got != tracing.TraceID("batch-7") {
		t.Errorf("trace %s, want the correlation ID's %s", got, tracing.TraceID("batch-7"))
	}
	attrs := map[string]int64{}
	for _, a := range spans[0].Attributes() {
		attrs[string(a.Key)] = a.Value.AsInt64()
	}
	if attrs["taskqueue.streams"] != 2 || attrs["taskqueue.events"] != 3 || attrs["taskqueue.failed_appends"] != 1 {
		t.Errorf("attributes %v", attrs)
	}
}
