// Package apptest builds the whole application for tests, through the same
// wiring as the binary (app.New), on real backends: the embedded default
// (SQLite in a temporary directory) or PostgreSQL in a schema of the test's
// own (internal/testenv). Everything is closed when the test ends.
package apptest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// Secret is the JWT secret of apps built with a database URL.
var Secret = strings.Repeat("test-secret-", 4)

// Option changes the configuration before the app is built.
type Option func(*app.Config)

// SQLite builds the app on the embedded default in a fresh temporary data
// directory, in dev mode.
func SQLite(t testing.TB, opts ...Option) *app.App {
	t.Helper()
	cfg := app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", LogLevel: "warn"}
	return build(t, cfg, opts)
}

// Postgres builds the app on PostgreSQL (a fresh schema, see
// testenv.Postgres), not in dev mode, signing with Secret. It skips (or
// fails when services are required) without TASKQUEUE_TEST_DATABASE_URL.
func Postgres(t testing.TB, opts ...Option) *app.App {
	t.Helper()
	cfg := app.Config{
		DataDir:          t.TempDir(),
		Addr:             "127.0.0.1:0",
		DatabaseURL:      testenv.Postgres(t),
		DatabaseMaxConns: 4,
		JWTSecret:        Secret,
		LogLevel:         "warn",
	}
	return build(t, cfg, opts)
}

// KurrentDB builds the app with its events in KurrentDB (under a namespace
// of the test's own) and its read models in SQLite. It skips without
// TASKQUEUE_TEST_KURRENTDB_URL (see testenv.KurrentDB).
func KurrentDB(t testing.TB, opts ...Option) *app.App {
	t.Helper()
	url := testenv.KurrentDB(t)
	cfg := app.Config{
		DataDir:            t.TempDir(),
		Addr:               "127.0.0.1:0",
		KurrentDBURL:       url,
		KurrentDBNamespace: fmt.Sprintf("t%d-", time.Now().UnixNano()),
		JWTSecret:          Secret,
		LogLevel:           "warn",
	}
	return build(t, cfg, opts)
}

func build(t testing.TB, cfg app.Config, opts []Option) *app.App {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs after the app's cleanup
	a, cleanup, err := app.NewWithLog(ctx, cfg, w)
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	t.Cleanup(cleanup)
	return a
}

// testWriter sends the app's log to the test's log until the test's
// cleanup is over. Some goroutines outlive the app's cleanup by a moment
// (watermill-redisstream's blocked stream reads report their end after
// the subscriber closed), and testing panics on a log after a test ended.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
