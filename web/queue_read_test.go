package web_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/query"
)

// etagVersion is the version in a response's ETag.
func etagVersion(t *testing.T, r response) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.Trim(r.header.Get("ETag"), `"`), 10, 64)
	if err != nil {
		t.Fatalf("ETag %q: %v", r.header.Get("ETag"), err)
	}
	return v
}

// sameAsAggregate reads the queue of player over GET /api/queue (the
// read model) at the aggregate's version and requires the same JSON as the
// aggregate's view (serverTime aside; the state the aggregate's view
// implies); it retries while the processor moves
// the queue on between the two reads. It returns the view.
func sameAsAggregate(t *testing.T, c *client, a *app.App, player, tok string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := a.Commands.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: player})
		if err != nil {
			t.Fatal(err)
		}
		r := c.do(req{method: "GET", path: "/api/queue/" + player + "?minVersion=" + itoa(s.View.Version), token: tok})
		if r.status != 200 {
			t.Fatalf("GET queue of %s: %d %s", player, r.status, r.body)
		}
		got := r.json(t)
		if _, ok := got["serverTime"].(string); !ok {
			t.Fatalf("no serverTime: %s", r.body)
		}
		delete(got, "serverTime")
		if got["version"] == float64(s.View.Version) {
			b, err := json.Marshal(s.View)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			want["state"] = string(query.QueueStateOf(s.View))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the read model's view differs from the aggregate's at version %d:\nread model %s\naggregate  %s", s.View.Version, r.body, b)
			}
			if etagVersion(t, r) != s.View.Version {
				t.Fatalf("ETag %s for version %d", r.header.Get("ETag"), s.View.Version)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("never read the queue of %s at the aggregate's version: last %s", player, r.body)
		}
	}
}

// GET /api/queue reads the read models (queue_status and player_progress)
// and shows exactly what the aggregate shows: running repetition and its
// times, waiting tasks in order, done counts, skills, inventory, stopped
// state and reason, limit, version.
func TestQueueReadModelMatchesAggregate(t *testing.T) {
	backends(t, func(t *testing.T, build func(*testing.T, ...apptest.Option) *app.App) {
		a := build(t)
		c := newClient(t, a)
		dana := c.token("dana", auth.RolePlayer)
		for _, body := range []string{
			`{"type":"chop-wood","count":2}`, `{"type":"saw-planks","count":1}`,
			`{"type":"catch-shrimp","count":50}`, `{"type":"chop-wood","count":7}`,
		} {
			if r := c.do(req{method: "POST", path: "/api/queue/dana/tasks", token: dana, body: body}); r.status != 201 {
				t.Fatalf("enqueue %s: %d %s", body, r.status, r.body)
			}
		}
		// A player without events: the empty queue at version 0.
		if v := sameAsAggregate(t, c, a, "nobody", c.token("nobody", auth.RolePlayer)); v["version"] != float64(0) {
			t.Fatalf("empty queue %v", v)
		}
		// Wait until the processor completed a repetition or more, then
		// compare while a repetition runs with tasks waiting.
		deadline := time.Now().Add(90 * time.Second)
		for {
			v := sameAsAggregate(t, c, a, "dana", dana)
			inv, _ := v["inventory"].(map[string]any)
			skills, _ := v["skills"].(map[string]any)
			tasks, _ := v["tasks"].([]any)
			if len(inv) > 0 && len(skills) > 0 && v["repetition"] != nil && len(tasks) >= 2 {
				rep := v["repetition"].(map[string]any)
				if rep["number"] == float64(0) || rep["dueAt"] == "" || v["running"] != true || v["updatedAt"] == nil {
					t.Fatalf("running view %v", v)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no completed repetition with tasks waiting within 90 s: %v", v)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Stopped by the player.
		if r := c.do(req{method: "POST", path: "/api/queue/dana/stop", token: dana}); r.status != 200 {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		if v := sameAsAggregate(t, c, a, "dana", dana); v["running"] != false || v["repetition"] != nil {
			t.Fatalf("stopped view %v", v)
		}
		// Stopped by the server: the inputs of the head task are missing.
		erin := c.token("erin", auth.RolePlayer)
		if r := c.do(req{method: "POST", path: "/api/queue/erin/tasks", token: erin, body: `{"type":"saw-planks","count":1}`}); r.status != 201 {
			t.Fatalf("enqueue: %d %s", r.status, r.body)
		}
		sameAsAggregate(t, c, a, "erin", erin)
	})
}

// A client reads its own writes with ?minVersion (the ETag of its
// command); a version the queue never reaches is 503 with Retry-After after
// a bounded wait, never an older view; a malformed one is 400; ETag and
// If-None-Match work on the read model.
func TestQueueReadYourWrites(t *testing.T) {
	backends(t, func(t *testing.T, build func(*testing.T, ...apptest.Option) *app.App) {
		c := newClient(t, build(t, func(c *app.Config) { c.RateLimitPlayer = 100_000 }))
		fred := c.token("fred", auth.RolePlayer)
		if r := c.do(req{method: "POST", path: "/api/queue/fred/stop", token: fred}); r.status != 200 {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		for i := 0; i < 15; i++ {
			r := c.do(req{method: "POST", path: "/api/queue/fred/tasks", token: fred, body: `{"type":"chop-wood","count":1}`})
			if r.status != 201 {
				t.Fatalf("enqueue: %d %s", r.status, r.body)
			}
			id, v := r.json(t)["taskId"].(string), etagVersion(t, r)
			g := c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + itoa(v), token: fred})
			if g.status != 200 || etagVersion(t, g) < v || !strings.Contains(string(g.body), id) {
				t.Fatalf("read after enqueue at version %d: %d ETag %s %s", v, g.status, g.header.Get("ETag"), g.body)
			}
			d := c.do(req{method: "DELETE", path: "/api/queue/fred/tasks/" + id, token: fred})
			if d.status != 200 {
				t.Fatalf("remove: %d %s", d.status, d.body)
			}
			v = etagVersion(t, d)
			g = c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + itoa(v), token: fred})
			if g.status != 200 || etagVersion(t, g) < v || strings.Contains(string(g.body), id) {
				t.Fatalf("read after remove at version %d: %d %s", v, g.status, g.body)
			}
		}

		// The queue is stopped: nothing changes it now.
		cur := c.version("fred")
		r := c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + itoa(cur), token: fred})
		if r.status != 200 || r.header.Get("ETag") != `"`+itoa(cur)+`"` {
			t.Fatalf("GET at %d: %d ETag %s", cur, r.status, r.header.Get("ETag"))
		}
		r = c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + itoa(cur), token: fred, headers: map[string]string{"If-None-Match": `"` + itoa(cur) + `"`}})
		if r.status != 304 || r.header.Get("ETag") != `"`+itoa(cur)+`"` || len(r.body) != 0 {
			t.Fatalf("If-None-Match with the current ETag: %d ETag %s %s", r.status, r.header.Get("ETag"), r.body)
		}
		r = c.do(req{method: "GET", path: "/api/queue/fred", token: fred, headers: map[string]string{"If-None-Match": `W/"` + itoa(cur) + `"`}})
		if r.status != 304 {
			t.Fatalf("If-None-Match with the weak current ETag: %d %s", r.status, r.body)
		}
		r = c.do(req{method: "GET", path: "/api/queue/fred", token: fred, headers: map[string]string{"If-None-Match": `"` + itoa(cur-1) + `"`}})
		if r.status != 200 || etagVersion(t, r) != cur {
			t.Fatalf("If-None-Match with an old ETag: %d %s", r.status, r.body)
		}

		// A version the queue never reaches.
		r = c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + itoa(cur+1_000_000), token: fred})
		r.problem(t, 503, "unavailable")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
		if strings.Contains(string(r.body), `"tasks"`) {
			t.Fatalf("a stale view was answered: %s", r.body)
		}

		// Malformed.
		for _, q := range []string{"abc", "-1", "1.5", "", "1e3", "99999999999999999999", "1&minVersion=2"} {
			p := c.do(req{method: "GET", path: "/api/queue/fred?minVersion=" + q, token: fred}).problem(t, 400, "validation")
			if p["field"] != "minVersion" {
				t.Fatalf("minVersion=%s: field %v", q, p["field"])
			}
		}
	})
}

// With Redis the queue cache sits in front of the read model: a GET
// answers the cached view, but never one older than its minVersion; then it
// reads the read model and caches what it read.
func TestQueueCacheNeverOlderThanMinVersion(t *testing.T) {
	// No processor: nothing here needs it, and its Redis consumers log
	// after the test ends (a processor matter, not this test's).
	off := false
	a := apptest.SQLite(t, withRedis(t), func(c *app.Config) { c.Processor = &off })
	c := newClient(t, a)
	gina := c.token("gina", auth.RolePlayer)
	r := c.do(req{method: "POST", path: "/api/queue/gina/tasks", token: gina, body: `{"type":"chop-wood","count":3}`})
	if r.status != 201 {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	r = c.do(req{method: "POST", path: "/api/queue/gina/stop", token: gina})
	if r.status != 200 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	v := etagVersion(t, r)
	// The hub also puts the views of the events it dispatches, a moment
	// after the commands; stop it so that it cannot replace the view
	// planted next (Close waits for its dispatch to end).
	a.Realtime.Close()
	// Plant an old view in the cache (as if it had missed the commands).
	key := a.Config.RedisPrefix + "queue:gina"
	old := `{"playerId":"gina","version":1,"running":true,"stoppedReason":"","limit":10,"tasks":[],"repetition":null,"skills":{},"inventory":{},"updatedAt":null}`
	if err := a.Redis.Redis().Set(context.Background(), key, old, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if g := c.do(req{method: "GET", path: "/api/queue/gina", token: gina}); g.status != 200 || etagVersion(t, g) != 1 {
		t.Fatalf("GET without minVersion: %d ETag %s, want the cached view at 1", g.status, g.header.Get("ETag"))
	}
	g := c.do(req{method: "GET", path: "/api/queue/gina?minVersion=" + itoa(v), token: gina})
	if g.status != 200 || etagVersion(t, g) != v || g.json(t)["running"] != false {
		t.Fatalf("GET ?minVersion=%d past an older cached view: %d %s", v, g.status, g.body)
	}
	if g := c.do(req{method: "GET", path: "/api/queue/gina", token: gina}); g.status != 200 || etagVersion(t, g) != v {
		t.Fatalf("the view read for minVersion was not cached: %d ETag %s", g.status, g.header.Get("ETag"))
	}
}

// The queue view's state is what a client shows: idle for a queue that
// runs but holds nothing (running alone is true for it), running with
// tasks, stopped once stopped — in GET's answers (the read side) and in the
// commands' (the write side).
func TestQueueState(t *testing.T) {
	off := false
	a := apptest.SQLite(t, func(c *app.Config) { c.Processor = &off })
	c := newClient(t, a)
	tok := c.token("erin", auth.RolePlayer)
	state := func(r response) string {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		s, _ := r.json(t)["state"].(string)
		return s
	}
	get := func() string {
		return state(c.do(req{method: "GET", path: "/api/queue/erin?minVersion=" + itoa(c.version("erin")), token: tok}))
	}
	if got := get(); got != "idle" {
		t.Fatalf("a new queue: state %q, want idle", got)
	}
	r := c.do(req{method: "POST", path: "/api/queue/erin/tasks", token: tok, body: `{"type":"chop-wood","count":3}`})
	if r.status != 201 {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	task := r.json(t)["taskId"].(string)
	if got := get(); got != "running" {
		t.Fatalf("a queue with a task: state %q, want running", got)
	}
	if got := state(c.do(req{method: "POST", path: "/api/queue/erin/stop", token: tok})); got != "stopped" {
		t.Fatalf("stop answered state %q, want stopped", got)
	}
	if got := get(); got != "stopped" {
		t.Fatalf("a stopped queue: state %q, want stopped", got)
	}
	if got := state(c.do(req{method: "POST", path: "/api/queue/erin/start", token: tok})); got != "running" {
		t.Fatalf("start answered state %q, want running", got)
	}
	if got := state(c.do(req{method: "DELETE", path: "/api/queue/erin/tasks/" + task, token: tok})); got != "idle" {
		t.Fatalf("removing the last task answered state %q, want idle", got)
	}
	if got := get(); got != "idle" {
		t.Fatalf("an emptied queue: state %q, want idle", got)
	}
}
