package redisx_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/queuecache/queuecachetest"
	"github.com/taskqueue/taskqueue/ratelimit"
	"github.com/taskqueue/taskqueue/ratelimit/ratelimittest"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/sessions/sessionstest"
)

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct{ testenv.SyncBuffer }

func (s *syncBuffer) count(sub string) int { return strings.Count(s.String(), sub) }

func open(t *testing.T, url, prefix string, log *syncBuffer) *redisx.Client {
	t.Helper()
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	c, err := redisx.Open(redisx.Config{URL: url, Prefix: prefix, Timeout: 200 * time.Millisecond, HealthInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func shared(t *testing.T) *redisx.Client {
	t.Helper()
	c, _ := sharedWithPrefix(t)
	return c
}

// onCluster is the URL of the Redis Cluster that TestRolesOnRedisCluster
// runs the tests on, "" otherwise (the shared server).
var onCluster string

// redisAt is the Redis of a test: the shared server (testenv.Redis) or the
// cluster of TestRolesOnRedisCluster, and the key prefix only it uses.
func redisAt(t *testing.T) (url, prefix string) {
	t.Helper()
	if onCluster != "" {
		return onCluster, "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"
	}
	return testenv.Redis(t)
}

// presenceKey is a presence key as the package doc lists it: after the
// prefix, and on a cluster after the hash tag {presence} too.
func presenceKey(c *redisx.Client, prefix, key string) string {
	if c.Cluster() {
		return prefix + "{presence}:" + key
	}
	return prefix + key
}

// The roles that use Redis work on a Redis Cluster (3 masters, 3
// replicas) as on one server: the same tests, on a cluster of their own.
func TestRolesOnRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	onCluster = cluster.URL()
	defer func() { onCluster = "" }()
	for name, test := range map[string]func(*testing.T){
		"cache": func(t *testing.T) {
			queuecachetest.Run(t, func(t *testing.T) queuecachetest.Backend {
				c := redistest.On(t, cluster).OpenUp(t, nil)
				return queuecachetest.Backend{Cache: queuecache.New(c), Progress: queuecache.NewProgressStore(c), Keeps: true}
			})
		},
		"rate limits": func(t *testing.T) {
			ratelimittest.Run(t, func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
				return ratelimit.New(redistest.On(t, cluster).OpenUp(t, nil), cfg)
			})
		},
		"sessions": func(t *testing.T) {
			sessionstest.Run(t, func(t *testing.T) sessionstest.Backend { return sessionstest.Redis(t, redistest.On(t, cluster)) })
		},
		"presence":       TestPresenceLastInstanceDecides,
		"presence sweep": TestPresenceDeadInstanceIsSwept,
	} {
		t.Run(name, test)
	}
}

// sharedWithPrefix is shared, and the key prefix that only this test uses.
func sharedWithPrefix(t *testing.T) (*redisx.Client, string) {
	t.Helper()
	url, prefix := redisAt(t)
	c := open(t, url, prefix, nil)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Redis().Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Redis().Del(ctx, iter.Val())
		}
	})
	waitFor(t, "redis up", c.Up)
	return c, prefix
}

// Redis stops mid-run: a role's failed command takes the client down,
// logged once; a ping brings it back by itself, logged once, and the
// OnUp callbacks run.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	log := &syncBuffer{}
	c := open(t, srv.URL(), "", log)
	waitFor(t, "redis up", c.Up)
	backs := make(chan struct{}, 4)
	c.OnUp(func() { backs <- struct{}{} })
	ctx := context.Background()
	command := func() error {
		cctx, cancel := c.Bound(ctx)
		defer cancel()
		err := c.Redis().Get(cctx, c.Key("queue:", "alice")).Err()
		c.Observe(ctx, err)
		return err
	}
	if err := command(); !errors.Is(err, redis.Nil) || !c.Up() {
		t.Fatalf("a missing key: %v, up %v; want redis.Nil and still up", err, c.Up())
	}

	srv.Stop()
	for i := 0; i < 5; i++ {
		if err := command(); err == nil {
			t.Fatal("a command with Redis down succeeded")
		}
	}
	if c.Up() {
		t.Fatal("Redis is down but the client says up")
	}
	if n := log.count("redis is down"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	srv.Start()
	waitFor(t, "the client to notice Redis is back", c.Up)
	if n := log.count("redis is back"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
	select {
	case <-backs:
	case <-time.After(10 * time.Second):
		t.Fatal("the OnUp callback did not run when Redis came back")
	}
}
