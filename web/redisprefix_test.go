package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// Every key, channel and stream the service writes to Redis starts with
// TASKQUEUE_REDIS_PREFIX: after a workload touching every role (sessions,
// rate limits, the queue cache, progress, presence, the processor's command
// streams, the relay's integration events) on a Redis server of the test's
// own, no key lies outside the prefix.
func TestEveryRedisKeyHasThePrefix(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	const prefix = "tq-prefix:"
	a := apptest.SQLite(t, func(c *app.Config) {
		c.RedisURL, c.RedisPrefix, c.PresenceGrace = srv.URL(), prefix, 100*time.Millisecond
	})
	c := newClient(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	var keys []string
	list := func() { // rate limit keys expire within a second: list twice
		t.Helper()
		k, err := rdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k...)
	}

	res := c.do(req{method: "POST", path: "/api/auth/dev-token", body: `{"player":"kim"}`})
	if res.status != 200 {
		t.Fatalf("dev-token: %d %s", res.status, res.body)
	}
	tok := c.token("kim", auth.RolePlayer)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.url, "http")+"/api/ws?access_token="+tok, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"kim"}`)); err != nil {
		t.Fatal(err)
	}
	if res := c.do(req{method: "POST", path: "/api/queue/kim/tasks", token: tok, body: `{"type":"chop-wood","count":1}`}); res.status != 201 {
		t.Fatalf("enqueue: %d %s", res.status, res.body)
	}
	list()
	// The processor completes the repetition (3 s) through its command
	// streams; the relay publishes the integration events.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := c.do(req{method: "GET", path: "/api/queue/kim/history", token: tok})
		if r.status == 200 && strings.Contains(string(r.body), `"completed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task never completed: %s", r.body)
		}
	}
	conn.Close(websocket.StatusNormalClosure, "bye")
	time.Sleep(500 * time.Millisecond) // presence grace, then player.offline

	list()
	families := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			t.Errorf("key %q is outside the prefix %q", k, prefix)
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(k, prefix), ":")
		families[f] = true
	}
	// The workload reached the roles it was meant to.
	for _, f := range []string{"rate", "session", "queue"} {
		if !families[f] {
			t.Errorf("no %s key was written (keys: %v)", f, keys)
		}
	}
	streams := 0
	for _, k := range keys {
		if strings.Contains(k, "taskqueue.commands.") || strings.Contains(k, "taskqueue.events.") {
			streams++
		}
	}
	if streams == 0 {
		t.Errorf("no command or integration stream was written (keys: %v)", keys)
	}
}
