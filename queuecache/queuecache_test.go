package queuecache_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/queuecache/queuecachetest"
)

func TestWithoutRedis(t *testing.T) {
	queuecachetest.Run(t, func(t *testing.T) queuecachetest.Backend {
		return queuecachetest.Backend{Cache: queuecache.New(nil), Progress: queuecache.NewProgressStore(nil)}
	})
}

func TestRedis(t *testing.T) {
	queuecachetest.Run(t, func(t *testing.T) queuecachetest.Backend {
		c := redistest.Shared(t).OpenUp(t, nil)
		return queuecachetest.Backend{Cache: queuecache.New(c), Progress: queuecache.NewProgressStore(c), Keeps: true}
	})
}

// A view lives TTL in Redis, and a flush (when Redis comes back after an
// outage) drops every view.
func TestRedisTTLAndFlush(t *testing.T) {
	srv := redistest.Shared(t)
	c := srv.OpenUp(t, nil)
	cache := queuecache.New(c)
	ctx := context.Background()
	for _, p := range []string{"alice", "dave"} {
		cache.Put(ctx, queuecachetest.View(p, 1))
	}
	if ttl := c.Redis().TTL(ctx, srv.Prefix+"queue:alice").Val(); ttl <= 0 || ttl > queuecache.TTL {
		t.Fatalf("TTL %v, want up to %v", ttl, queuecache.TTL)
	}
	queuecache.NewProgressStore(c).Put(ctx, queuecachetest.View("alice", 1))
	if ttl := c.Redis().TTL(ctx, srv.Prefix+"progress:alice").Val(); ttl <= 0 || ttl > queuecache.ProgressTTL {
		t.Fatalf("progress TTL %v, want up to %v", ttl, queuecache.ProgressTTL)
	}
	if err := queuecache.Flush(ctx, cache); err != nil {
		t.Fatalf("flush: %v", err)
	}
	for _, p := range []string{"alice", "dave"} {
		if c.Redis().Exists(ctx, srv.Prefix+"queue:"+p).Val() != 0 {
			t.Fatalf("the view of %s outlived the flush", p)
		}
	}
}

// Redis stops mid-run: every Get loads (the cache is bypassed, no error),
// and once Redis is back the views are kept again.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	c := redistest.Server{URL: srv.URL()}.OpenUp(t, nil)
	cache := queuecache.New(c)
	ctx := context.Background()
	var loads atomic.Int32
	load := func(context.Context) (domain.QueueView, error) {
		loads.Add(1)
		return queuecachetest.View("alice", 1), nil
	}
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
		get()
	}
	if c.Up() {
		t.Fatal("Redis is down but the client says up")
	}
	if n := loads.Load(); n < 21 {
		t.Fatalf("%d loads with Redis down, want every get to load", n)
	}
	srv.Start()
	testenv.WaitFor(t, "the client to notice Redis is back", c.Up)
	before := loads.Load()
	get()
	get()
	if got := loads.Load() - before; got != 1 {
		t.Fatalf("%d loads after Redis came back, want 1 (then cached)", got)
	}
}
