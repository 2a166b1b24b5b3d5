package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/tracing"
)

// useProvider installs tp globally for the test.
func useProvider(t *testing.T, tp trace.TracerProvider) {
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
}

func TestWithoutAnEndpointNothingIsInstalled(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	useProvider(t, noop.NewTracerProvider())
	shutdown, err := tracing.Setup(context.Background(), "taskqueue", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("Setup installed an SDK provider without an endpoint")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSpansGoToTheOTLPEndpoint(t *testing.T) {
	var mu sync.Mutex
	var got []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	useProvider(t, otel.GetTracerProvider())
	shutdown, err := tracing.Setup(context.Background(), "taskqueue", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tracing.Correlated(context.Background(), "req-1", "test span")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown (flush): %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("collector received %v, want POST /v1/traces", got)
	}
}

// One HTTP command is one trace: the request's span, the command's, the
// append's, the projection batch's and the fanout delivery's, all in the
// trace of the request ID.
func TestOneChangeIsOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	useProvider(t, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	ctx := context.Background()

	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "taskqueue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	handlers, err := command.NewHandlers(tracing.Store(raw), command.Config{})
	if err != nil {
		t.Fatal(err)
	}
	handlers.Use(tracing.Command())

	runner, err := projections.NewRunner(projections.Config{Store: raw, DB: projections.NewSQLiteStoreDB(raw),
		Projections: []projections.Projection{tracing.Projection(projections.Queues{})}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = runner.Run(runCtx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	tokens, err := auth.NewTokens(auth.TokensConfig{Secret: []byte(strings.Repeat("tracing-secret-", 3))})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.Config{Store: tracing.Subscriber(raw, "fanout"), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)

	router := chi.NewRouter()
	router.Post("/api/queue/{playerId}/tasks", func(w http.ResponseWriter, r *http.Request) {
		player := chi.URLParam(r, "playerId")
		_, err := handlers.EnqueueTask.Handle(r.Context(), command.EnqueueTask{
			Request: command.Request{PlayerID: player, Actor: player, CorrelationID: r.Header.Get(tracing.RequestIDHeader)},
			Type:    "chop-wood", Count: 3,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(tracing.HTTP(router))
	t.Cleanup(srv.Close)

	req, _ := http.NewRequest("POST", srv.URL+"/api/queue/alice/tasks", nil)
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", resp.StatusCode)
	}

	want := tracing.TraceID("req-42")
	names := []string{"HTTP POST /api/queue/{playerId}/tasks", "command EnqueueTask", "eventstore.append", "projection queues", "deliver fanout"}
	deadline := time.Now().Add(time.Minute)
	for {
		byName := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == want {
				byName[s.Name()] = s
			}
		}
		missing := []string{}
		for _, n := range names {
			if byName[n] == nil {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			httpSpan, cmd, app := byName[names[0]], byName[names[1]], byName[names[2]]
			if cmd.Parent().SpanID() != httpSpan.SpanContext().SpanID() || app.Parent().SpanID() != cmd.SpanContext().SpanID() {
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
