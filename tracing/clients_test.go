package tracing_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/tracing"
)

// spanNames returns the names of the spans rec ended.
func spanNames(rec *tracetest.SpanRecorder) string {
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	return strings.Join(names, ", ")
}

// With tracing on, every PostgreSQL statement and every Redis command is a
// span in the trace of the caller; with it off, none is.
func TestDatabaseClientsAreTraced(t *testing.T) {
	pgURL := testenv.Postgres(t)
	redisURL, prefix := testenv.Redis(t)
	for _, on := range []bool{false, true} {
		endpoint := ""
		if on {
			endpoint = "http://127.0.0.1:1" // never reached: the spans go to rec
		}
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
		rec := tracetest.NewSpanRecorder()
		useProvider(t, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
		ctx, parent := tracing.Correlated(context.Background(), "0190d6c4-0000-7000-8000-000000000001", "test")

		cfg, err := pgxpool.ParseConfig(pgURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.Tracer = tracing.PostgresTracer()
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = pool.QueryRow(ctx, `SELECT 41 + 1`).Scan(&n)
		pool.Close()
		if err != nil || n != 42 {
			t.Fatalf("query: %d, %v", n, err)
		}

		opts, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opts)
		if err := tracing.Redis(rdb); err != nil {
			t.Fatal(err)
		}
		err = rdb.Set(ctx, prefix+"traced", "1", 0).Err()
		_ = rdb.Del(ctx, prefix+"traced").Err()
		_ = rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		parent.End()

		var sql, set bool
		for _, s := range rec.Ended() {
			isSQL, isSet := strings.Contains(s.Name(), "SELECT"), strings.EqualFold(s.Name(), "set")
			if (isSQL || isSet) && s.Parent().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("span %q is not in the caller's trace", s.Name())
			}
			sql, set = sql || isSQL, set || isSet
		}
		if on && (!sql || !set) {
			t.Errorf("tracing on: spans %s; want the SELECT and the Redis SET", spanNames(rec))
		}
		if !on && len(rec.Ended()) != 1 {
			t.Errorf("tracing off: spans %s; want only the test's own", spanNames(rec))
		}
	}
}
