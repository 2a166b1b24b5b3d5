// Package teststore opens the real event stores for tests: SQLite in a
// file of the test's own, PostgreSQL in a fresh schema of internal/testenv
// with every migration applied; and a Redis client that cleans up the
// test's key prefix. Everything it opens is closed when the
// test ends. It is for tests only (internal, and imported by _test files).
//
// It is apart from testenv because it imports the stores, whose own tests
// import testenv.
package teststore

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// SQLite opens the SQLite store at path, or in a new file of the test's
// temporary directory when path is "".
func SQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "taskqueue.db")
	}
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite store %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// PostgresURL returns the connection string of a fresh schema with every
// migration applied (testenv.Postgres: it skips, or fails when services
// are required, without TASKQUEUE_TEST_DATABASE_URL).
func PostgresURL(t testing.TB) string {
	t.Helper()
	url := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// Postgres opens a store with a pool of its own of maxConns connections
// on url, as another process would, migrating first; on a fresh schema
// when url is "". Keep pools small: every package's tests share the
// server.
func Postgres(t testing.TB, url string, maxConns int32) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	if url == "" {
		url = testenv.Postgres(t)
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := postgres.New(ctx, pool)
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, pool
}

// Redis returns the test Redis (testenv.Redis: it skips, or fails when
// services are required, without TASKQUEUE_TEST_REDIS_URL), the test's key
// prefix and a client that, when the test ends, deletes the keys under the
// prefix and closes. Call it before building what writes there: cleanups
// run last-in, first-out, so the keys go after the writers closed.
func Redis(t testing.TB) (url, prefix string, rdb *redis.Client) {
	t.Helper()
	url, prefix = testenv.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("TASKQUEUE_TEST_REDIS_URL: %v", err)
	}
	rdb = redis.NewClient(opts)
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, err := rdb.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
		_ = rdb.Close()
	})
	return url, prefix, rdb
}

// EachStore runs f as a subtest on each SQL event store: SQLite in a file
// of the test's own, and PostgreSQL on a fresh schema with a pool of its
// own of 6 connections.
func EachStore(t *testing.T, f func(t *testing.T, store eventstore.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t, "")) })
	t.Run("postgres", func(t *testing.T) {
		s, _ := Postgres(t, "", 6)
		f(t, s)
	})
}

// Reads counts the ReadStream calls to a real store and the events they
// returned.
type Reads struct {
	eventstore.Store
	Calls, Events atomic.Int64
}

// ReadStream implements eventstore.Store.
func (r *Reads) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := r.Store.ReadStream(ctx, stream, from, limit)
	r.Calls.Add(1)
	r.Events.Add(int64(len(evs)))
	return evs, err
}
