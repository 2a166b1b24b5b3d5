package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// withRedis configures the app on the test Redis under a key prefix of the
// test's own, deleting its keys when the test ends.
func withRedis(t *testing.T) apptest.Option {
	url, prefix := testenv.Redis(t)
	return func(c *app.Config) { c.RedisURL, c.RedisPrefix = url, prefix }
}

// cleanRedis deletes the keys the app wrote under its prefix (run before
// the app closes: t.Cleanup is last-in, first-out).
func cleanRedis(t *testing.T, a *app.App) {
	if a.Redis == nil {
		return
	}
	t.Cleanup(func() {
		ctx := context.Background()
		rdb := a.Redis.Redis()
		keys, err := rdb.Keys(ctx, a.Config.RedisPrefix+"*").Result()
		if err == nil && len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
	})
}

// modes runs f with Redis configured and without, on SQLite, and with
// Redis on PostgreSQL (in dev mode, for dev tokens).
func modes(t *testing.T, f func(t *testing.T, build func(...apptest.Option) *app.App, redis bool)) {
	sqlite := func(opts ...apptest.Option) *app.App { return apptest.SQLite(t, opts...) }
	t.Run("redis", func(t *testing.T) {
		r := withRedis(t)
		f(t, func(opts ...apptest.Option) *app.App { return apptest.SQLite(t, append(opts, r)...) }, true)
	})
	t.Run("in-process", func(t *testing.T) { f(t, sqlite, false) })
	t.Run("redis-postgres", func(t *testing.T) {
		r := withRedis(t)
		dev := func(c *app.Config) { d := true; c.Dev = &d }
		f(t, func(opts ...apptest.Option) *app.App { return apptest.Postgres(t, append(opts, r, dev)...) }, true)
	})
}

func devToken(t *testing.T, c *client, player string) string {
	t.Helper()
	r := c.do(req{method: "POST", path: "/api/auth/dev-token", body: `{"player":"` + player + `"}`})
	if r.status != 200 {
		t.Fatalf("dev-token: %d %s", r.status, r.body)
	}
	return r.json(t)["token"].(string)
}

// TestLogoutRevokesRESTAndWebSocket: a dev token carries a session;
// refresh gives a new working token of it; logout refuses every token of
// the session at once on REST (401) and closes its open WebSocket (4401),
// while the queue cache keeps GET coherent with commands.
func TestLogoutRevokesRESTAndWebSocket(t *testing.T) {
	modes(t, func(t *testing.T, build func(...apptest.Option) *app.App, redis bool) {
		a := build()
		if (a.Redis != nil) != redis {
			t.Fatalf("app Redis = %v, want Redis %v", a.Redis, redis)
		}
		cleanRedis(t, a)
		c := newClient(t, a)
		tok := devToken(t, c, "alice")
		p, err := a.Tokens.Verify(context.Background(), tok)
		if err != nil || p.SessionID == "" {
			t.Fatalf("dev token principal %+v, %v: want a session", p, err)
		}

		if a.Redis != nil {
			n, err := a.Redis.Redis().Exists(context.Background(), a.Config.RedisPrefix+"session:"+p.SessionID).Result()
			if err != nil || n != 1 {
				t.Fatalf("session %s in Redis: %d, %v", p.SessionID, n, err)
			}
		}

		// Commands and reads through the cache agree.
		if r := c.do(req{method: "GET", path: "/api/queue/alice", token: tok}); r.status != 200 {
			t.Fatalf("GET queue: %d %s", r.status, r.body)
		}
		r := c.do(req{method: "POST", path: "/api/queue/alice/tasks", token: tok, body: `{"type":"chop-wood","count":3}`})
		if r.status != 201 {
			t.Fatalf("enqueue: %d %s", r.status, r.body)
		}
		taskID := r.json(t)["taskId"].(string)
		own := "?minVersion=" + strings.Trim(r.header.Get("ETag"), `"`)
		if r := c.do(req{method: "GET", path: "/api/queue/alice" + own, token: tok}); r.status != 200 || !strings.Contains(string(r.body), taskID) {
			t.Fatalf("GET queue after enqueue: %d %s, want task %s", r.status, r.body, taskID)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wsURL := "ws" + strings.TrimPrefix(c.url, "http") + "/api/ws?access_token=" + tok
		conn, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("dial /api/ws: %v", err)
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("read before logout: %v", err)
			}
			if strings.Contains(string(b), `"subscribed"`) {
				break
			}
		}

		r = c.do(req{method: "POST", path: "/api/auth/refresh", token: tok})
		if r.status != 200 {
			t.Fatalf("refresh: %d %s", r.status, r.body)
		}
		tok2 := r.json(t)["token"].(string)
		p2, err := a.Tokens.Verify(context.Background(), tok2)
		if err != nil || p2.SessionID != p.SessionID || p2.PlayerID != "alice" {
			t.Fatalf("refreshed token principal %+v, %v; want alice in session %s", p2, err, p.SessionID)
		}
		if r := c.do(req{method: "GET", path: "/api/queue/alice", token: tok2}); r.status != 200 {
			t.Fatalf("GET with the refreshed token: %d %s", r.status, r.body)
		}

		if r := c.do(req{method: "POST", path: "/api/auth/logout", token: tok}); r.status != 204 {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		for _, tk := range []string{tok, tok2} {
			c.do(req{method: "GET", path: "/api/queue/alice", token: tk}).problem(t, 401, "unauthorized")
		}
		c.do(req{method: "POST", path: "/api/auth/refresh", token: tok}).problem(t, 401, "unauthorized")
		for {
			if _, _, err = conn.Read(ctx); err != nil {
				break
			}
		}
		if websocket.CloseStatus(err) != 4401 {
			t.Fatalf("socket after logout closed with %v, want 4401", err)
		}
		if conn2, resp, err := websocket.Dial(ctx, wsURL, nil); err == nil {
			conn2.CloseNow()
			t.Fatal("a revoked session's token opened a socket")
		} else if resp == nil || resp.StatusCode != 401 {
			t.Fatalf("dial with a revoked token: %v %v, want 401", resp, err)
		}

		// A new login works; tokens without a session (taskqueue token) too.
		if r := c.do(req{method: "GET", path: "/api/queue/alice", token: devToken(t, c, "alice")}); r.status != 200 {
			t.Fatalf("GET with a new session: %d %s", r.status, r.body)
		}
		if r := c.do(req{method: "GET", path: "/api/queue/alice", token: c.token("alice", auth.RolePlayer)}); r.status != 200 {
			t.Fatalf("GET with a sessionless token: %d %s", r.status, r.body)
		}
		// Logout needs a session.
		c.do(req{method: "POST", path: "/api/auth/logout", token: c.token("alice", auth.RolePlayer)}).problem(t, 401, "unauthorized")
	})
}

// TestCommandRateLimit: past the burst a player's commands get 429
// rate-limited with Retry-After; reads and other players are not limited.
func TestCommandRateLimit(t *testing.T) {
	modes(t, func(t *testing.T, build func(...apptest.Option) *app.App, redis bool) {
		// 12 per minute: bursts of 2, one more every 5 s.
		a := build(func(c *app.Config) { c.RateLimitPlayer = 12 })
		cleanRedis(t, a)
		c := newClient(t, a)
		alice := devToken(t, c, "alice")
		passed := 0
		var limited response
		for i := 0; i < 20 && limited.status == 0; i++ {
			r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: alice})
			if r.status == 429 {
				limited = r
				break
			}
			passed++
		}
		if limited.status != 429 {
			t.Fatalf("20 commands never got 429")
		}
		if passed < 2 {
			t.Fatalf("only %d commands passed before 429, want the burst of 2", passed)
		}
		limited.problem(t, 429, "rate-limited")
		if redis { // counted in Redis (under the prefix; it expires on its own)
			key := a.Config.RedisPrefix + "rate:ratelimit:alice"
			if n, err := a.Redis.Redis().Exists(context.Background(), key).Result(); err != nil || n != 1 {
				t.Fatalf("rate limit state %s in Redis: %d, %v", key, n, err)
			}
		}
		if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q, want whole seconds >= 1", limited.header.Get("Retry-After"))
		}
		if r := c.do(req{method: "GET", path: "/api/queue/alice", token: alice}); r.status != 200 {
			t.Fatalf("GET while limited: %d %s", r.status, r.body)
		}
		if r := c.do(req{method: "POST", path: "/api/queue/bob/stop", token: devToken(t, c, "bob")}); r.status == 429 {
			t.Fatalf("bob limited by alice's commands: %s", r.body)
		}
	})
}

// TestLogoutOnOneInstanceReachesAnother: two instances sharing Redis (and
// the JWT secret); a logout on one refuses the token on the other at once
// and closes the socket open there. On one Redis server, and on a Redis
// Cluster of the test's own.
func TestLogoutOnOneInstanceReachesAnother(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		url, prefix := testenv.Redis(t)
		logoutOnOneInstanceReachesAnother(t, url, prefix)
	})
	t.Run("rediscluster", func(t *testing.T) {
		logoutOnOneInstanceReachesAnother(t, testenv.StartRedisCluster(t).URL(), "test:")
	})
}

func logoutOnOneInstanceReachesAnother(t *testing.T, url, prefix string) {
	shared := func(c *app.Config) {
		c.RedisURL, c.RedisPrefix, c.JWTSecret = url, prefix, apptest.Secret
	}
	a, b := apptest.SQLite(t, shared), apptest.SQLite(t, shared)
	cleanRedis(t, a)
	ca, cb := newClient(t, a), newClient(t, b)
	tok := devToken(t, ca, "alice")
	if r := cb.do(req{method: "GET", path: "/api/queue/alice", token: tok}); r.status != 200 {
		t.Fatalf("GET on the other instance: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(cb.url, "http")+"/api/ws?access_token="+tok, nil)
	if err != nil {
		t.Fatalf("dial the other instance: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, m, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read before logout: %v", err)
		}
		if strings.Contains(string(m), `"subscribed"`) {
			break
		}
	}
	if r := ca.do(req{method: "POST", path: "/api/auth/logout", token: tok}); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	cb.do(req{method: "GET", path: "/api/queue/alice", token: tok}).problem(t, 401, "unauthorized")
	for {
		if _, _, err = conn.Read(ctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != 4401 {
		t.Fatalf("socket on the other instance closed with %v, want 4401", err)
	}
}
