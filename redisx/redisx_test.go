package redisx_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
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
		"cache": TestQueueCacheReadsThroughAndKeepsTheNewest,
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

func view(player string, version int64) domain.QueueView {
	return domain.QueueView{PlayerID: domain.PlayerID(player), Version: version, Running: true, Limit: 10,
		Tasks: []domain.TaskView{{TaskID: "t1", Type: "chop-wood", Count: 5, Done: int(version)}}}
}

// The cache reads through, and an older view never replaces a newer one.
func TestQueueCacheReadsThroughAndKeepsTheNewest(t *testing.T) {
	c, prefix := sharedWithPrefix(t)
	cache := redisx.NewQueueCache(c)
	ctx := context.Background()
	var loads atomic.Int32
	load := func(v int64) func(context.Context) (domain.QueueView, error) {
		return func(context.Context) (domain.QueueView, error) { loads.Add(1); return view("alice", v), nil }
	}
	if v, err := cache.Get(ctx, "alice", load(3)); err != nil || v.Version != 3 || loads.Load() != 1 {
		t.Fatalf("first get: %v, %v, %d loads", v.Version, err, loads.Load())
	}
	if v, _ := cache.Get(ctx, "alice", load(9)); v.Version != 3 || loads.Load() != 1 {
		t.Fatalf("second get: version %d after %d loads, want the cached 3 after 1", v.Version, loads.Load())
	}
	cache.Put(ctx, view("alice", 5))
	cache.Put(ctx, view("alice", 4)) // late writer
	if v, _ := cache.Get(ctx, "alice", load(9)); v.Version != 5 || v.Tasks[0].Done != 5 {
		t.Fatalf("got version %d, want 5", v.Version)
	}
	cache.Invalidate(ctx, "alice")
	if v, _ := cache.Get(ctx, "alice", load(9)); v.Version != 9 || loads.Load() != 2 {
		t.Fatalf("after invalidate: version %d, %d loads", v.Version, loads.Load())
	}
	if ttl := c.Redis().TTL(ctx, prefix+"queue:alice").Val(); ttl <= 0 || ttl > redisx.QueueTTL {
		t.Fatalf("TTL %v, want up to %v", ttl, redisx.QueueTTL)
	}
	if _, ok, err := redisx.NewProgressStore(c).Get(ctx, "alice"); ok || err != nil {
		t.Fatalf("progress of a player never put: %v, %v", ok, err)
	}
	// Several players at once (their keys in several slots of a cluster),
	// then everything (on every master of a cluster).
	for _, p := range []string{"bob", "carol", "dave"} {
		cache.Put(ctx, view(p, 1))
	}
	cache.Invalidate(ctx, "bob", "carol")
	if n := c.Redis().Exists(ctx, prefix+"queue:bob").Val() + c.Redis().Exists(ctx, prefix+"queue:carol").Val(); n != 0 {
		t.Fatalf("%d of two invalidated views still cached", n)
	}
	if err := redisx.Flush(ctx, cache); err != nil {
		t.Fatalf("flush: %v", err)
	}
	for _, p := range []string{"alice", "dave"} {
		if c.Redis().Exists(ctx, prefix+"queue:"+p).Val() != 0 {
			t.Fatalf("the view of %s outlived the flush", p)
		}
	}
	ps := redisx.NewProgressStore(c)
	redisx.QueueChanges{Cache: cache, Progress: ps}.QueueChanged(ctx, view("alice", 12))
	if p, ok, err := ps.Get(ctx, "alice"); !ok || err != nil || p.Version != 12 || p.Done != 12 || p.Count != 5 {
		t.Fatalf("progress %+v, %v, %v", p, ok, err)
	}
}

// Redis stops mid-run: every role keeps serving (the cache bypassed), the outage is logged once, and when
// Redis is back the roles use it again by themselves.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	log := &syncBuffer{}
	c := open(t, srv.URL(), "", log)
	waitFor(t, "redis up", c.Up)
	cache := redisx.NewQueueCache(c)
	ctx := context.Background()
	var loads atomic.Int32
	load := func(context.Context) (domain.QueueView, error) { loads.Add(1); return view("alice", 1), nil }
	get := func() {
		t.Helper()
		if _, err := cache.Get(ctx, "alice", load); err != nil {
			t.Fatal(err)
		}
	}

	get()
	get()
	if loads.Load() != 1 {
		t.Fatalf("%d loads with Redis up, want 1", loads.Load())
	}

	srv.Stop()
	for i := 0; i < 20; i++ {
		if _, err := cache.Get(ctx, "alice", load); err != nil {
			t.Fatalf("get with Redis down: %v", err)
		}
	}
	if c.Up() {
		t.Fatal("Redis is down but the client says up")
	}
	if n := loads.Load(); n < 20 {
		t.Fatalf("%d loads with Redis down, want every get to load", n)
	}
	if n := log.count("redis is down"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	srv.Start()
	waitFor(t, "the client to notice Redis is back", c.Up)
	if n := log.count("redis is back"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
	before := loads.Load()
	get()
	get()
	if got := loads.Load() - before; got != 1 {
		t.Fatalf("%d loads after Redis came back, want 1 (then cached)", got)
	}
}
