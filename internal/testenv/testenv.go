// Package testenv gives tests the real services they need, isolated from
// every other test: a PostgreSQL schema of their own, a Redis key prefix of
// their own; servers of their own to stop or cut (PostgresServer,
// RedisServer, TCPProxy); and a virtual network of hosts on this machine
// for real network faults (Network: network namespaces, nftables cuts).
//
// The services come from the environment:
//
//	TASKQUEUE_TEST_DATABASE_URL     a PostgreSQL database tests may create schemas in
//	TASKQUEUE_TEST_REDIS_URL        a Redis server tests may write keys to
//	TASKQUEUE_TEST_KURRENTDB_URL    a KurrentDB server (esdb:// connection string)
//	TASKQUEUE_TEST_REQUIRE_SERVICES when "1", a test that would skip for a
//	                                missing service fails instead (CI sets it)
//
// Servers a test may break are its own, started from the binaries on PATH:
// StartRedisServer, StartRedisCluster (redis-server and redis-cli),
// StartPostgresServer, and TCP proxies in front of them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Required reports whether missing services must fail tests rather than skip them.
func Required() bool { return os.Getenv("TASKQUEUE_TEST_REQUIRE_SERVICES") == "1" }

// need skips t, or fails it when services are required, for a missing variable.
func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if Required() {
			t.Fatalf("%s is not set and TASKQUEUE_TEST_REQUIRE_SERVICES=1", name)
		}
		t.Skipf("%s is not set", name)
	}
	return v
}

// Postgres returns a connection string for a fresh, empty schema that only
// this test uses (it is first on the search_path), and drops the schema
// when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := need(t, "TASKQUEUE_TEST_DATABASE_URL")
	schema := "t_" + strings.ToLower(sanitize(t.Name())) + "_" + randomHex(4)
	if len(schema) > 63 {
		schema = schema[:54] + "_" + randomHex(4)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connect to TASKQUEUE_TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("testenv: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, base, schema)
}

// WithSearchPath returns the connection string base with search_path set
// to schema (pgx passes unknown parameters to the server as settings).
func WithSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("testenv: parse TASKQUEUE_TEST_DATABASE_URL: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}

// Redis returns the Redis URL and a key prefix that only this test uses.
// Keys under the prefix are deleted when the test ends by the caller's
// client; testenv does not import a Redis client.
func Redis(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	return need(t, "TASKQUEUE_TEST_REDIS_URL"), "test:" + sanitize(t.Name()) + ":" + randomHex(4) + ":"
}

// KurrentDB returns the KurrentDB connection string, or skips (fails when
// services are required and the variable is set to be required; KurrentDB
// cannot run on the CI machine, so it is required only when
// TASKQUEUE_TEST_REQUIRE_KURRENTDB=1).
func KurrentDB(t testing.TB) string {
	t.Helper()
	v := os.Getenv("TASKQUEUE_TEST_KURRENTDB_URL")
	if v == "" {
		if os.Getenv("TASKQUEUE_TEST_REQUIRE_KURRENTDB") == "1" {
			t.Fatal("TASKQUEUE_TEST_KURRENTDB_URL is not set and TASKQUEUE_TEST_REQUIRE_KURRENTDB=1")
		}
		t.Skip("TASKQUEUE_TEST_KURRENTDB_URL is not set (no KurrentDB server on this machine)")
	}
	return v
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SyncBuffer is a log sink that goroutines write while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
