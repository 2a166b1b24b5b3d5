package redisx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/presence/presencetest"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/queuecache/queuecachetest"
	"github.com/taskqueue/taskqueue/ratelimit"
	"github.com/taskqueue/taskqueue/ratelimit/ratelimittest"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/sessions/sessionstest"
	"github.com/taskqueue/taskqueue/wakeups/wakeupstest"
)

// The roles that use Redis work on a Redis Cluster (3 masters, 3
// replicas) as on one server: each role's contract suite, on one cluster
// of this test's own.
func TestRolesOnRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
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
		"presence": func(t *testing.T) {
			presencetest.Run(t, func(t *testing.T) presencetest.Backend { return presencetest.Redis(t, redistest.On(t, cluster)) })
		},
		"forget": func(t *testing.T) {
			// The player's keys are in several slots: one DEL of them all
			// would fail with CROSSSLOT.
			c := redistest.On(t, cluster).OpenUp(t, nil)
			ctx := context.Background()
			keys := []string{c.Key("queue:", "alice"), c.Key("progress:", "alice"), c.Key("rate:ratelimit:", "alice"), c.Key("queue:", "bob")}
			for _, k := range keys {
				if err := c.Redis().Set(ctx, k, "x", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.ForgetPlayer(ctx, "alice"); err != nil {
				t.Fatalf("forget alice on a cluster: %v", err)
			}
			for i, k := range keys {
				n, err := c.Redis().Exists(ctx, k).Result()
				if err != nil || (n == 0) != (i < 3) {
					t.Errorf("%s after forgetting alice: exists %d, %v", k, n, err)
				}
			}
		},
		"key slots": func(t *testing.T) {
			c := redistest.On(t, cluster).OpenUp(t, nil)
			for _, key := range []string{"foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}{", "a{b", "health{7}", c.Key("health", "")} {
				want, err := c.Redis().ClusterKeySlot(context.Background(), key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if got := redisx.Slot(key); got != int(want) {
					t.Errorf("Slot(%q) = %d, the server says %d", key, got, want)
				}
			}
		},
		"health check": func(t *testing.T) {
			// One master refusing writes, not the one of the key health:
			// the check writes to every master, so the client stays down.
			c := redistest.On(t, cluster).OpenUp(t, nil)
			ctx := context.Background()
			var full string
			for _, m := range cluster.Masters() {
				if m != cluster.MasterOf(c.Key("health", "")) {
					full = m
				}
			}
			node := redis.NewClient(&redis.Options{Addr: full})
			t.Cleanup(func() { node.Close() })
			config := func(name, value string) {
				if err := node.ConfigSet(ctx, name, value).Err(); err != nil {
					t.Fatal(err)
				}
			}
			config("maxmemory-policy", "noeviction")
			config("maxmemory", "1")
			t.Cleanup(func() { config("maxmemory", "0") })
			if err := c.Ping(ctx); err == nil || !strings.Contains(err.Error(), "OOM") {
				t.Fatalf("Ping while the master %s refuses writes: %v, want its OOM", full, err)
			}
			config("maxmemory", "0")
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping once every master takes writes: %v", err)
			}
		},
		"wake-ups": func(t *testing.T) {
			wakeupstest.Run(t, func(t *testing.T) wakeupstest.Backend { return wakeupstest.Redis(t, redistest.On(t, cluster)) })
		},
	} {
		t.Run(name, test)
	}
}

// Redis stops mid-run: a role's failed command takes the client down,
// logged once; a ping brings it back by itself, logged once, and the
// OnUp callbacks run.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	log := &testenv.SyncBuffer{}
	c := redistest.Server{URL: srv.URL()}.OpenUp(t, log)
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
	if n := strings.Count(log.String(), "redis is down"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	srv.Start()
	testenv.WaitFor(t, "the client to notice Redis is back", c.Up)
	if n := strings.Count(log.String(), "redis is back"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
	select {
	case <-backs:
	case <-time.After(10 * time.Second):
		t.Fatal("the OnUp callback did not run when Redis came back")
	}
}

// Redis answers but refuses every write (its maxmemory reached under
// noeviction): a role's failed write takes the client down, and it stays
// down, its fallbacks serving, while a ping would answer; it comes back,
// logged once, when writes do.
func TestRedisRefusingWritesStaysDown(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	log := &testenv.SyncBuffer{}
	c := redistest.Server{URL: srv.URL()}.OpenUp(t, log)
	ctx := context.Background()
	config := func(name, value string) {
		if err := c.Redis().ConfigSet(ctx, name, value).Err(); err != nil {
			t.Fatal(err)
		}
	}
	config("maxmemory-policy", "noeviction")
	config("maxmemory", "1")
	cctx, cancel := c.Bound(ctx)
	err := c.Redis().Set(cctx, c.Key("queue:", "alice"), "{}", time.Minute).Err()
	cancel()
	c.Observe(ctx, err)
	if err == nil || c.Up() {
		t.Fatalf("a write over maxmemory: %v, up %v; want an error and down", err, c.Up())
	}
	if err := c.Redis().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over maxmemory: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // ten health checks (redistest: 50 ms apart)
	if c.Up() {
		t.Fatal("Redis refuses writes, but the client came back up")
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded while Redis refuses writes")
	}
	config("maxmemory", "0")
	testenv.WaitFor(t, "the client to notice Redis takes writes again", c.Up)
	if down, back := strings.Count(log.String(), "redis is down"), strings.Count(log.String(), "redis is back"); down != 1 || back != 1 {
		t.Fatalf("logged %d times down and %d times back, want once each:\n%s", down, back, log.String())
	}
}
