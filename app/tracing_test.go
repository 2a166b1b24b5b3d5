package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/tracing"
)

// TestOneRequestIsOneTrace: through the app's own wiring, a command sent
// over HTTP records, in the trace of its request ID, the HTTP span, the
// command's, the append's (nested in that order), the queue projection's
// and the realtime fanout's.
func TestOneRequestIsOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(t.Context()) })

	a := apptest.SQLite(t)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	tok, _, err := a.Tokens.Mint("alice", "player", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/queue/alice/tasks", strings.NewReader(`{"type":"chop-wood","count":3}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "trace-me-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Request-Id") != "trace-me-1" {
		t.Fatalf("POST: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	want := tracing.TraceID("trace-me-1")
	names := []string{"HTTP POST /api/queue/{playerId}/tasks", "command EnqueueTask", "eventstore.append", "projection queues", "deliver fanout"}
	deadline := time.Now().Add(time.Minute)
	for {
		byName := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == want {
				byName[s.Name()] = s
			}
		}
		var missing []string
		for _, n := range names {
			if byName[n] == nil {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			h, c, ap := byName[names[0]], byName[names[1]], byName[names[2]]
			if c.Parent().SpanID() != h.SpanContext().SpanID() || ap.Parent().SpanID() != c.SpanContext().SpanID() {
				t.Errorf("spans are not nested HTTP > command > append")
			}
			return
		}
		if time.Now().After(deadline) {
			var all []string
			for _, s := range rec.Ended() {
				all = append(all, s.Name()+" "+s.SpanContext().TraceID().String())
			}
			t.Fatalf("spans of trace %s missing: %v; recorded: %v", want, missing, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
