package app_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// TestProcessorKeepsOffTheAPIsRedisPool: with Redis the processor's
// command subscribers (two per partition, each holding a connection
// through its blocking reads) use a pool of their own, so the API's pool
// (sessions, rate limits, cache) stays free.
func TestProcessorKeepsOffTheAPIsRedisPool(t *testing.T) {
	url, prefix, _ := teststore.Redis(t) // cleaned after the app closed: the processor's streams
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

// TestRelayMetrics: with Redis the relay runs and /metrics shows its
// checkpoint and lag, which falls to 0 once it published a player's
// events; without Redis there is no relay and no such series.
func TestRelayMetrics(t *testing.T) {
	scrape := func(t *testing.T, a *app.App) map[string]float64 {
		t.Helper()
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		out := map[string]float64{}
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			name, value, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(name, "taskqueue_relay_") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			out[name] = v
		}
		return out
	}
	t.Run("redis", func(t *testing.T) {
		url, prefix, _ := teststore.Redis(t)
		a := apptest.SQLite(t, func(c *app.Config) { c.RedisURL, c.RedisPrefix = url, prefix })
		if _, err := a.Commands.EnqueueTask.Handle(context.Background(), command.EnqueueTask{
			Request: command.Request{PlayerID: "rita", Actor: "rita"}, Type: "chop-wood", Count: 1,
		}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			m := scrape(t, a)
			pos, okPos := m["taskqueue_relay_position"]
			lag, okLag := m["taskqueue_relay_lag_seconds"]
			if okPos && okLag && pos > 0 && lag == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the relay metrics never showed rita's events published: %v", m)
			}
		}
	})
	t.Run("in-process", func(t *testing.T) {
		if m := scrape(t, apptest.SQLite(t)); len(m) != 0 {
			t.Fatalf("relay metrics without a relay: %v", m)
		}
	})
}

// TestRedisErrorsMetric: a Redis command that fails on the app's client
// is counted in taskqueue_redis_errors_total (which TaskqueueRedisErrors
// alerts on); before, no client had the hook and the series never moved.
func TestRedisErrorsMetric(t *testing.T) {
	url, prefix, _ := teststore.Redis(t)
	a := apptest.SQLite(t, func(c *app.Config) { c.RedisURL, c.RedisPrefix = url, prefix })
	if err := a.Redis.Redis().Do(context.Background(), "taskqueue-no-such-command").Err(); err == nil {
		t.Fatal("an unknown command did not fail")
	}
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `taskqueue_redis_errors_total{command="taskqueue-no-such-command"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("/metrics has no %s", want)
	}
}
