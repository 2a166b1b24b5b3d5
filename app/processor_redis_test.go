package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// TestProcessorKeepsOffTheAPIsRedisPool: with Redis the processor's
// command subscribers (two per partition, each holding a connection
// through its blocking reads) use a pool of their own, so the API's pool
// (sessions, rate limits, cache) stays free.
func TestProcessorKeepsOffTheAPIsRedisPool(t *testing.T) {
	url, prefix := testenv.Redis(t)
	t.Cleanup(func() { // after the app closed: the processor's streams under the test's prefix
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		if keys, err := rdb.Keys(context.Background(), prefix+"*").Result(); err == nil && len(keys) > 0 {
			_ = rdb.Del(context.Background(), keys...).Err()
		}
	})
	a := apptest.SQLite(t, func(c *app.Config) { c.RedisURL, c.RedisPrefix = url, prefix })
	if a.Processor == nil {
		t.Fatal("no processor")
	}
	// The subscribers start with the processor's router; sample the API
	// pool for a while after it runs.
	deadline := time.Now().Add(time.Minute)
	for a.Processor.Runner().Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the processor never got ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var most uint32
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		most = max(most, a.Redis.Redis().PoolStats().TotalConns)
	}
	if most > 6 {
		t.Fatalf("the API's Redis pool held %d connections with an idle API: the processor uses it", most)
	}
}
