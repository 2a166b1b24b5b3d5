package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ratelimit"
	"github.com/taskqueue/taskqueue/ratelimit/ratelimittest"
)

func TestInProcess(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter { return ratelimit.New(nil, cfg) })
}

func TestRedis(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
		return ratelimit.New(redistest.Shared(t).OpenUp(t, nil), cfg)
	})
}

// On Redis every instance spends one budget.
func TestRedisBudgetIsShared(t *testing.T) {
	srv := redistest.Shared(t)
	cfg := ratelimit.Config{Player: ratelimit.Rate{Per: 4, Period: time.Hour, Burst: 4}}
	a, b := ratelimit.New(srv.OpenUp(t, nil), cfg), ratelimit.New(srv.OpenUp(t, nil), cfg)
	ctx := context.Background()
	allowed := 0
	for i := 0; i < 6; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		if ok, _ := l.AllowPlayer(ctx, "alice"); ok {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("two instances allowed %d of 6 commands, want the one budget of 4", allowed)
	}
}

// Redis stops mid-run: the limiter counts in-process at the same rate, and
// counts in Redis again once it is back.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	c := redistest.Server{URL: srv.URL()}.OpenUp(t, nil)
	limiter := ratelimit.New(c, ratelimit.Config{Player: ratelimit.Rate{Per: 2, Period: time.Hour, Burst: 2}})
	ctx := context.Background()
	allowedOf5 := func(player string) int {
		allowed := 0
		for i := 0; i < 5; i++ {
			if ok, _ := limiter.AllowPlayer(ctx, player); ok {
				allowed++
			}
		}
		return allowed
	}

	srv.Stop()
	if n := allowedOf5("bob"); n != 2 {
		t.Fatalf("in-process limiter allowed %d of 5, want 2", n)
	}
	if c.Up() {
		t.Fatal("Redis is down but the client says up")
	}

	srv.Start()
	testenv.WaitFor(t, "the client to notice Redis is back", c.Up)
	if n := allowedOf5("dave"); n != 2 {
		t.Fatalf("Redis limiter allowed %d of 5, want 2", n)
	}
	if n, _ := c.Redis().Exists(ctx, "rate:ratelimit:dave").Result(); n != 1 {
		t.Fatal("the limit after recovery was not counted in Redis")
	}
}
