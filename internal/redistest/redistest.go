// Package redistest opens the Redis of a test for the Redis roles' tests
// (redisx's clients with short timeouts, a key prefix only the test uses,
// its keys deleted at the end) on the shared server (testenv.Redis) or on
// a Redis Cluster of the test's own. It is imported by tests only.
package redistest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/redisx"
)

// Server is where a test's Redis roles meet: a URL and a key prefix that
// only this test uses.
type Server struct {
	URL    string
	Prefix string
}

// Shared is the shared Redis server (TASKQUEUE_TEST_REDIS_URL; skips
// without it, fails when services are required) with a fresh prefix.
func Shared(t testing.TB) Server {
	t.Helper()
	url, prefix := testenv.Redis(t)
	return Server{URL: url, Prefix: prefix}
}

// On is cluster with a prefix of t's own.
func On(t testing.TB, cluster *testenv.RedisCluster) Server {
	return Server{URL: cluster.URL(), Prefix: "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"}
}

// Open opens another client of s (another instance of the service), with
// a 200 ms timeout and a 50 ms health check, logging to log (nil: slog's
// default). It is closed when t ends, and then every key of s's prefix is
// deleted.
func (s Server) Open(t testing.TB, log io.Writer) *redisx.Client {
	t.Helper()
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	c, err := redisx.Open(redisx.Config{URL: s.URL, Prefix: s.Prefix, Timeout: 200 * time.Millisecond, HealthInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.Prefix != "" && c.Up() {
			ctx := context.Background()
			_ = c.EachServer(ctx, func(ctx context.Context, rdb redis.UniversalClient) error {
				iter := rdb.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
				for iter.Next(ctx) {
					rdb.Del(ctx, iter.Val())
				}
				return nil
			})
		}
		_ = c.Close()
	})
	return c
}

// OpenUp is Open, once the client reports Redis up.
func (s Server) OpenUp(t testing.TB, log io.Writer) *redisx.Client {
	t.Helper()
	c := s.Open(t, log)
	testenv.WaitFor(t, "redis up", c.Up)
	return c
}
